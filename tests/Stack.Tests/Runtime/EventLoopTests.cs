using System.Buffers;
using System.Text;
using TunStack;
using TunStack.Runtime;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Runtime;

/// <summary>
/// The event loop and the pipe API over an in-memory device: a scripted peer on one side, an application using
/// <see cref="TunStackConnection"/> on the other. The test thread turns the loop by hand.
/// </summary>
public class EventLoopTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private sealed class Harness : IDisposable
    {
        public readonly QueueDevice Device = new();
        public readonly EventLoop Loop;
        public uint ClientNxt = 5000;
        public uint ServerNxt;

        public Harness() => Loop = new EventLoop(new NetStack(ScriptedPeer.DefaultOptions()), Device);

        public void Send(uint seq, uint ack, TcpFlags flags, ReadOnlySpan<byte> payload = default, TcpOptions options = default) =>
            Device.Inject(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, 40000, 7,
                seq, ack, flags, 65535, options, payload));

        /// <summary>
        /// Listens on port 7 and sends the peer's SYN; returns the listener and the stack's SYN-ACK, with
        /// <see cref="ClientNxt"/> past the SYN and <see cref="ServerNxt"/> past the SYN-ACK.
        /// </summary>
        public async Task<(TunStackListener Listener, Seg SynAck)> ListenAndSendSynAsync()
        {
            var listener = await Loop.ListenAsync(new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Any, 7), null);
            Send(ClientNxt, 0, TcpFlags.Syn, default, new TcpOptions { Mss = 1460 });
            var synAck = Run(s => s.Count == 1)[0];
            ClientNxt++;
            ServerNxt = synAck.Seq + 1;
            return (listener, synAck);
        }

        /// <summary>Turns the loop until <paramref name="until"/> holds for the segments written so far.</summary>
        public List<Seg> Run(Func<List<Seg>, bool> until)
        {
            var seen = new List<Seg>();
            var stop = DateTime.UtcNow + Deadline;
            while (DateTime.UtcNow < stop)
            {
                Loop.RunOnce(wait: false);
                while (Device.Written.TryDequeue(out var packet))
                    seen.Add(ScriptedPeer.Parse(packet));
                if (until(seen)) return seen;
                Thread.Yield();
            }
            throw new TimeoutException("expected segments did not arrive: " + string.Join(" | ", seen));
        }

        public void Dispose() => Device.Dispose();
    }

    [Fact]
    public async Task Accepted_connection_echoes_through_pipes_and_closes_gracefully()
    {
        using var h = new Harness();
        var (listener, synAck) = await h.ListenAndSendSynAsync();
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack);
        h.Loop.RunOnce(wait: false);

        var accept = listener.AcceptAsync().AsTask();
        var connection = await accept.WaitAsync(Deadline);
        Assert.Equal(synAck.Seq, connection.Info.LocalInitialSequence);
        Assert.Equal(5000u, connection.Info.PeerInitialSequence);

        // The application: echo until end of input, then close.
        var app = Task.Run(async () =>
        {
            while (true)
            {
                var result = await connection.Input.ReadAsync();
                foreach (var memory in result.Buffer)
                    await connection.Output.WriteAsync(memory);
                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) break;
            }
            await connection.Output.CompleteAsync();
        });

        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack | TcpFlags.Psh, "ping"u8);
        h.ClientNxt += 4;
        var echoed = h.Run(s => s.Any(x => x.Payload.Length > 0)).First(x => x.Payload.Length > 0);
        Assert.Equal("ping", Encoding.ASCII.GetString(echoed.Payload));
        Assert.Equal(h.ServerNxt, echoed.Seq);
        h.ServerNxt += 4;

        // Peer closes; the application sees end of input, completes its output, and our FIN follows.
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Fin | TcpFlags.Ack);
        h.ClientNxt++;
        var fin = h.Run(s => s.Any(x => x.Flags.HasFlag(TcpFlags.Fin))).First(x => x.Flags.HasFlag(TcpFlags.Fin));
        Assert.Equal(h.ServerNxt, fin.Seq);
        Assert.Equal(h.ClientNxt, fin.Ack);
        await app.WaitAsync(Deadline);

        h.Send(h.ClientNxt, h.ServerNxt + 1, TcpFlags.Ack);
        h.Loop.RunOnce(wait: false);
        Assert.Empty(h.Loop.Stack.Connections);
        Assert.Equal(0, h.Loop.ApplicationConnectionCount);
        Assert.Null(connection.Tcb.ReceiveSink); // "ping" went straight to the pipe; the TCB holds no pipe now
    }

    [Fact]
    public async Task Peer_reset_fails_the_applications_read()
    {
        using var h = new Harness();
        var (listener, _) = await h.ListenAndSendSynAsync();
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack);
        h.Loop.RunOnce(wait: false);
        var connection = await listener.AcceptAsync().AsTask().WaitAsync(Deadline);

        var read = connection.Input.ReadAsync().AsTask();
        h.Send(h.ClientNxt, 0, TcpFlags.Rst);
        h.Loop.RunOnce(wait: false);
        var reset = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(() => read.WaitAsync(Deadline));
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, reset.SocketErrorCode);

        // The loop had a read pending on the output pipe; it is cancelled, so a writer learns of the reset too.
        h.Loop.RunOnce(wait: false);
        var late = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(
            () => connection.Output.WriteAsync("late"u8.ToArray()).AsTask().WaitAsync(Deadline));
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, late.SocketErrorCode);
    }

    /// <summary>
    /// The handshake's ACK, data and a RST in one batch: the connection closed before the loop handed it over, and is
    /// still accepted (as Linux's accept() returns it); the first read reports the reset, the data having been flushed
    /// with the segment queues (RFC 9293 §3.10.7.4, RST in ESTABLISHED).
    /// </summary>
    [Fact]
    public async Task A_connection_reset_in_the_batch_that_completed_it_is_still_accepted_and_reports_the_reset()
    {
        using var h = new Harness();
        var (listener, _) = await h.ListenAndSendSynAsync();
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack);
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack | TcpFlags.Psh, "some bytes"u8);
        h.Send(h.ClientNxt + 10, 0, TcpFlags.Rst);
        h.Loop.RunOnce(wait: false);
        Assert.Empty(h.Loop.Stack.Connections);

        var connection = await listener.AcceptAsync().AsTask().WaitAsync(Deadline);
        var received = new List<byte>();
        var reset = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(async () =>
        {
            while (true)
            {
                var result = await connection.Input.ReadAsync().AsTask().WaitAsync(Deadline);
                foreach (var segment in result.Buffer)
                    received.AddRange(segment.ToArray());
                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) return;
            }
        });
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, reset.SocketErrorCode);
        Assert.Empty(received);
        await connection.DisposeAsync();
        h.Loop.RunOnce(wait: false);
        Assert.Equal(0, h.Loop.ApplicationConnectionCount);
        Assert.Null(connection.Tcb.ReceiveSink); // the TCB no longer keeps the connection's pipes alive
    }

    [Fact]
    public async Task Large_application_write_is_sent_completely_as_the_peer_acknowledges()
    {
        using var h = new Harness();
        var (listener, _) = await h.ListenAndSendSynAsync();
        h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack);
        h.Loop.RunOnce(wait: false);
        var connection = await listener.AcceptAsync().AsTask().WaitAsync(Deadline);

        // 1 MB: more than the 64 KiB send buffer and the pipe's threshold, so both backpressure paths run.
        var data = new byte[1_000_000];
        new Random(42).NextBytes(data);
        var writer = Task.Run(async () =>
        {
            await connection.Output.WriteAsync(data);
            await connection.Output.CompleteAsync();
        });

        var received = new MemoryStream();
        var stop = DateTime.UtcNow + Deadline;
        bool fin = false;
        while (!fin && DateTime.UtcNow < stop)
        {
            h.Loop.RunOnce(wait: false);
            while (h.Device.Written.TryDequeue(out var packet))
            {
                var seg = ScriptedPeer.Parse(packet);
                if (seg.Seq == h.ServerNxt && seg.Payload.Length > 0)
                {
                    received.Write(seg.Payload);
                    h.ServerNxt += (uint)seg.Payload.Length;
                }
                if (seg.Flags.HasFlag(TcpFlags.Fin) && seg.Seq + (uint)seg.Payload.Length == h.ServerNxt)
                {
                    fin = true;
                    h.ServerNxt++;
                }
                h.Send(h.ClientNxt, h.ServerNxt, TcpFlags.Ack); // acknowledge everything in order so far
            }
            Thread.Yield();
        }
        await writer.WaitAsync(Deadline);
        Assert.True(fin, "no FIN after the data");
        Assert.Equal(data, received.ToArray());
    }
}
