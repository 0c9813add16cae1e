using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// When in-order data is acknowledged (RFC 9293 §3.8.6.3, RFC 5681 §4.2, RFC 1122 §4.2.3.2): a lone small segment after
/// the delayed-ACK time, every second full-sized segment at once, and never later than data going the other way.
/// </summary>
public class AckPolicyTests
{
    private const long DelayedAck = 40_000; // NetStackOptions.DelayedAckMicros
    private const int FullSized = 1448;     // 1460 less the 12 bytes of timestamps the peer puts in every segment

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Connected()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        return (peer, c, c.EstablishWith(sack: true, timestamps: true));
    }

    [Fact]
    public void One_small_segment_is_acknowledged_after_exactly_the_delayed_ack_time()
    {
        var (peer, c, tcb) = Connected();
        Assert.Empty(c.SendAt(0, 100));
        Assert.Empty(peer.Advance(DelayedAck - 1));
        var ack = Assert.Single(peer.Advance(1));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.PeerSeq(100), ack.Ack);
        Assert.Equal(c.ServerNxt, ack.Seq);
        Assert.Equal(1, peer.Stack.Counters.DelayedAcks);
        Assert.Empty(peer.Advance(10 * DelayedAck)); // one ACK, not a timer that keeps firing
    }

    [Fact]
    public void Second_full_sized_segment_is_acknowledged_at_once_and_the_third_waits()
    {
        var (peer, c, tcb) = Connected();
        Assert.Empty(c.SendAt(0, FullSized));
        var ack = Assert.Single(c.SendAt(FullSized, FullSized));
        Assert.Equal(c.PeerSeq(2 * FullSized), ack.Ack);
        Assert.Equal(0, peer.Stack.Counters.DelayedAcks);

        Assert.Empty(c.SendAt(2 * FullSized, FullSized));
        Assert.Empty(peer.Advance(DelayedAck - 1));
        Assert.Equal(c.PeerSeq(3 * FullSized), Assert.Single(peer.Advance(1)).Ack);
    }

    [Fact]
    public void Two_small_segments_are_not_two_full_sized_ones()
    {
        var (peer, c, tcb) = Connected();
        Assert.Empty(c.SendAt(0, 200));
        Assert.Empty(c.SendAt(200, 200));
        // The delayed-ACK timer started with the first segment and is not restarted by the second.
        Assert.Equal(c.PeerSeq(400), Assert.Single(peer.Advance(DelayedAck)).Ack);
    }

    [Fact]
    public void Burst_of_in_order_full_sized_segments_before_one_poll_gets_an_ack_per_two_segments()
    {
        var (peer, c, tcb) = Connected();
        for (int i = 0; i < 5; i++)
            c.InjectAt(i * FullSized, FullSized);
        var acks = peer.Poll();
        Assert.Equal([c.PeerSeq(2 * FullSized), c.PeerSeq(4 * FullSized)], acks.Select(a => a.Ack));
        // The fifth waits for its partner or the timer.
        Assert.Equal(c.PeerSeq(5 * FullSized), Assert.Single(peer.Advance(DelayedAck)).Ack);
    }

    [Fact]
    public void Data_going_the_other_way_carries_the_delayed_ack_and_cancels_it()
    {
        var (peer, c, tcb) = Connected();
        Assert.Empty(c.SendAt(0, 100));
        peer.Advance(DelayedAck / 2);
        tcb.Send("reply"u8);
        var data = Assert.Single(peer.Poll());
        Assert.Equal(c.PeerSeq(100), data.Ack);
        Assert.Equal("reply"u8.ToArray(), data.Payload);
        Assert.Empty(peer.Advance(DelayedAck)); // nothing left to acknowledge
        Assert.Equal(0, peer.Stack.Counters.DelayedAcks);
    }
}
