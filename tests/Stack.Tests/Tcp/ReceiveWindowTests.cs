using CsCheck;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// The window we advertise (RFC 9293 §3.8.6.2.2, RFC 7323 §2): never more than the buffer can hold, the right edge not
/// moved left, receiver silly-window avoidance, and the update after the application drains a zero window.
/// </summary>
public class ReceiveWindowTests
{
    private const long DelayedAck = 40_000;

    [Fact]
    public void Right_edge_moves_only_when_it_can_move_by_an_mss_receiver_sws_avoidance()
    {
        var peer = new ScriptedPeer(); // 64 KiB buffer, no window scaling: the field offers at most 65535
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, timestamps: false);

        // 1000 bytes in: the edge stays where the SYN-ACK put it (byte 65535), so the window shrinks by 1000.
        c.SendAt(0, 1000);
        Assert.Equal((ushort)64535, Assert.Single(peer.Advance(DelayedAck)).Window);
        Assert.Equal(1000, ScriptedConnection.ReadAll(tcb).Length);
        Assert.Empty(peer.Poll()); // reading 1000 bytes is no reason for a window update

        // 500 more: the buffer has 65036 free, but moving the edge by 1001 bytes is less than an MSS (1460): it stays.
        c.SendAt(1000, 500);
        Assert.Equal((ushort)64035, Assert.Single(peer.Advance(DelayedAck)).Window);
        ScriptedConnection.ReadAll(tcb);

