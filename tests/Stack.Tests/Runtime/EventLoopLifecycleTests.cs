using Microsoft.Extensions.Time.Testing;
using System.Net;
using System.Net.Sockets;
using TunStack.Runtime;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Runtime;

/// <summary>
/// How the event loop ends and what it survives: stopping resets every open connection (and the applications see it),
/// an exception from application-side code or a device write is counted and the loop carries on, and an application
/// that completes its output with an error resets the connection even when the send buffer is full.
/// Time is a <see cref="FakeTimeProvider"/>; the test thread turns the loop.
/// </summary>
public sealed class EventLoopLifecycleTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>A device that throws on the writes the test asks it to.</summary>
    private sealed class FlakyDevice : IPacketDevice
    {
        public readonly QueueDevice Inner = new();
        public int FailNextWrites;

        public string Name => Inner.Name;
        public int Mtu => Inner.Mtu;
        public int TryRead(Span<byte> buffer) => Inner.TryRead(buffer);

        public void Write(ReadOnlySpan<byte> packet)
        {
            if (FailNextWrites > 0)
            {
                FailNextWrites--;
                throw new IOException("write failed (test)");
            }
            Inner.Write(packet);
        }

        public void WaitReadable(TimeSpan timeout) => Inner.WaitReadable(timeout);
        public void Wake() => Inner.Wake();
        public void Dispose() => Inner.Dispose();
    }

    private sealed class Harness : IDisposable
    {
        public readonly FlakyDevice Device = new();
        public readonly FakeTimeProvider Time = new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(1));
        public readonly EventLoop Loop;
        public uint ClientNxt = 7000;
        public uint ServerNxt;

        public Harness() => Loop = new EventLoop(new NetStack(ScriptedPeer.DefaultOptions()), Device, Time);

        public void Send(uint seq, uint ack, TcpFlags flags, ReadOnlySpan<byte> payload = default, TcpOptions options = default,
            ushort window = 65535) =>
            Device.Inner.Inject(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, 40000, 7,
                seq, ack, flags, window, options, payload));

        public List<Seg> Run(Func<List<Seg>, bool> until)
        {
            var seen = new List<Seg>();
            var stop = DateTime.UtcNow + Deadline;
            while (DateTime.UtcNow < stop)
            {
                Loop.RunOnce(wait: false);
                while (Device.Inner.Written.TryDequeue(out var packet))
                    seen.Add(ScriptedPeer.Parse(packet));
                if (until(seen)) return seen;
                Thread.Yield();
            }
            throw new TimeoutException("expected segments did not arrive: " + string.Join(" | ", seen));
        }

        /// <summary>Handshake from the peer; returns the accepted connection.</summary>
        public async Task<TunStackConnection> EstablishAsync(TunStackListener listener)
        {
            Send(ClientNxt, 0, TcpFlags.Syn, default, new TcpOptions { Mss = 1460 });
            var synAck = Run(s => s.Count == 1)[0];
            ClientNxt++;
            ServerNxt = synAck.Seq + 1;
            Send(ClientNxt, ServerNxt, TcpFlags.Ack);
            Loop.RunOnce(wait: false);
            return await listener.AcceptAsync().AsTask().WaitAsync(Deadline);
        }

        public void Dispose() => Device.Dispose();
    }

    [Fact]
    public async Task Stop_resets_every_open_connection_and_the_application_sees_the_reset()
    {
        using var h = new Harness();
        var listener = await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);
        var connection = await h.EstablishAsync(listener);
        var read = connection.Input.ReadAsync().AsTask();
        var accept = listener.AcceptAsync().AsTask();

        h.Loop.Stop();

        // RFC 9293 §3.10.5: ABORT in ESTABLISHED sends <SEQ=SND.NXT><CTL=RST>.
        Assert.True(h.Device.Inner.Written.TryDequeue(out var packet), "no segment after Stop");
        var rst = ScriptedPeer.Parse(packet);
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(h.ServerNxt, rst.Seq);
        Assert.Empty(h.Loop.Stack.Connections);
        Assert.Equal(1, h.Loop.ConnectionsResetAtStop);
        var aborted = await Assert.ThrowsAsync<SocketException>(() => read.WaitAsync(Deadline));
        Assert.Equal(SocketError.OperationAborted, aborted.SocketErrorCode); // a read that was waiting
        await Assert.ThrowsAsync<ObjectDisposedException>(() => accept.WaitAsync(Deadline));
    }

    [Fact]
    public async Task Stop_with_nothing_open_sends_nothing()
    {
        using var h = new Harness();
        var listener = await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);
        var accept = listener.AcceptAsync().AsTask();

        h.Loop.Stop();

        Assert.Empty(h.Device.Inner.Written);
        Assert.Equal(0, h.Loop.ConnectionsResetAtStop);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => accept.WaitAsync(Deadline));
    }

    [Fact]
    public async Task Started_loop_resets_connections_when_stopped_from_another_thread()
    {
        using var h = new Harness();
        var listener = await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);
        h.Loop.Start();
        h.Send(h.ClientNxt, 0, TcpFlags.Syn, default, new TcpOptions { Mss = 1460 });
        h.ClientNxt++;
        byte[]? synAck = await PollAsync(() => h.Device.Inner.Written.TryDequeue(out var p) ? p : null);
        h.ServerNxt = ScriptedPeer.Parse(synAck).Seq + 1;
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack);
        var connection = await listener.AcceptAsync().AsTask().WaitAsync(Deadline);

        h.Loop.Stop();

        Assert.True(h.Loop.Completion.IsCompletedSuccessfully);
        Assert.True(h.Device.Inner.Written.TryDequeue(out var packet), "no RST after Stop");
        Assert.Equal(TcpFlags.Rst, ScriptedPeer.Parse(packet).Flags);
        var aborted = await Assert.ThrowsAsync<SocketException>(() => connection.Input.ReadAsync().AsTask().WaitAsync(Deadline));
        Assert.Equal(SocketError.OperationAborted, aborted.SocketErrorCode); // the input was completed with it at the reset
    }

    [Fact]
    public async Task An_exception_in_a_posted_action_is_counted_and_the_loop_carries_on()
    {
        using var h = new Harness();
        var listener = await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);

        h.Loop.Post(() => throw new InvalidOperationException("posted action failed"));
        h.Loop.RunOnce(wait: false);

        Assert.Equal(1, h.Loop.Stack.Counters.InternalErrors);
        Assert.Equal("posted action failed", h.Loop.Stack.Counters.LastInternalError?.Message);
        // And the stack still serves: a connection opens and carries data.
        var connection = await h.EstablishAsync(listener);
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack | TcpFlags.Psh, "after"u8);
        h.Loop.RunOnce(wait: false);
        var result = await connection.Input.ReadAsync().AsTask().WaitAsync(Deadline);
        Assert.Equal("after"u8.ToArray(), System.Buffers.BuffersExtensions.ToArray(result.Buffer));
    }

    [Fact]
    public async Task A_device_write_that_throws_loses_that_packet_only()
    {
        using var h = new Harness();
        await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);
        h.Device.FailNextWrites = 1;

        h.Send(h.ClientNxt, 0, TcpFlags.Syn, default, new TcpOptions { Mss = 1460 });
        h.Loop.RunOnce(wait: false);

        Assert.Empty(h.Device.Inner.Written);
        Assert.Equal(1, h.Loop.WriteErrors);
        Assert.IsType<IOException>(h.Loop.LastWriteError);
        // The SYN-ACK is retransmitted after the initial RTO (RFC 6298 §2.1: 1 s), like any lost packet.
        h.Time.Advance(TimeSpan.FromMilliseconds(1100));
        var synAck = h.Run(s => s.Count == 1)[0];
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(h.ClientNxt + 1, synAck.Ack);
    }

    [Fact]
    public async Task Output_completed_with_an_error_resets_even_when_the_send_buffer_is_full()
    {
        using var h = new Harness();
        var listener = await h.Loop.ListenAsync(new IPEndPoint(IPAddress.IPv6Any, 7), null);
        var connection = await h.EstablishAsync(listener);

        // The peer acknowledges nothing: the 64 KiB send buffer fills, the rest waits in the pipe.
        await connection.Output.WriteAsync(new byte[100_000]).AsTask().WaitAsync(Deadline);
        h.Run(s => s.Sum(x => x.Payload.Length) > 0);
        Assert.Equal(0, connection.Tcb.SendSpace);

        // The application gives up on the peer (an idle timeout, say): its error means "reset", at once.
        await connection.Output.CompleteAsync(new TimeoutException("peer took nothing"));
        await connection.Input.CompleteAsync();
        await connection.DisposeAsync();
        var segments = h.Run(s => s.Any(x => (x.Flags & TcpFlags.Rst) != 0));

        var rst = segments.First(x => (x.Flags & TcpFlags.Rst) != 0);
        Assert.Equal(TcpState.Closed, connection.Tcb.State);
        Assert.Equal(1, h.Loop.Stack.Counters.ConnectionsAborted);
        Assert.True(rst.Seq - h.ServerNxt <= 65536u, $"RST seq {rst.Seq} is not SND.NXT after at most 64 KiB sent");
    }

    private static async Task<T> PollAsync<T>(Func<T?> probe) where T : class
    {
        var stop = DateTime.UtcNow + Deadline;
        while (DateTime.UtcNow < stop)
        {
            if (probe() is { } value) return value;
            await Task.Delay(10);
        }
        throw new TimeoutException("condition not met within the deadline");
    }
}
