using TunStack.Tcp;
using TunStack.Tcp.Congestion;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// Loss recovery with a peer that does not do SACK: duplicate ACKs, limited transmit (RFC 3042), fast retransmit and
/// NewReno's partial and full ACKs (RFC 6582 §3.2), paced by PRR with one segment assumed delivered per duplicate ACK
/// (RFC 6937 §2). Segments are 1460 bytes (no timestamps) and named by index; cwnd starts at 10 segments.
/// </summary>
public class NewRenoRecoveryTests
{
    private const int Mss = 1460;

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Sending(int queued,
        CongestionControlAlgorithm cc = CongestionControlAlgorithm.Cubic)
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Address = defaults.Address, IsnSecret = defaults.IsnSecret, ReceiveBufferSize = 65536, SendBufferSize = 65536,
            CongestionControl = cc,
        });
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientPort: SackRecoveryTests.IssLowerHalfPort);
        var tcb = c.EstablishWith(sack: false, timestamps: false, rttMicros: 100_000);
        Assert.False(tcb.SackEnabled);
        tcb.Send(new byte[queued * Mss]);
        Assert.Equal(Enumerable.Range(0, Math.Min(queued, 10)), Indices(c, peer.Poll()));
        peer.Now += 100_000;
        return (peer, c, tcb);
    }

    private static int[] Indices(ScriptedConnection c, List<Seg> segments)
    {
        foreach (var s in segments) Assert.Equal(Mss, s.Payload.Length);
        return segments.Select(s => (int)(s.Seq - c.StackSeq(0)) / Mss).ToArray();
    }

    private static List<Seg> DupAck(ScriptedConnection c) => c.SendAckOf(0);

    /// <summary>
    /// RFC 3042 §2 / RFC 5681 §3.2 step 1: each of the first two duplicate ACKs lets one new segment go, without touching
    /// cwnd; RFC 5681 §3.2 steps 2-3: the third triggers the retransmission of the first segment.
    /// </summary>
    [Fact]
    public void Limited_transmit_sends_one_new_segment_per_duplicate_ack_and_the_third_retransmits()
    {
        var (peer, c, tcb) = Sending(12);
        Assert.Equal([10], Indices(c, DupAck(c)));
        Assert.Equal(10 * Mss, tcb.CongestionWindow);
        Assert.Equal([11], Indices(c, DupAck(c)));
        Assert.Equal(10 * Mss, tcb.CongestionWindow);
        Assert.False(tcb.InRecovery);

        var retransmission = DupAck(c);
        Assert.Equal([0], Indices(c, retransmission));
        Assert.True(tcb.InRecovery);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
        Assert.Equal((long)(10 * Mss * 0.7), tcb.SlowStartThreshold); // CUBIC: β·cwnd
    }

    /// <summary>
    /// RFC 5681 §3.2 step 2: "ssthresh = max(FlightSize / 2, 2·SMSS) ... When [RFC3042] is in use, additional data sent
    /// in limited transmit MUST NOT be included in this calculation." FlightSize is the 10 segments before the two
    /// limited-transmit segments: ssthresh = 5 segments.
    /// </summary>
    [Fact]
    public void NewReno_ssthresh_is_half_the_flight_without_the_limited_transmit_segments()
    {
        var (peer, c, tcb) = Sending(12, CongestionControlAlgorithm.NewReno);
        DupAck(c);
        DupAck(c);
        Assert.Equal([0], Indices(c, DupAck(c)));
        Assert.Equal(5 * Mss, tcb.SlowStartThreshold);
    }

    /// <summary>
    /// During recovery every further duplicate ACK stands for one delivered segment (RFC 6937 §2), and PRR lets new data
    /// go in proportion: sndcnt = CEIL(prr_delivered · ssthresh / RecoverFS) − prr_out, with RecoverFS = 12 segments
    /// (17520), ssthresh = 10220 and the third duplicate ACK counted (RFC 6937 §3.1's table). After the fast retransmit
    /// (prr_out = 1460), the 4th..12th duplicate ACKs give 244, 1095, 1947, 1339, 2190, 1582, 974, 1825, 1217 bytes: a new
    /// segment on the 6th, 8th, 9th and 11th. (RFC 5681 §3.2 steps 4-5 would also send new data from the 6th on.)
    /// </summary>
    [Fact]
    public void Further_duplicate_acks_clock_out_new_data_during_recovery()
    {
        var (peer, c, tcb) = Sending(20);
        DupAck(c);
        DupAck(c);
        Assert.Equal([0], Indices(c, DupAck(c)));
        var sent = new List<int[]>();
        for (int dup = 4; dup <= 12; dup++)
            sent.Add(Indices(c, DupAck(c)));
        Assert.Equal(new[] { [], [], [12], [], [13], [14], [], [15], Array.Empty<int>() }, sent.ToArray());
    }

    /// <summary>
    /// RFC 6582 §3.2 step 5: an ACK that advances SND.UNA but not to the recovery point shows the next segment was lost
    /// too: retransmit it at once. Step 3: the ACK that covers the recovery point ends recovery, cwnd = ssthresh.
    /// Five segments, 0 and 2 lost: 1, 3 and 4 bring three duplicate ACKs.
    /// </summary>
    [Fact]
    public void Partial_ack_retransmits_the_next_hole_at_once_and_the_full_ack_ends_recovery()
    {
        var (peer, c, tcb) = Sending(5);
        Assert.Empty(DupAck(c)); // no new data for limited transmit
        Assert.Empty(DupAck(c));
        Assert.Equal([0], Indices(c, DupAck(c)));

        peer.Now += 100_000;
        Assert.Equal([2], Indices(c, c.SendAckOf(2 * Mss)));
        Assert.True(tcb.InRecovery);
        Assert.Equal(2, peer.Stack.Counters.Retransmissions);

        peer.Now += 100_000;
        Assert.Empty(c.SendAckOf(5 * Mss));
        Assert.False(tcb.InRecovery);
        Assert.Equal(10220, tcb.SlowStartThreshold);
        Assert.Equal(10220, tcb.CongestionWindow);
        Assert.Equal(1, peer.Stack.Counters.FastRecoveries);
        Assert.Equal(0, peer.Stack.Counters.RetransmissionTimeouts);
    }
}