        // 100 more with everything read: 65436 free, the edge can move by 1501 ≥ 1460, and it does, to the free space.
        c.SendAt(1500, 100);
        var ack = Assert.Single(peer.Advance(DelayedAck));
        Assert.Equal(c.PeerSeq(1600), ack.Ack);
        Assert.Equal((ushort)65436, ack.Window);
    }

    [Fact]
    public void Reading_after_a_zero_window_sends_an_update_once_the_window_can_open_by_the_sws_threshold()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 4096));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, timestamps: false);
        Assert.Equal((ushort)4096, c.SynAck!.Window);

        Assert.Empty(c.SendAt(0, 1024));
        Assert.Equal((ushort)2048, Assert.Single(c.SendAt(1024, 1024)).Window);   // every second segment is ACKed
        Assert.Empty(c.SendAt(2048, 1024));
        var full = Assert.Single(c.SendAt(3072, 1024));
        Assert.Equal(c.PeerSeq(4096), full.Ack);
        Assert.Equal((ushort)0, full.Window);

        // Threshold: min(buffer / 2, MSS) = min(2048, 1460) = 1460 bytes (RFC 9293 §3.8.6.2.2).
        Assert.Equal(1000, tcb.Receive(new byte[1000]));
        Assert.Empty(peer.Poll());                       // 1000 < 1460: the window stays closed
        Assert.Equal(460, tcb.Receive(new byte[460]));
        var update = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Ack, update.Flags);
        Assert.Equal(c.PeerSeq(4096), update.Ack);
        Assert.Equal((ushort)1460, update.Window);

        // The peer fills exactly what was offered; one segment is acknowledged after the delayed-ACK time.
        Assert.Empty(c.SendAt(4096, 1460));
        var closed = Assert.Single(peer.Advance(DelayedAck));
        Assert.Equal((ushort)0, closed.Window);
        Assert.Equal(c.PeerSeq(5556), closed.Ack);
    }

    /// <summary>RFC 9293 §3.10.7.4: a segment that runs past the window is trimmed to it; the rest is the peer's to resend.</summary>
    [Fact]
    public void Segment_running_past_the_window_keeps_only_what_fits()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 4096));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, timestamps: false);
        var ack = Assert.Single(c.SendAt(0, 5000, TcpFlags.Ack | TcpFlags.Fin));
        Assert.Equal(c.PeerSeq(4096), ack.Ack);            // the FIN was past the window too: not taken
        Assert.Equal((ushort)0, ack.Window);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(ScriptedConnection.Pattern(0, 4096), ScriptedConnection.ReadAll(tcb));
    }

    private enum Step { Deliver, Old, Read, Wait }

    /// <summary>
    /// A property over random segment sequences (in order, out of order, old, overlapping, up to the largest edge ever
    /// offered) and random application reads, for random buffer sizes and window-scale shifts: every window we send,
    /// ack + (window &lt;&lt; shift), stays within what the receive buffer can hold (the first unread byte + its capacity), the
    /// right edge never moves left except by the rounding RFC 7323 §2.4 allows (less than one unit of the scale), data
    /// up to the largest edge ever offered is accepted (§2.4: "any segment that would have been in window for any ACK
    /// sent"), and the application reads exactly the peer's bytes, in order.
    /// </summary>
    [Fact]
    public void Advertised_window_never_exceeds_the_free_buffer_and_its_edge_never_moves_left()
    {
        var step = Gen.Select(Gen.Enum<Step>(), Gen.Int[0, 1 << 20], Gen.Int[1, 1448]);
        Gen.Select(Gen.Int[1500, 300_000], Gen.Int[0, 9], step.Array[1, 150])
            .Sample((buffer, shift, steps) => WindowScenario(buffer, (byte)shift, steps), iter: 300);
    }

    private static void WindowScenario(int buffer, byte shift, (Step Kind, int A, int B)[] steps)
    {
        var options = ScriptedPeer.DefaultOptions(receiveBuffer: buffer);
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Address = options.Address, IsnSecret = options.IsnSecret, ReceiveBufferSize = buffer, WindowScale = shift,
        });
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: true, timestamps: true, windowScale: 7);
        int granularity = 1 << shift;

        int read = 0;           // bytes the application has read
        var received = new MemoryStream();
        var lastEdge = new SeqNumber(c.PeerSeq(0) + c.SynAck!.Window);
        var maxEdge = lastEdge;
        int highestSent = 0;

        void Check(List<Seg> segments, string what)
        {
            foreach (var s in segments)
            {
                var edge = new SeqNumber(s.Ack) + (s.Window << shift);
                var bound = new SeqNumber(c.PeerSeq(read)) + buffer;
                if (edge > bound)
                    Assert.Fail($"{what}: window {s.Window}<<{shift} at ack {s.Ack - c.PeerSeq(0)} offers {edge - bound} bytes more than the buffer holds\n{peer.Trace}");
                if (edge - lastEdge <= -granularity)
                    Assert.Fail($"{what}: right edge moved left by {lastEdge - edge} (scale unit {granularity})\n{peer.Trace}");
                lastEdge = edge;
                if (edge > maxEdge) maxEdge = edge;
            }
        }

        int Acked() => tcb.RcvNxt - new SeqNumber(c.PeerSeq(0));

        foreach (var (kind, a, b) in steps)
        {
            int acked = Acked();
            int room = maxEdge - new SeqNumber(c.PeerSeq(0)) - acked;
            switch (kind)
            {
                case Step.Deliver when room > 0:
                {
                    int start = acked + a % room;
                    int length = Math.Min(b, acked + room - start);
                    Check(c.SendAt(start, length), $"data {start}+{length}");
                    highestSent = Math.Max(highestSent, start + length);
                    break;
                }
                case Step.Deliver:
                    Check(c.SendAt(acked, 1), "zero-window probe");
                    break;
                case Step.Old:
                {
                    int start = Math.Max(0, acked - a % 3000);
                    Check(c.SendAt(start, Math.Min(b, Math.Max(1, acked + room - start))), $"old data at {start}");
                    break;
                }
                case Step.Read:
                {
                    var chunk = new byte[a % (tcb.BytesAvailable + 1)];
                    int n = tcb.Receive(chunk);
                    received.Write(chunk, 0, n);
                    read += n;
                    Check(peer.Poll(), $"read {n}");
                    break;
                }
                case Step.Wait:
                    Check(peer.Advance(a % 100_000), "time");
                    break;
            }
        }

        // Deliver the rest in order, reading as it comes; everything must arrive exactly.
        for (int guard = 0; Acked() < highestSent && guard < 10_000; guard++)
        {
            int acked = Acked();
            int room = maxEdge - new SeqNumber(c.PeerSeq(0)) - acked;
            if (room > 0) Check(c.SendAt(acked, Math.Min(1448, room)), "fill");
            var chunk = new byte[tcb.BytesAvailable];
            int n = tcb.Receive(chunk);
            received.Write(chunk, 0, n);
            read += n;
            Check(peer.Poll(), "drain");
        }
        var rest = ScriptedConnection.ReadAll(tcb);
        received.Write(rest);
        if (Acked() < highestSent)
            Assert.Fail($"stuck at {Acked()} of {highestSent}\n{peer.Trace}");
        Assert.Equal(ScriptedConnection.Pattern(0, Acked()), received.ToArray());
        Assert.Null(peer.Stack.Counters.LastInternalError);
    }
}

/// <summary>
/// Sequence numbers compare modulo 2^32, so no variable may start at a default of 0 and be compared before it is set:
/// with an ISN in the upper half of the sequence space, 0 is "ahead". These run the same exchange with ISNs on both
/// sides of 2^31.
/// </summary>
public class SequenceSpaceHalvesTests
{
    [Theory]
    [InlineData(1000u)]
    [InlineData(0x7FFF_FF00u)]
    [InlineData(0x8000_0100u)]
    [InlineData(0xFFFF_FF00u)]
    public void The_window_never_exceeds_the_buffer_whatever_the_peers_isn(uint clientIsn)
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 262144));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientIsn: clientIsn);
        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1460, WindowScale = 10, SackPermitted = true }));
        byte shift = synAck.Options.WindowScale!.Value;
        Assert.Equal(3, shift); // 256 KiB needs a shift of 3
        Assert.Empty(c.SendAck());
        c.SendData(new byte[1448], TcpFlags.None);
        var ack = Assert.Single(c.SendData(new byte[1448], TcpFlags.None));
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.True(ack.Window << shift <= 262144 - 2896, $"window {ack.Window} << {shift} exceeds the free buffer");
        Assert.Equal((262144 - 2896) >> shift, ack.Window);
    }
}
