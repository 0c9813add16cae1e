using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using TunStack.Tcp;

namespace TunStack.Tests.Api;

/// <summary>
/// The public API's contract, over two real stacks with their own event loops linked in memory: accept and connect,
/// bytes both ways, half-close, abort, errors as <see cref="SocketException"/>s, cancellation, disposal.
/// </summary>
public class ConnectionContractTests
{
    /// <summary>Device queues (engine shards) of each stack.</summary>
    protected virtual int Queues => 1;

    internal static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private static IPEndPoint Server(int port) => new(LinkedStacks.ServerAddress, port);

    /// <summary>Connects from the client stack and accepts on the server stack.</summary>
    internal static async Task<(TunStackConnection Client, TunStackConnection Server)> ConnectPairAsync(LinkedStacks s, TunStackListener listener)
    {
        var accept = listener.AcceptAsync().AsTask();
        var client = await s.Client.ConnectAsync(Server(listener.LocalEndPoint.Port)).WaitAsync(Deadline);
        var server = await accept.WaitAsync(Deadline);
        return (client, server);
    }

    internal static async Task<byte[]> ReadToEndAsync(PipeReader reader)
    {
        var all = new ArrayBufferWriter<byte>();
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().WaitAsync(Deadline);
            foreach (var segment in result.Buffer) all.Write(segment.Span);
            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) return all.WrittenSpan.ToArray();
        }
    }

    [Fact]
    public async Task Connect_and_accept_agree_on_endpoints_and_sequence_numbers_and_carry_bytes_both_ways()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);

        Assert.Equal(client.LocalEndPoint, server.RemoteEndPoint);
        Assert.Equal(client.RemoteEndPoint, server.LocalEndPoint);
        Assert.Equal(Server(7), client.RemoteEndPoint);
        Assert.InRange(client.LocalEndPoint.Port, 32768, 60999); // the ephemeral range
        Assert.Equal(client.Info.LocalInitialSequence, server.Info.PeerInitialSequence);
        Assert.Equal(server.Info.LocalInitialSequence, client.Info.PeerInitialSequence);
        Assert.Equal(TcpOpenKind.Active, client.Info.OpenKind);
        Assert.Equal(TcpOpenKind.Passive, server.Info.OpenKind);
        Assert.Equal(1460, client.Info.EffectiveSendMss);
        Assert.Equal(TcpState.Established, server.State);

        await client.Output.WriteAsync("hello"u8.ToArray());
        var request = await server.Input.ReadAtLeastAsync(5).AsTask().WaitAsync(Deadline);
        Assert.Equal("hello", Encoding.ASCII.GetString(request.Buffer));
        server.Input.AdvanceTo(request.Buffer.End);
        await server.Output.WriteAsync("world"u8.ToArray());
        var response = await client.Input.ReadAtLeastAsync(5).AsTask().WaitAsync(Deadline);
        Assert.Equal("world", Encoding.ASCII.GetString(response.Buffer));
        client.Input.AdvanceTo(response.Buffer.End);

        await client.DisposeAsync();
        Assert.Empty(await ReadToEndAsync(server.Input)); // the client's FIN
        await server.DisposeAsync();
        await Task.WhenAll(client.Closed, server.Closed).WaitAsync(Deadline);
    }

    [Fact]
    public async Task Completing_the_output_half_closes_and_the_other_direction_keeps_flowing()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(9000);
        var (client, server) = await ConnectPairAsync(s, listener);

        var request = RandomNumberGenerator.GetBytes(100_000);
        await client.Output.WriteAsync(request);
        await client.Output.CompleteAsync(); // FIN after the data
        Assert.Equal(request, await ReadToEndAsync(server.Input));
        Assert.Equal(TcpState.CloseWait, await StateSoonAsync(server, TcpState.CloseWait));

        // The server answers after the client's FIN: half-close keeps its direction open.
        var answer = RandomNumberGenerator.GetBytes(300_000);
        await server.Output.WriteAsync(answer);
        await server.Output.CompleteAsync();
        Assert.Equal(answer, await ReadToEndAsync(client.Input));

        await Task.WhenAll(client.Closed, server.Closed).WaitAsync(Deadline);
        Assert.Equal(TcpState.TimeWait, client.State); // the client closed first: it holds TIME-WAIT
        Assert.Equal(TcpState.Closed, server.State);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    private static async Task<TcpState> StateSoonAsync(TunStackConnection connection, TcpState wanted)
    {
        var stop = DateTime.UtcNow + Deadline;
        while (connection.State != wanted && DateTime.UtcNow < stop)
            await Task.Delay(1);
        return connection.State;
    }

    [Fact]
    public async Task The_stream_reads_zero_at_the_peers_fin_and_CompleteWrites_sends_ours()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        var echo = Task.Run(async () =>
        {
            await using var stream = server.GetStream();
            await stream.CopyToAsync(stream); // until the client's FIN
            stream.CompleteWrites();
        });

        await using var clientStream = client.GetStream();
        Assert.Same(clientStream, client.GetStream());
        var data = RandomNumberGenerator.GetBytes(1 << 20);
        var reading = Task.Run(async () =>
        {
            var back = new MemoryStream();
            await clientStream.CopyToAsync(back);
            return back.ToArray();
        });
        for (int i = 0; i < data.Length; i += 50_000)
            await clientStream.WriteAsync(data.AsMemory(i, Math.Min(50_000, data.Length - i)));
        clientStream.CompleteWrites();
        await Assert.ThrowsAsync<InvalidOperationException>(() => clientStream.WriteAsync(new byte[1]).AsTask());

        Assert.Equal(data, await reading.WaitAsync(Deadline));
        await echo.WaitAsync(Deadline);
        Assert.Equal(0, await clientStream.ReadAsync(new byte[10]));
    }

    [Fact]
    public async Task Abort_resets_the_peer_whose_read_and_write_fail_with_ConnectionReset()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);

        var pendingRead = server.Input.ReadAsync().AsTask();
        var localRead = client.Input.ReadAsync().AsTask();
        client.Abort();

        var reset = await Assert.ThrowsAsync<SocketException>(() => pendingRead.WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        var local = await Assert.ThrowsAsync<SocketException>(() => localRead.WaitAsync(Deadline));
        Assert.Equal(SocketError.OperationAborted, local.SocketErrorCode);
        var write = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            for (int i = 0; i < 100; i++) // the first writes may be buffered before the loop completes the pipe
                await server.Output.WriteAsync(new byte[1000]).AsTask().WaitAsync(Deadline);
        });
        Assert.Equal(SocketError.ConnectionReset, write.SocketErrorCode);

        // Through the stream the same failure is an IOException wrapping the SocketException, as with NetworkStream.
        var io = await Assert.ThrowsAsync<IOException>(() => server.GetStream().ReadAsync(new byte[1]).AsTask());
        Assert.Equal(SocketError.ConnectionReset, Assert.IsType<SocketException>(io.InnerException).SocketErrorCode);
        await Task.WhenAll(client.Closed, server.Closed).WaitAsync(Deadline);
        Assert.Equal(TcpState.Closed, server.State);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_with_unread_data_resets_the_connection()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        await client.Output.WriteAsync(new byte[1000]);
        var arrived = await server.Input.ReadAtLeastAsync(1000).AsTask().WaitAsync(Deadline);
        server.Input.AdvanceTo(arrived.Buffer.Start); // seen, not consumed
        var clientRead = client.Input.ReadAsync().AsTask();

        await server.DisposeAsync(); // RFC 2525 §2.17: unread data lost means RST, not FIN

        var reset = await Assert.ThrowsAsync<SocketException>(() => clientRead.WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        await client.DisposeAsync();
    }

    [Fact]
    public async Task Connecting_to_a_port_without_listener_is_refused()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        var refused = await Assert.ThrowsAsync<SocketException>(() => s.Client.ConnectAsync(Server(81)).WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task Connecting_where_nobody_answers_times_out_after_the_connect_timeout()
    {
        await using var s = await LinkedStacks.StartAsync(Queues, client: new TunStackOptions { ConnectTimeout = TimeSpan.FromMilliseconds(300) });
        var started = DateTime.UtcNow;
        // 198.18.0.3 is nobody's: the server stack drops the SYNs as not for it.
        var timedOut = await Assert.ThrowsAsync<SocketException>(
            () => s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.18.0.3"), 80)).WaitAsync(Deadline));
        Assert.Equal(SocketError.TimedOut, timedOut.SocketErrorCode);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250), "gave up before the connect timeout");
    }

    [Fact]
    public async Task Cancelling_a_connect_or_an_accept_throws_OperationCanceledException()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        using var cancel = new CancellationTokenSource();
        var connecting = s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.18.0.3"), 80), cancel.Token);
        await using var listener = await s.Server.ListenAsync(7);
        var accepting = listener.AcceptAsync(cancel.Token).AsTask();
        Assert.False(connecting.IsCompleted);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connecting.WaitAsync(Deadline));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => accepting.WaitAsync(Deadline));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => s.Client.ConnectAsync(Server(7), cancel.Token));

        // The listener still works after a cancelled accept.
        var (client, server) = await ConnectPairAsync(s, listener);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task A_disposed_listener_fails_its_accept_and_refuses_new_connections()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        var listener = await s.Server.ListenAsync(7);
        var accepting = listener.AcceptAsync().AsTask();
        await listener.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => accepting.WaitAsync(Deadline));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => listener.AcceptAsync().AsTask());
        var refused = await Assert.ThrowsAsync<SocketException>(() => s.Client.ConnectAsync(Server(7)).WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        // The port can be listened on again.
        await using var again = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, again);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Disposing_the_host_resets_its_connections_and_ends_its_listeners()
    {
        var s = await LinkedStacks.StartAsync(Queues);
        var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        var accepting = listener.AcceptAsync().AsTask();
        var clientRead = client.Input.ReadAsync().AsTask();

        await s.Server.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => accepting.WaitAsync(Deadline));
        var reset = await Assert.ThrowsAsync<SocketException>(() => clientRead.WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        await server.Closed.WaitAsync(Deadline);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => s.Server.ListenAsync(8).AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => s.Server.ConnectAsync(new IPEndPoint(LinkedStacks.ClientAddress, 7)));
        Assert.True(s.ServerDevice.IsDisposed, "the host owns its device unless LeaveDeviceOpen");
        await s.Server.Completion.WaitAsync(Deadline);
        await s.DisposeAsync(); // twice is fine
    }

    [Fact]
    public async Task Listeners_bind_an_address_of_the_stack_or_a_wildcard_and_not_twice()
    {
        await using var s = await LinkedStacks.StartAsync(Queues, server: new TunStackOptions
        {
            Addresses = [LinkedStacks.ServerAddress, IPAddress.Parse("198.18.0.3")],
        });
        await using var specific = await s.Server.ListenAsync(new IPEndPoint(IPAddress.Parse("198.18.0.3"), 80));
        await using var wildcard = await s.Server.ListenAsync(new IPEndPoint(IPAddress.Any, 80));

        var toSpecific = specific.AcceptAsync().AsTask();
        var toWildcard = wildcard.AcceptAsync().AsTask();
        await using var a = await s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.18.0.3"), 80)).WaitAsync(Deadline);
        await using var b = await s.Client.ConnectAsync(Server(80)).WaitAsync(Deadline);
        await using var atSpecific = await toSpecific.WaitAsync(Deadline);
        await using var atWildcard = await toWildcard.WaitAsync(Deadline);
        Assert.Equal(IPAddress.Parse("198.18.0.3"), atSpecific.LocalEndPoint.Address);
        Assert.Equal(LinkedStacks.ServerAddress, atWildcard.LocalEndPoint.Address);

        var inUse = await Assert.ThrowsAsync<SocketException>(() => s.Server.ListenAsync(new IPEndPoint(IPAddress.Any, 80)).AsTask());
        Assert.Equal(SocketError.AddressAlreadyInUse, inUse.SocketErrorCode);
        var notOurs = await Assert.ThrowsAsync<SocketException>(() => s.Server.ListenAsync(new IPEndPoint(IPAddress.Parse("10.9.9.9"), 80)).AsTask());
        Assert.Equal(SocketError.AddressNotAvailable, notOurs.SocketErrorCode);
        Assert.True(s.Server.IsLocalAddress(IPAddress.Parse("198.18.0.3")));
        Assert.False(s.Server.IsLocalAddress(IPAddress.Parse("198.18.0.4")));
    }

    [Fact]
    public async Task A_connection_to_an_address_without_its_listener_is_reset()
    {
        await using var s = await LinkedStacks.StartAsync(Queues, server: new TunStackOptions
        {
            Addresses = [LinkedStacks.ServerAddress, IPAddress.Parse("198.18.0.3")],
        });
        await using var specific = await s.Server.ListenAsync(new IPEndPoint(LinkedStacks.ServerAddress, 80));
        // The engine completes the handshake on the port; the host finds no listener for 198.18.0.3 and resets.
        var failure = await Record.ExceptionAsync(async () =>
        {
            await using var connection = await s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.18.0.3"), 80)).WaitAsync(Deadline);
            await ReadToEndAsync(connection.Input);
        });
        Assert.Equal(SocketError.ConnectionReset, Assert.IsType<SocketException>(failure).SocketErrorCode);
    }

    [Fact]
    public async Task NoDelay_and_KeepAlive_read_back_what_was_set_and_keepalive_probes_keep_an_idle_connection()
    {
        // The interval is longer than the peer's 500 ms limit on ACKs to out-of-window segments (which probes are).
        await using var s = await LinkedStacks.StartAsync(Queues, client: new TunStackOptions
        {
            KeepAliveIdle = TimeSpan.FromMilliseconds(200),
            KeepAliveInterval = TimeSpan.FromMilliseconds(600),
            KeepAliveProbes = 3,
        });
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        Assert.False(client.NoDelay);
        client.NoDelay = true;
        Assert.True(client.NoDelay);
        client.KeepAlive = true;
        Assert.True(client.KeepAlive);

        // Keep-alives are answered: after many idle periods the connection is still established.
        var stop = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        long sent = 0;
        while (DateTime.UtcNow < stop && sent < 3)
        {
            sent = (await s.Client.GetDiagnosticsAsync()).Counters.KeepAlivesSent;
            await Task.Delay(20);
        }
        Assert.True(sent >= 3, $"only {sent} keep-alives in 5 s with a 200 ms idle time");
        Assert.Equal(TcpState.Established, client.State);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Keepalives_that_go_unanswered_fail_the_connection_with_TimedOut()
    {
        await using var s = await LinkedStacks.StartAsync(Queues, client: new TunStackOptions
        {
            KeepAliveIdle = TimeSpan.FromMilliseconds(50),
            KeepAliveInterval = TimeSpan.FromMilliseconds(50),
            KeepAliveProbes = 2,
        });
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        client.KeepAlive = true;
        var read = client.Input.ReadAsync().AsTask();
        s.ServerDevice.OnWrite = _ => false; // the server falls silent
        var timedOut = await Assert.ThrowsAsync<SocketException>(() => read.WaitAsync(Deadline));
        Assert.Equal(SocketError.TimedOut, timedOut.SocketErrorCode);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Diagnostics_list_the_connections_and_count_what_happened()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);
        var diagnostics = await s.Server.GetDiagnosticsAsync();
        var entry = Assert.Single(diagnostics.Connections);
        Assert.Equal(server.LocalEndPoint, entry.LocalEndPoint);
        Assert.Equal(client.LocalEndPoint, entry.RemoteEndPoint);
        Assert.Equal(TcpState.Established, entry.State);
        Assert.Equal(1, diagnostics.Counters.PassiveOpens);
        Assert.Equal(1, diagnostics.ApplicationConnectionCount);
        Assert.Equal(1, (await s.Client.GetDiagnosticsAsync()).Counters.ActiveOpens);

        long before = diagnostics.Counters.SegmentsReceived;
        await client.Output.WriteAsync(new byte[10]);
        await server.Input.ReadAtLeastAsync(10).AsTask().WaitAsync(Deadline);
        Assert.Equal(before, diagnostics.Counters.SegmentsReceived); // a snapshot does not change
        Assert.True((await s.Server.GetDiagnosticsAsync()).Counters.SegmentsReceived > before);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }
}
