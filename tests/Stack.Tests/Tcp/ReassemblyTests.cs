using TunStack.Tcp;
using TunStack.Tcp.Receive;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// The receiving side of loss: data beyond a hole is held (RFC 9293 §3.10.7.4, seventh check), acknowledged at once
/// with SACK blocks (RFC 5681 §4.2, RFC 2018 §4), duplicates are reported with D-SACK (RFC 2883), and everything is
/// delivered in order when the hole fills. Offsets are positions in the peer's byte stream.
/// </summary>
public class ReassemblyTests
{
    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Connected(bool timestamps = true)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: true, timestamps: timestamps);
        return (peer, c, tcb);
    }

    [Fact]
    public void Out_of_order_segment_gets_an_immediate_duplicate_ack_with_a_sack_block_and_is_not_readable()
    {
        var (peer, c, tcb) = Connected();

        // Bytes 0..999 are lost; 1000..1999 arrive.
        var ack = Assert.Single(c.SendAt(1000, 1000));

        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ServerNxt, ack.Seq);
        Assert.Equal(c.PeerSeq(0), ack.Ack);          // still asking for byte 0: a duplicate ACK
        Assert.Empty(ack.Payload);
        Assert.Equal([(1000, 2000)], c.PeerSackBlocks(ack));
        Assert.Equal((ushort)65535, ack.Window);      // held bytes sit inside the window already offered
        Assert.Equal(0, tcb.BytesAvailable);
        Assert.Equal(1000, tcb.BytesOutOfOrder);
        Assert.Empty(ScriptedConnection.ReadAll(tcb));
        Assert.Equal(1, peer.Stack.Counters.OutOfOrderSegments);
    }

    [Fact]
    public void Filling_the_hole_is_acknowledged_at_once_and_delivers_every_byte_in_order()
    {
        var (peer, c, tcb) = Connected();
        c.SendAt(1000, 1000);
        c.SendAt(2000, 1000);

        // RFC 5681 §4.2: a segment that fills a gap is acknowledged immediately, not after the delayed-ACK time.
        var ack = Assert.Single(c.SendAt(0, 1000));
        Assert.Equal(c.PeerSeq(3000), ack.Ack);
        Assert.Equal(0, ack.Options.SackBlockCount); // nothing is held any more
        // 65535 was offered up to byte 65534; 3000 bytes wait to be read, the edge does not move for a 1-byte gain.
        Assert.Equal((ushort)(65535 - 3000), ack.Window);
        Assert.Equal(0, tcb.BytesOutOfOrder);
        Assert.Equal(ScriptedConnection.Pattern(0, 3000), ScriptedConnection.ReadAll(tcb));
        Assert.Empty(peer.Advance(1_000_000)); // no delayed ACK is left over
    }

    [Fact]
    public void Filling_part_of_the_hole_acknowledges_up_to_the_next_hole_and_keeps_reporting_it()
    {
        var (peer, c, tcb) = Connected();
        c.SendAt(2000, 1000);
        var ack = Assert.Single(c.SendAt(0, 1000));
        Assert.Equal(c.PeerSeq(1000), ack.Ack);
        Assert.Equal([(2000, 3000)], c.PeerSackBlocks(ack));
        Assert.Equal(ScriptedConnection.Pattern(0, 1000), ScriptedConnection.ReadAll(tcb));
    }

    /// <summary>RFC 2018 §4: the first block holds the segment that triggered the ACK, then the most recently reported.</summary>
    [Fact]
    public void Several_holes_are_reported_most_recent_first_up_to_four_blocks_without_timestamps()
    {
        var (peer, c, tcb) = Connected(timestamps: false);
        var arrivals = new[] { 5000, 1000, 9000, 3000, 7000 }; // five blocks of 1000 bytes, each after a hole
        var acks = arrivals.Select(offset => Assert.Single(c.SendAt(offset, 1000))).ToList();

        Assert.All(acks, a => Assert.Equal(c.PeerSeq(0), a.Ack));
        Assert.Equal([(5000, 6000)], c.PeerSackBlocks(acks[0]));
        Assert.Equal([(1000, 2000), (5000, 6000)], c.PeerSackBlocks(acks[1]));
        Assert.Equal([(9000, 10000), (1000, 2000), (5000, 6000)], c.PeerSackBlocks(acks[2]));
        Assert.Equal([(3000, 4000), (9000, 10000), (1000, 2000), (5000, 6000)], c.PeerSackBlocks(acks[3]));
        // 10 + 4·8 = 42 bytes would not fit in 40: four blocks at most; the oldest report (5000) drops out.
        Assert.Equal([(7000, 8000), (3000, 4000), (9000, 10000), (1000, 2000)], c.PeerSackBlocks(acks[4]));

        // A segment joining two held blocks reports the merged block first; the blocks it swallowed are not repeated.
        var merged = Assert.Single(c.SendAt(4000, 1000));
        Assert.Equal([(3000, 6000), (7000, 8000), (9000, 10000), (1000, 2000)], c.PeerSackBlocks(merged));
    }

    [Fact]
    public void With_timestamps_at_most_three_sack_blocks_fit()
    {
        var (peer, c, tcb) = Connected(timestamps: true);
        foreach (int offset in new[] { 1000, 3000, 5000 })
            c.SendAt(offset, 1000);
        var ack = Assert.Single(c.SendAt(7000, 1000));
        // 12 bytes of timestamps + 2 NOPs + 2 + 3·8 = 40: the fourth block has no room (RFC 2018 §3).
        Assert.Equal([(7000, 8000), (5000, 6000), (3000, 4000)], c.PeerSackBlocks(ack));
        Assert.True(ack.Options.HasTimestamps);
    }

    /// <summary>RFC 2883 §4.1.1: a duplicate below RCV.NXT is reported as the first (D-SACK) block, once.</summary>
    [Fact]
    public void Duplicate_below_rcv_nxt_is_reported_once_with_a_dsack_block()
    {
        var (peer, c, tcb) = Connected();
        Assert.Empty(c.SendAt(0, 1000));              // in order: the ACK is delayed
        var dsack = Assert.Single(c.SendAt(0, 1000)); // the same bytes again: ACK at once
        Assert.Equal(c.PeerSeq(1000), dsack.Ack);
        Assert.Equal([(0, 1000)], c.PeerSackBlocks(dsack));
        Assert.Equal(1, peer.Stack.Counters.DuplicateSegments);
        Assert.Equal(ScriptedConnection.Pattern(0, 1000), ScriptedConnection.ReadAll(tcb)); // delivered once

        // The next ACK does not repeat it (RFC 2883 §4: each duplicate is reported in at most one D-SACK block).
        Assert.Empty(c.SendAt(1000, 1000));
        var next = Assert.Single(peer.Advance(40_000));
        Assert.Equal(c.PeerSeq(2000), next.Ack);
        Assert.Equal(0, next.Options.SackBlockCount);
    }

    /// <summary>
    /// RFC 2883 §4 and its example §4.1.3: "If the duplicate segment is part of a larger block of non-contiguous data in
    /// the receiver's data queue, then the following SACK block should be used to specify this larger block."
    /// </summary>
    [Fact]
    public void Duplicate_inside_a_held_block_is_reported_first_followed_by_the_containing_block()
    {
        var (peer, c, tcb) = Connected();
        c.SendAt(1000, 1000);
        c.SendAt(2000, 1000);
        c.SendAt(5000, 1000);

        var dsack = Assert.Single(c.SendAt(2000, 1000));
        Assert.Equal(c.PeerSeq(0), dsack.Ack);
        Assert.Equal([(2000, 3000), (1000, 3000), (5000, 6000)], c.PeerSackBlocks(dsack));
        Assert.Equal(1, peer.Stack.Counters.DuplicateSegments);
        Assert.Equal(3000, tcb.BytesOutOfOrder);

        // Reported once: the next out-of-order arrival has no D-SACK block; the others follow in the order they were
        // last reported as a first block (RFC 2018 §4): 5000 after 1000.
        var next = Assert.Single(c.SendAt(7000, 1000));
        Assert.Equal([(7000, 8000), (5000, 6000), (1000, 3000)], c.PeerSackBlocks(next));
    }

    [Fact]
    public void Fin_on_an_out_of_order_segment_is_processed_when_the_gap_fills()
    {
        var (peer, c, tcb) = Connected();
        var dupAck = Assert.Single(c.SendAt(1000, 1000, TcpFlags.Ack | TcpFlags.Fin));
        Assert.Equal(c.PeerSeq(0), dupAck.Ack);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.False(tcb.FinReceived);

        var ack = Assert.Single(c.SendAt(0, 1000));
        Assert.Equal(c.PeerSeq(2000) + 1, ack.Ack);     // the data and the FIN
        Assert.Equal(TcpState.CloseWait, tcb.State);
        Assert.Equal(ScriptedConnection.Pattern(0, 2000), ScriptedConnection.ReadAll(tcb));
        Assert.True(tcb.ReceiveFinished);
    }

    /// <summary>
    /// A bare FIN beyond a hole is an out-of-order segment like any other: RFC 5681 §4.2 asks for an immediate duplicate
    /// ACK, and RFC 9293 §3.10.7.4 (seventh and eighth checks) lets it be held and processed once RCV.NXT reaches it,
    /// as Linux does (the FIN is queued out of order with the data).
    /// </summary>
    [Fact]
    public void Bare_fin_beyond_a_hole_gets_a_duplicate_ack_and_is_processed_when_the_gap_fills()
    {
        var (peer, c, tcb) = Connected();
        var dupAck = Assert.Single(c.Send(c.PeerSeq(1000), c.ServerNxt, TcpFlags.Ack | TcpFlags.Fin));
        Assert.Equal(c.PeerSeq(0), dupAck.Ack);
        Assert.Equal(TcpState.Established, tcb.State);

        var ack = Assert.Single(c.SendAt(0, 1000));
        Assert.Equal(c.PeerSeq(1000) + 1, ack.Ack);
        Assert.Equal(TcpState.CloseWait, tcb.State);
    }

    /// <summary>RFC 2018 §4: SACK blocks go in every ACK while data is held out of order, data segments included.</summary>
    [Fact]
    public void Data_sent_while_holding_out_of_order_data_carries_the_sack_blocks()
    {
        var (peer, c, tcb) = Connected();
        c.SendAt(1000, 1000);
        tcb.Send(new byte[100]);
        var data = Assert.Single(peer.Poll());
        Assert.Equal(100, data.Payload.Length);
        Assert.Equal(c.PeerSeq(0), data.Ack);
        Assert.Equal([(1000, 2000)], c.PeerSackBlocks(data));
    }

    /// <summary>
    /// GUIDE §7: segments delivered in one batch (several Receive calls, one Poll) must each get their duplicate ACK
    /// (RFC 5681 §4.2), not one ACK for the batch, or the sender never sees three duplicates.
    /// </summary>
    [Fact]
    public void Burst_of_out_of_order_segments_before_one_poll_gets_one_ack_per_segment()
    {
        var (peer, c, tcb) = Connected();
        c.InjectAt(1000, 1000);
        c.InjectAt(3000, 1000);
        c.InjectAt(5000, 1000);
        var acks = peer.Poll();

        Assert.Equal(3, acks.Count);
        Assert.All(acks, a => Assert.Equal(c.PeerSeq(0), a.Ack));
        Assert.Equal([(1000, 2000)], c.PeerSackBlocks(acks[0]));
        Assert.Equal([(3000, 4000), (1000, 2000)], c.PeerSackBlocks(acks[1]));
        Assert.Equal([(5000, 6000), (3000, 4000), (1000, 2000)], c.PeerSackBlocks(acks[2]));
    }

    [Fact]
    public void More_holes_than_the_reassembler_keeps_drops_the_extra_segment_and_recovers()
    {
        var (peer, c, tcb) = Connected();
        const int max = Reassembler.MaxRanges;
        // Segments of 100 bytes at 100, 300, 500, ...: every one after its own 100-byte hole.
        for (int k = 0; k < max; k++)
            Assert.Single(c.SendAt(200 * k + 100, 100));
        Assert.Equal(max * 100, tcb.BytesOutOfOrder);

        // One more hole than there are entries: not held, counted, still acknowledged.
        var ack = Assert.Single(c.SendAt(200 * max + 100, 100));
        Assert.Equal(c.PeerSeq(0), ack.Ack);
        Assert.Equal(1, peer.Stack.Counters.OutOfOrderDropped);
        Assert.Equal(max * 100, tcb.BytesOutOfOrder);
        Assert.Equal(max, peer.Stack.Counters.OutOfOrderSegments);

        // The peer fills the holes one by one; each fill delivers the block after it.
        for (int k = 0; k < max; k++)
            Assert.Equal(c.PeerSeq(200 * k + 200), Assert.Single(c.SendAt(200 * k, 100)).Ack);
        // The last hole, then the segment that was dropped, sent again.
        Assert.Empty(c.SendAt(200 * max, 100));
        c.SendAt(200 * max + 100, 100);
        var final = Assert.Single(peer.Advance(40_000));
        Assert.Equal(c.PeerSeq(200 * max + 200), final.Ack);
        Assert.Equal(ScriptedConnection.Pattern(0, 200 * max + 200), ScriptedConnection.ReadAll(tcb));
        Assert.Null(peer.Stack.Counters.LastInternalError);
    }
}
