using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// The sending side of loss with SACK: RACK-TLP loss detection (RFC 8985), fast recovery paced by proportional rate
/// reduction (RFC 6937), CUBIC's reduction (RFC 9438 §4.6), the retransmission timeout and reneging (RFC 2018 §8).
/// The stack sends segments of 1448 bytes (MSS 1460 less timestamps); segments are named by their index, 0 being the
/// first. The handshake took one 100 ms round trip: SRTT = min_RTT = 100 ms, RTO = 300 ms, cwnd = 10 segments.
/// </summary>
public class SackRecoveryTests
{
    private const int Mss = 1448;
    private const long Rtt = 100_000;
    private const long Ms = 1_000;

    /// <summary>A client port whose ISS (with the fixed test secret) lies below 2^31; see <see cref="IssUpperHalfPort"/>.</summary>
    public const ushort IssLowerHalfPort = 40001;
    /// <summary>A client port whose ISS lies at or above 2^31 (the default port of <see cref="ScriptedConnection"/>).</summary>
    public const ushort IssUpperHalfPort = 40000;

    /// <summary>An established connection whose application queued <paramref name="queued"/> segments; the first window went out.</summary>
    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Sending(int queued, ushort clientPort = IssLowerHalfPort,
        long rtt = Rtt)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientPort: clientPort);
        var tcb = c.EstablishWith(sack: true, timestamps: true, rttMicros: rtt);
        Assert.Equal(Mss, tcb.MaxPayload);
        Assert.Equal(10 * Mss, tcb.CongestionWindow); // RFC 6928: min(10·MSS, max(2·MSS, 14600))
        tcb.Send(new byte[queued * Mss]);
        var first = peer.Poll();
        Assert.Equal(Enumerable.Range(0, Math.Min(queued, 10)), Indices(c, first));
        return (peer, c, tcb);
    }

    /// <summary>The index of each segment (its offset in the stack's stream / MSS); every one must be full-sized.</summary>
    private static int[] Indices(ScriptedConnection c, List<Seg> segments)
    {
        foreach (var s in segments) Assert.Equal(Mss, s.Payload.Length);
        return segments.Select(s => (int)(s.Seq - c.StackSeq(0)) / Mss).ToArray();
    }

    /// <summary>An ACK at segment boundaries: cumulative up to segment <paramref name="ack"/>, SACKing [from, to).</summary>
    private static List<Seg> Sack(ScriptedConnection c, int ack, params (int From, int To)[] blocks) =>
        c.SendSack(ack * Mss, blocks.Select(b => (b.From * Mss, b.To * Mss)).ToArray());

    /// <summary>
    /// RFC 8985 §6.2 step 4: with no reordering observed, once DupThresh (3) segments are SACKed the reordering window
    /// is 0, so the first segment, sent before them and unacknowledged for an RTT, is lost at once and retransmitted:
    /// fast recovery (RFC 6675 §5). Whether the connection saw reordering cannot depend on where its ISS happens to lie.
    /// </summary>
    [Theory]
    [InlineData(IssLowerHalfPort)]
    [InlineData(IssUpperHalfPort)]
    public void Three_sacked_segments_make_rack_mark_the_first_lost_and_it_is_retransmitted_at_once(ushort clientPort)
    {
        var (peer, c, tcb) = Sending(10, clientPort);
        peer.Now += Rtt;
        Assert.Empty(Sack(c, 0, (1, 2)));   // one SACKed segment: RACK waits min_RTT/4 (reordering may explain it)
        Assert.Empty(Sack(c, 0, (1, 3)));
        var retransmission = Sack(c, 0, (1, 4));

        Assert.Equal([0], Indices(c, retransmission));
        Assert.Equal(TcpFlags.Ack, retransmission[0].Flags);
        Assert.True(tcb.InRecovery, peer.Trace);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
        Assert.Equal(1, peer.Stack.Counters.Retransmissions);
        Assert.Equal((long)(10 * Mss * 0.7), tcb.SlowStartThreshold); // CUBIC β = 0.7 (RFC 9438 §4.6): 10136
    }

    /// <summary>
    /// RFC 6937 §3 in a concrete case. 20 segments queued, 0..9 in flight, segment 0 lost. RecoverFS = 12 segments
    /// (17376 bytes: 10 and 11 went out on the first two SACKs), ssthresh = 10136. Per ACK, with DeliveredData = 1448:
    /// <code>
    ///   SACKed  pipe before  branch  sndcnt                                       sent
    ///   1..3     11584       PRR     CEIL(1448·10136/17376) − 0 = 845, but the fast retransmit always goes   0 (retransmitted)
    ///   1..4     11584       PRR     CEIL(2896·10136/17376) − 1448 = 242           nothing (less than a segment)
    ///   1..5     10136       SSRB    MIN(10136 − 10136, ...) = 0                  nothing
    ///   1..6      8688       SSRB    MIN(1448, MAX(5792 − 1448, 1448) + 1448)     one new segment (12)
    ///   1..7 .. 1..9         SSRB    likewise                                     13, 14, 15
    /// </code>
    /// Each SACK sends as much as it delivers once pipe reached ssthresh: the window halves smoothly instead of
    /// stalling and bursting.
    /// </summary>
    [Fact]
    public void Proportional_rate_reduction_paces_sending_during_recovery()
    {
        var (peer, c, tcb) = Sending(20);
        peer.Now += Rtt;
        var sent = new List<int[]>();
        for (int k = 2; k <= 10; k++)
            sent.Add(Indices(c, Sack(c, 0, (1, k))));

        Assert.Equal(
            new[] { [10], [11], [0], [], [], [12], [13], [14], new[] { 15 } },
            sent.ToArray());
        Assert.Equal(10136, tcb.SlowStartThreshold);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
    }

    /// <summary>
    /// Recovery ends when the cumulative ACK reaches the recovery point (SND.NXT when it began, RFC 6675 §5 (A)) and the
    /// window continues from ssthresh = 0.7 × the 10 segments at the loss (RFC 9438 §4.6). The ACK that ends recovery
    /// delivers segment 0 and is the first of congestion avoidance (as in Linux): a new CUBIC epoch starting at 7
    /// segments, in the Reno-friendly region at t = 0 (§4.3), W_est = 7 + α·1/7 = 7.0756 segments = 10245 bytes.
    /// </summary>
    [Fact]
    public void Recovery_ends_when_the_recovery_point_is_acknowledged_and_continues_from_ssthresh()
    {
        var (peer, c, tcb) = Sending(30);
        peer.Now += Rtt;
        Assert.Equal([10], Indices(c, Sack(c, 0, (1, 2))));
        Assert.Equal([11], Indices(c, Sack(c, 0, (1, 3))));
        peer.Now += Ms; // the rest arrive 1 ms later: the retransmission goes out after segments 10 and 11
        Assert.Equal([0], Indices(c, Sack(c, 0, (1, 4))));
        for (int k = 5; k <= 10; k++) Sack(c, 0, (1, k));

        // One round trip later: 10 and 11 arrive, then the retransmission of 0 fills the hole. The recovery point is
        // the end of segment 11.
        peer.Now += Rtt - Ms;
        Sack(c, 0, (1, 11));
        Sack(c, 0, (1, 12));
        Assert.True(tcb.InRecovery);
        Assert.Equal(10136, tcb.CongestionWindow);       // PRR has brought the window down to ssthresh
        peer.Now += Ms;
        Sack(c, 12);

        Assert.False(tcb.InRecovery, peer.Trace);
        Assert.Equal(10136, tcb.SlowStartThreshold);
        double alpha = 3 * (1 - 0.7) / (1 + 0.7);
        Assert.Equal((long)((7 + alpha / 7) * Mss), tcb.CongestionWindow);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
        Assert.Equal(1, peer.Stack.Counters.Retransmissions);
    }

    /// <summary>
    /// RFC 8985 §6.2 step 3: a segment delivered below the highest delivered one, never retransmitted, shows reordering.
    /// From then on the reordering window is min_RTT / 4 = 25 ms even with 3 or more SACKed segments (step 4), and the
    /// reordering timer (§6.3) declares the first segment lost when it expires.
    /// </summary>
    [Fact]
    public void With_reordering_seen_rack_waits_a_quarter_of_min_rtt_and_the_reordering_timer_fires()
    {
        var (peer, c, tcb) = Sending(10);
        peer.Now += Rtt;
        Assert.Empty(Sack(c, 0, (2, 3)));
        Assert.Empty(Sack(c, 0, (1, 3))); // segment 1 arrives after 2: reordering
        Assert.Empty(Sack(c, 0, (1, 4)));
        Assert.Empty(Sack(c, 0, (1, 5))); // four SACKed, but the window stays 25 ms
        Assert.False(tcb.InRecovery);

        Assert.Empty(peer.Advance(Rtt / 4 - 1));
        var retransmission = peer.Advance(1);
        Assert.Equal([0], Indices(c, retransmission));
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
    }

    /// <summary>
    /// RFC 8985 §6.2 step 5 applies to retransmissions too: once a segment sent after the retransmission of 0 is
    /// delivered and an RTT has passed, the retransmission is lost as well and goes again (§2.2 "lost retransmissions").
    /// </summary>
    [Fact]
    public void Lost_retransmission_is_detected_and_sent_again()
    {
        var (peer, c, tcb) = Sending(20);
        peer.Now += Rtt;
        Sack(c, 0, (1, 2));
        Sack(c, 0, (1, 3));
        peer.Now += Ms;
        Assert.Equal([0], Indices(c, Sack(c, 0, (1, 4))));                 // at T+101 ms
        for (int k = 5; k <= 10; k++) Sack(c, 0, (1, k));                 // PRR sends 12..15 at T+101 ms

        // T+200: segments 10 and 11, sent before the retransmission, arrive: nothing is known about it yet, and each
        // SACK clocks out one new segment (pipe is at ssthresh).
        peer.Now += Rtt - Ms;
        Assert.Equal([16], Indices(c, Sack(c, 0, (1, 11))));
        Assert.Equal([17], Indices(c, Sack(c, 0, (1, 12))));
        Assert.Equal(0, peer.Stack.Counters.LostRetransmissions);

        // T+201: segment 12, sent after the retransmission, arrives but the hole at 0 is still there: 0 goes again
        // (retransmissions first, RFC 6675 §5 NextSeg rule 1), then the new segment its delivery allows.
        peer.Now += Ms;
        Assert.Equal([0, 18], Indices(c, Sack(c, 0, (1, 13))));
        Assert.Equal(1, peer.Stack.Counters.LostRetransmissions);
        Assert.Equal(2, peer.Stack.Counters.Retransmissions);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries); // the same recovery, no second reduction
    }

    /// <summary>
    /// RFC 8985 §6.2 step 4: a D-SACK (here: the network duplicated segment 0) makes the reordering window
    /// (reo_wnd_mult + 1) · min_RTT / 4 = 50 ms instead of 25 ms.
    /// </summary>
    [Theory]
    [InlineData(false, 25_000)]
    [InlineData(true, 50_000)]
    public void Dsack_widens_the_reordering_window(bool dsack, long expectedWindow)
    {
        var (peer, c, tcb) = Sending(10);
        peer.Now += Rtt;
        Assert.Empty(dsack ? Sack(c, 1, (0, 1)) : Sack(c, 1));
        Assert.Equal(dsack ? 1 : 0, peer.Stack.Counters.DsacksReceived);

        Assert.Empty(Sack(c, 1, (2, 3))); // segment 1 missing
        Assert.Empty(peer.Advance(expectedWindow - 1));
        Assert.Equal([1], Indices(c, peer.Advance(1)));
    }

    /// <summary>
    /// RFC 8985 §7.2: with SRTT known and more than one segment in flight, PTO = 2·SRTT ("PTO = 2 * SRTT"; the
    /// delayed-ACK allowance is added only for a single segment). No ACK comes: the last segment is probed.
    /// </summary>
    [Fact]
    public void Loss_probe_fires_at_exactly_two_srtt_and_resends_the_last_segment()
    {
        var (peer, c, tcb) = Sending(10);
        Assert.Empty(peer.Advance(2 * Rtt - 1));
        var probe = peer.Advance(1);
        Assert.Equal([9], Indices(c, probe));
        Assert.Equal(1, peer.Stack.Counters.LossProbes);
        Assert.Equal(0, peer.Stack.Counters.RetransmissionTimeouts);
        Assert.Equal(10 * Mss, tcb.CongestionWindow);
    }

    /// <summary>RFC 8985 §7.3: if unsent data exists and the receive window allows, the probe is a new segment.</summary>
    [Fact]
    public void Loss_probe_sends_new_data_when_there_is_some()
    {
        var (peer, c, tcb) = Sending(11); // cwnd lets 10 go; the 11th waits
        var probe = peer.Advance(2 * Rtt + 2 * Ms);
        Assert.Equal([10], Indices(c, probe));
        Assert.Equal(1, peer.Stack.Counters.LossProbes);
        Assert.Equal(0, peer.Stack.Counters.Retransmissions);
    }

    /// <summary>
    /// RFC 8985 §7.2-7.3 with a single segment in flight: PTO = 2·SRTT + the worst-case delayed ACK (200 ms). With a
    /// 300 ms round trip (RTO 900 ms) the probe goes at 800 ms, the RTO is armed again (§7.3: "the sender MUST re-arm the
    /// RTO timer, not the PTO timer"), and an ACK without D-SACK shows the probe repaired a loss (§7.4): one reduction.
    /// </summary>
    [Fact]
    public void Single_segment_probe_waits_for_the_delayed_ack_allowance_and_its_ack_counts_as_a_repaired_loss()
    {
        const long rtt = 300_000;
        var (peer, c, tcb) = Sending(1, rtt: rtt);
        Assert.Equal(3 * rtt, tcb.CurrentRtoMicros);
        Assert.Empty(peer.Advance(2 * rtt + 200_000 - 1));
        Assert.Equal([0], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.LossProbes);
        Assert.Equal(0, peer.Stack.Counters.RetransmissionTimeouts);

        Assert.Empty(peer.Advance(3 * rtt - 1));
        Assert.Equal([0], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.RetransmissionTimeouts);
    }

    [Fact]
    public void Ack_of_a_probe_without_dsack_reduces_the_window_once()
    {
        const long rtt = 300_000;
        var (peer, c, tcb) = Sending(1, rtt: rtt);
        Assert.Equal([0], Indices(c, peer.Advance(2 * rtt + 200_000)));
        Assert.Empty(Sack(c, 1));
        Assert.Equal(1, peer.Stack.Counters.LossProbeRecoveries);
        Assert.Equal(10136, tcb.SlowStartThreshold);
        Assert.Equal(10136, tcb.CongestionWindow);
        Assert.Equal(0, peer.Stack.Counters.FastRecoveries);
    }

    [Fact]
    public void Ack_of_a_probe_with_a_dsack_shows_no_loss_and_keeps_the_window()
    {
        const long rtt = 300_000;
        var (peer, c, tcb) = Sending(1, rtt: rtt);
        Assert.Equal([0], Indices(c, peer.Advance(2 * rtt + 200_000)));
        Assert.Empty(Sack(c, 1, (0, 1))); // the original arrived: the probe was a duplicate
        Assert.Equal(0, peer.Stack.Counters.LossProbeRecoveries);
        Assert.Equal(1, peer.Stack.Counters.DsacksReceived);
        Assert.Equal(10 * Mss, tcb.CongestionWindow);
    }

    /// <summary>
    /// RFC 8985 §7.4.2: a probe that repaired a loss calls for the congestion response to that loss — β·cwnd of the
    /// window in which it happened (RFC 9438 §4.6: 0.7 × 10 segments). The ACK that reveals the loss must not first
    /// grow cwnd by slow start on the very data whose loss it reports.
    /// </summary>
    [Fact]
    public void Probe_repairing_a_full_window_reduces_from_the_window_of_the_loss()
    {
        var (peer, c, tcb) = Sending(10);
        Assert.Equal([9], Indices(c, peer.Advance(2 * Rtt + 2 * Ms)));
        Assert.Empty(Sack(c, 10)); // everything, and no D-SACK: the original of 9 was lost (its ACKs too)
        Assert.Equal(1, peer.Stack.Counters.LossProbeRecoveries);
        Assert.Equal(10136, tcb.SlowStartThreshold);
        Assert.Equal(10136, tcb.CongestionWindow);
    }

    /// <summary>
    /// RFC 8985 §7.2, last step of TLP_calc_PTO: "If Now() + PTO > TCP_RTO_expiration(): PTO = TCP_RTO_expiration() −
    /// Now()". With one segment and a 100 ms RTT the PTO (2·100 + 200 ms) would pass the RTO (300 ms), so the probe is
    /// sent when the RTO would have expired — as a probe: no timeout, no collapse of cwnd to one segment.
    /// </summary>
    [Fact]
    public void Loss_probe_is_capped_at_the_rto_expiry_instead_of_giving_way_to_it()
    {
        var (peer, c, tcb) = Sending(1);
        Assert.Empty(peer.Advance(3 * Rtt - 1));
        Assert.Equal([0], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.LossProbes);
        Assert.Equal(0, peer.Stack.Counters.RetransmissionTimeouts);
        Assert.Equal(10 * Mss, tcb.CongestionWindow);
    }

    /// <summary>
    /// RFC 8985 §7.2: without an RTT sample, "PTO = 1 sec" (the delayed-ACK allowance belongs to the SRTT branch). Here the
    /// SYN-ACK had to be retransmitted, so the handshake gave no sample (Karn) and the RTO is 3 s (RFC 6298 §5.7): the
    /// probe comes after exactly 1 s.
    /// </summary>
    [Fact]
    public void Loss_probe_without_an_rtt_sample_fires_after_one_second()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientPort: IssLowerHalfPort);
        var synAck = Assert.Single(c.SendSyn(c.SynOptions()));
        Assert.Equal(synAck.Seq, Assert.Single(peer.Advance(1_000_000)).Seq); // the SYN-ACK again
        c.Timestamps = true;
        Assert.Empty(c.SendAck());
        var tcb = c.Tcb!;
        Assert.Equal(3_000_000, tcb.CurrentRtoMicros);

        tcb.Send(new byte[Mss]);
        Assert.Single(peer.Poll());
        Assert.Empty(peer.Advance(1_000_000 - 1));
        Assert.Equal([0], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.LossProbes);
    }

    /// <summary>
    /// RFC 6298 §5.4-5.6 and RFC 8985 §6.3 / RFC 6675 §5.1: on the retransmission timeout everything not SACKed is lost,
    /// cwnd is one segment (RFC 5681 §3.1), ssthresh is β·cwnd (RFC 9438 §4.8; cwnd was 10136 in recovery), and sending
    /// restarts from the first segment; SACKed segments are not sent again.
    /// </summary>
    [Fact]
    public void Retransmission_timeout_restarts_from_the_first_segment_with_one_segment_and_skips_sacked_ones()
    {
        var (peer, c, tcb) = Sending(10);
        peer.Now += Rtt;
        Assert.Equal([0, 1], Indices(c, Sack(c, 0, (2, 5)))); // 2, 3, 4 SACKed: 0 and 1 lost at once
        // Both retransmissions are lost too, and nothing comes back. The RTO runs since the first transmission.
        Assert.Empty(peer.Advance(2 * Rtt - 1));
        Assert.Equal([0], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.RetransmissionTimeouts);
        Assert.Equal(Mss, tcb.CongestionWindow);
        Assert.Equal((long)(10136 * 0.7), tcb.SlowStartThreshold);

        // 0 arrives: slow start gives two segments, 1 and then 5 — 2, 3, 4 are SACKed and stay unsent.
        Assert.Equal([1, 5], Indices(c, Sack(c, 1, (2, 5))));
        Assert.Equal(2 * Mss, tcb.CongestionWindow);
    }

    /// <summary>
    /// RFC 2018 §8: a receiver may discard data it SACKed (renege). "The data sender MUST retransmit the segment at the
    /// left edge of the window after a retransmit timeout, whether or not the SACKed bit is on for that segment." Here
    /// 1..9 were SACKed, 0 was retransmitted and acknowledged, and then nothing: at the RTO, 1 goes first.
    /// </summary>
    [Fact]
    public void Reneging_peer_gets_the_sacked_segment_at_the_left_edge_retransmitted_at_the_rto()
    {
        var (peer, c, tcb) = Sending(10);
        peer.Now += Rtt;
        Sack(c, 0, (1, 2));
        Sack(c, 0, (1, 3));
        Assert.Equal([0], Indices(c, Sack(c, 0, (1, 10))));
        peer.Now += Rtt;
        Assert.Empty(Sack(c, 1)); // 0 acknowledged, 1..9 no longer reported: the receiver dropped them

        long rto = tcb.CurrentRtoMicros;
        Assert.Equal(300_000, rto);
        Assert.Empty(peer.Advance(rto - 1));
        Assert.Equal([1], Indices(c, peer.Advance(1)));
        Assert.Equal(1, peer.Stack.Counters.RetransmissionTimeouts);
    }
}
