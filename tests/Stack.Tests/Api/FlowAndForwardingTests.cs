using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using static TunStack.Tests.Api.ConnectionContractTests;

namespace TunStack.Tests.Api;

/// <summary>Backpressure, many connections at once, and the forwarding listener, through the public API.</summary>
public class FlowAndForwardingTests
{
    /// <summary>Device queues (engine shards) of each stack.</summary>
    protected virtual int Queues => 1;

    [Fact]
    public async Task A_slow_reader_closes_the_advertised_window_and_reading_opens_it_again()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        var windows = new ConcurrentQueue<(ushort Window, int Payload)>();
        s.ServerDevice.OnWrite = packet =>
        {
            if (TcpHeaderView.TryRead(packet, out var tcp) && tcp.SourcePort == 7)
                windows.Enqueue((tcp.Window, tcp.PayloadLength));
            return true;
        };
        await using var listener = await s.Server.ListenAsync(7);
        var (client, server) = await ConnectPairAsync(s, listener);

        // 4 MiB: more than the receive buffer (256 KiB) and the input pipe (1 MiB) together, and the sender's too.
        var data = RandomNumberGenerator.GetBytes(4 << 20);
        var writing = Task.Run(async () =>
        {
            for (int i = 0; i < data.Length; i += 64 * 1024)
                await client.Output.WriteAsync(data.AsMemory(i, 64 * 1024));
            await client.Output.CompleteAsync();
        });

        // Nobody reads on the server: the window must reach zero and the writer must be held back.
        var stop = DateTime.UtcNow + Deadline;
        while (!windows.Any(w => w.Window == 0) && DateTime.UtcNow < stop)
            await Task.Delay(5);
        Assert.Contains(windows, w => w.Window == 0);
        Assert.False(writing.IsCompleted, "the writer finished although nobody read");
        int zeroAt = windows.Count;

        // Now read everything: the window opens again and every byte arrives in order.
        var received = await ReadToEndAsync(server.Input);
        await writing.WaitAsync(Deadline);
        Assert.Equal(data.Length, received.Length);
        Assert.True(data.AsSpan().SequenceEqual(received), "the bytes differ");
        Assert.Contains(windows.Skip(zeroAt), w => w.Window > 0);
        Assert.Equal(0, (await s.Server.GetDiagnosticsAsync()).Counters.ReceiveBufferOverruns);
        await client.DisposeAsync();
        await server.DisposeAsync();
    }

    [Fact]
    public async Task Many_connections_from_many_tasks_each_echo_their_own_bytes()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var listener = await s.Server.ListenAsync(7);
        var serving = Task.Run(async () =>
        {
            var handlers = new List<Task>();
            for (int i = 0; i < 64; i++)
            {
                var connection = await listener.AcceptAsync();
                handlers.Add(Task.Run(async () =>
                {
                    await using (connection)
                    {
                        var stream = connection.GetStream();
                        await stream.CopyToAsync(stream);
                        stream.CompleteWrites();
                    }
                }));
            }
            await Task.WhenAll(handlers);
        });

        var clients = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            var data = new byte[32 * 1024 + i * 97];
            new Random(i).NextBytes(data);
            await using var connection = await s.Client.ConnectAsync(new IPEndPoint(LinkedStacks.ServerAddress, 7));
            var reading = ReadToEndAsync(connection.Input);
            for (int offset = 0; offset < data.Length; offset += 4096)
                await connection.Output.WriteAsync(data.AsMemory(offset, Math.Min(4096, data.Length - offset)));
            await connection.Output.CompleteAsync();
            var back = await reading;
            Assert.True(data.AsSpan().SequenceEqual(back), $"connection {i}: the echo differs");
            return connection.LocalEndPoint.Port;
        })).ToArray();

        var ports = await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(60));
        await serving.WaitAsync(Deadline);
        Assert.Equal(64, ports.Distinct().Count());
    }

    [Fact]
    public async Task The_forwarding_listener_takes_other_destinations_and_leaves_the_stacks_own_to_its_listeners()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        await using var own = await s.Server.ListenAsync(80);
        var asked = new ConcurrentQueue<IPEndPoint>();
        await using var forwarding = await s.Server.ListenAnyAsync(destination =>
        {
            asked.Enqueue(destination);
            return destination.Port != 9999;
        });
        Assert.True(forwarding.IsForwarding);

        // To another address, on the very port the stack itself listens on: forwarded, with the original destination.
        var elsewhere = new IPEndPoint(IPAddress.Parse("198.19.0.5"), 80);
        var acceptForwarded = forwarding.AcceptAsync().AsTask();
        await using var client = await s.Client.ConnectAsync(elsewhere).WaitAsync(Deadline);
        await using var forwarded = await acceptForwarded.WaitAsync(Deadline);
        Assert.Equal(elsewhere, forwarded.LocalEndPoint);
        Assert.Equal(client.LocalEndPoint, forwarded.RemoteEndPoint);
        Assert.Contains(elsewhere, asked);
        await client.Output.WriteAsync("through"u8.ToArray());
        var read = await forwarded.Input.ReadAtLeastAsync(7).AsTask().WaitAsync(Deadline);
        Assert.Equal("through"u8.ToArray(), System.Buffers.BuffersExtensions.ToArray(read.Buffer));
        forwarded.Input.AdvanceTo(read.Buffer.End);

        // The stack's own address still reaches its own listener.
        var acceptOwn = own.AcceptAsync().AsTask();
        await using var local = await s.Client.ConnectAsync(new IPEndPoint(LinkedStacks.ServerAddress, 80)).WaitAsync(Deadline);
        await using var atOwn = await acceptOwn.WaitAsync(Deadline);
        Assert.Equal(new IPEndPoint(LinkedStacks.ServerAddress, 80), atOwn.LocalEndPoint);

        // What the filter refuses is refused with RST, as a closed port.
        var refused = await Assert.ThrowsAsync<SocketException>(
            () => s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.19.0.6"), 9999)).WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        // One forwarding listener at a time.
        await Assert.ThrowsAsync<InvalidOperationException>(() => s.Server.ListenAnyAsync().AsTask());
    }

    [Fact]
    public async Task After_the_forwarding_listener_is_disposed_new_connections_are_refused_and_old_ones_go_on()
    {
        await using var s = await LinkedStacks.StartAsync(Queues);
        var forwarding = await s.Server.ListenAnyAsync();
        var accept = forwarding.AcceptAsync().AsTask();
        await using var client = await s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.19.0.5"), 8000)).WaitAsync(Deadline);
        await using var forwarded = await accept.WaitAsync(Deadline);
        await forwarding.DisposeAsync();

        var refused = await Assert.ThrowsAsync<SocketException>(
            () => s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.19.0.5"), 8000)).WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        await forwarded.Output.WriteAsync("still here"u8.ToArray());
        await forwarded.Output.CompleteAsync();
        Assert.Equal("still here"u8.ToArray(), await ReadToEndAsync(client.Input));

        // Nothing forwards any more, but a forwarding listener can be opened again.
        await using var again = await s.Server.ListenAnyAsync();
        var acceptAgain = again.AcceptAsync().AsTask();
        await using var second = await s.Client.ConnectAsync(new IPEndPoint(IPAddress.Parse("198.19.0.7"), 8000)).WaitAsync(Deadline);
        await using var forwardedAgain = await acceptAgain.WaitAsync(Deadline);
        Assert.Equal(IPAddress.Parse("198.19.0.7"), forwardedAgain.LocalEndPoint.Address);
    }
}
