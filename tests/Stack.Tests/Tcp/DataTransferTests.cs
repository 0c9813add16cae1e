using System.Text;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

public class DataTransferTests
{
    private static (ScriptedPeer peer, ScriptedConnection c, Tcb tcb) Established(NetStackOptions? options = null)
    {
        var peer = new ScriptedPeer(options);
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        return (peer, c, tcb);
    }

    private const long DelayedAck = 40_000;

    [Fact]
    public void Incoming_data_is_acknowledged_after_the_delayed_ack_time_and_readable()
    {
        var (peer, c, tcb) = Established();
        Assert.Empty(c.SendData("hello"u8));             // one small segment: the ACK waits (RFC 9293 §3.8.6.3)
        Assert.Empty(peer.Advance(DelayedAck - 1));
        var ack = Assert.Single(peer.Advance(1));

        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.Equal(c.ServerNxt, ack.Seq);
        // The right edge stays where the SYN-ACK put it (65535) until it can move by an MSS (receiver SWS avoidance).
        Assert.Equal((ushort)(65535 - 5), ack.Window);
        Assert.Equal(5, tcb.BytesAvailable);
        Assert.Equal(1, peer.Stack.Counters.DelayedAcks);

        var buffer = new byte[16];
        int n = tcb.Receive(buffer);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, n));
    }

    [Fact]
    public void Outgoing_data_is_segmented_by_mss_and_the_runt_waits_for_the_ack_nagle()
    {
        var (peer, c, tcb) = Established();
        var data = Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray();
        Assert.Equal(3000, tcb.Send(data));

        // Two full segments go; the last 80 bytes wait while data is unacknowledged (Nagle, RFC 9293 §3.7.4).
        var segments = peer.Poll();
        Assert.Equal([1460, 1460], segments.Select(s => s.Payload.Length));
        Assert.Equal(c.ServerNxt, segments[0].Seq);
        Assert.Equal(c.ServerNxt + 1460, segments[1].Seq);

        c.ServerNxt += 2920;
        var tail = Assert.Single(c.SendAck());
        Assert.Equal(80, tail.Payload.Length);
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, tail.Flags);
        Assert.Equal(data, segments.Append(tail).SelectMany(s => s.Payload));

        c.ServerNxt += 80;
        Assert.Empty(c.SendAck());
        Assert.Equal(0, tcb.BytesQueued);
        Assert.Equal(tcb.SndMax, tcb.SndUna);
    }

    [Fact]
    public void With_no_delay_the_runt_goes_at_once()
    {
        var (peer, c, tcb) = Established();
        tcb.NoDelay = true;
        tcb.Send(new byte[3000]);
        Assert.Equal([1460, 1460, 80], peer.Poll().Select(s => s.Payload.Length));
        tcb.Send("more"u8);
        Assert.Equal(4, Assert.Single(peer.Poll()).Payload.Length);
    }

    [Fact]
    public void Nagle_lets_a_small_segment_go_when_nothing_is_in_flight()
    {
        var (peer, c, tcb) = Established();
        tcb.Send("a"u8);
        Assert.Single(Assert.Single(peer.Poll()).Payload);
        tcb.Send("b"u8);
        Assert.Empty(peer.Poll());            // "a" is unacknowledged: "b" waits
        tcb.Send("c"u8);
        Assert.Empty(peer.Poll());
        c.ServerNxt += 1;
        var next = Assert.Single(c.SendAck()); // everything acknowledged: the coalesced rest goes
        Assert.Equal("bc"u8.ToArray(), next.Payload);
    }

    [Fact]
    public void Sender_respects_the_peer_window()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish(window: 2000);
        tcb.Send(new byte[5000]);

        // One full segment fits; the 540 bytes left in the window would be a silly small segment while data is
        // in flight, so they wait (sender SWS avoidance, RFC 9293 §3.8.6.2.1).
        var segment = Assert.Single(peer.Poll());
        Assert.Equal(1460, segment.Payload.Length);

        // The peer acknowledges it and opens the window to 4000: two more full segments fit; the 620-byte rest waits
        // for their ACK (Nagle).
        c.ServerNxt += 1460;
        var more = c.SendAck(window: 4000);
        Assert.Equal([1460, 1460], more.Select(s => s.Payload.Length));
        Assert.Equal(3540, tcb.BytesQueued); // 2920 sent, not yet acknowledged, and 620 unsent
        c.ServerNxt += 2920;
        Assert.Equal(620, Assert.Single(c.SendAck(window: 4000)).Payload.Length);
    }

    [Fact]
    public void Old_duplicate_data_is_not_delivered_twice()
    {
        var (peer, c, tcb) = Established();
        c.SendData("abc"u8);
        var dup = Assert.Single(c.Send(c.ClientNxt - 3, c.ServerNxt, TcpFlags.Ack, "abc"u8));
        Assert.Equal(c.ClientNxt, dup.Ack);
        Assert.Equal(3, tcb.BytesAvailable);
    }

    [Fact]
    public void Overlapping_segment_delivers_only_the_new_part()
    {
        var (peer, c, tcb) = Established();
        c.SendData("abc"u8);
        Assert.Empty(c.Send(c.ClientNxt - 1, c.ServerNxt, TcpFlags.Ack, "cdef"u8));
        var ack = Assert.Single(peer.Advance(DelayedAck));
        Assert.Equal(c.ClientNxt + 3, ack.Ack);
        var buffer = new byte[10];
        Assert.Equal("abcdef", Encoding.ASCII.GetString(buffer, 0, tcb.Receive(buffer)));
    }

    [Fact]
    public void Out_of_order_segment_is_not_acknowledged_beyond_the_gap()
    {
        var (peer, c, tcb) = Established();
        var ack = Assert.Single(c.Send(c.ClientNxt + 10, c.ServerNxt, TcpFlags.Ack, "later"u8));
        Assert.Equal(c.ClientNxt, ack.Ack); // duplicate ACK asking for the gap
        Assert.Equal(0, tcb.BytesAvailable);
    }

    [Fact]
    public void Segment_outside_the_window_gets_an_ack_and_is_dropped()
    {
        var (peer, c, tcb) = Established();
        var ack = Assert.Single(c.Send(c.ClientNxt + 100_000, c.ServerNxt, TcpFlags.Ack, "far"u8));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.Unacceptable));
    }

    [Fact]
    public void Full_receive_buffer_closes_the_window_and_reading_reopens_it()
    {
        var (peer, c, tcb) = Established(ScriptedPeer.DefaultOptions(receiveBuffer: 4096));
        var ack = Assert.Single(c.SendData(new byte[4096]));
        Assert.Equal((ushort)0, ack.Window);

        // Data beyond a zero window is not accepted (only a probe at RCV.NXT is even looked at).
        var probe = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack, "z"u8));
        Assert.Equal(c.ClientNxt, probe.Ack);
        Assert.Equal((ushort)0, probe.Window);

        // Reading half the buffer is worth a window update (receiver SWS avoidance).
        tcb.Receive(new byte[2048]);
        var update = Assert.Single(peer.Poll());
        Assert.Equal((ushort)2048, update.Window);
        Assert.Equal(c.ClientNxt, update.Ack);
    }

    [Fact]
    public void Ack_for_data_not_yet_sent_is_answered_with_an_ack()
    {
        var (peer, c, tcb) = Established();
        var reply = Assert.Single(c.SendAck(ack: c.ServerNxt + 1000));
        Assert.Equal(TcpFlags.Ack, reply.Flags);
        Assert.Equal(c.ServerNxt, reply.Seq);
    }

    [Fact]
    public void Sequence_numbers_wrap_around_2_to_the_32()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientIsn: 0xFFFF_FFFD);
        var tcb = c.Establish();
        Assert.Empty(c.SendData("0123456789"u8)); // crosses 2^32
        var ack = Assert.Single(peer.Advance(DelayedAck));
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.True(c.ClientNxt < 100);
        Assert.Equal(10, tcb.BytesAvailable);
    }

    [Fact]
    public void Three_duplicate_acks_trigger_fast_retransmit_of_the_first_segment()
    {
        var (peer, c, tcb) = Established();
        tcb.Send(new byte[1460 * 6]);
        var segments = peer.Poll();
        Assert.Equal(6, segments.Count);

        // The first segment was lost: the peer ACKs the old point three times (once per later segment).
        Assert.Empty(c.SendAck());
        Assert.Empty(c.SendAck());
        var retransmit = Assert.Single(c.SendAck());
        Assert.Equal(c.ServerNxt, retransmit.Seq);
        Assert.Equal(1460, retransmit.Payload.Length);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
    }
}
