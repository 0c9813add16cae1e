using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// When the sender sends: Nagle's algorithm and its NoDelay switch (RFC 9293 §3.7.4), sender silly-window avoidance
/// (§3.8.6.2.1), and the restart from the initial window after an idle period (RFC 5681 §4.1).
/// </summary>
public class SendPolicyTests
{
    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Connected(ushort window = 65535, bool timestamps = true,
        long rtt = 0)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientPort: SackRecoveryTests.IssLowerHalfPort);
        return (peer, c, c.EstablishWith(sack: true, timestamps: timestamps, window: window, rttMicros: rtt));
    }

    [Fact]
    public void Nagle_holds_small_segments_while_data_is_unacknowledged_and_sends_them_coalesced()
    {
        var (peer, c, tcb) = Connected();
        tcb.Send(new byte[100]);
        var first = Assert.Single(peer.Poll());          // nothing in flight: a small segment may go
        Assert.Equal(100, first.Payload.Length);
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, first.Flags);

        tcb.Send(new byte[200]);
        Assert.Empty(peer.Poll());
        tcb.Send(new byte[300]);
        Assert.Empty(peer.Poll());

        var rest = Assert.Single(c.SendAckOf(100));       // all acknowledged: the 500 waiting bytes go as one segment
        Assert.Equal(c.StackSeq(100), rest.Seq);
        Assert.Equal(500, rest.Payload.Length);
    }

    [Fact]
    public void Nagle_lets_full_segments_go_and_holds_only_the_tail()
    {
        var (peer, c, tcb) = Connected();
        tcb.Send(new byte[100]);
        Assert.Single(peer.Poll());
        tcb.Send(new byte[2000]);
        var full = Assert.Single(peer.Poll());            // 1448: a full segment goes although 100 bytes are in flight
        Assert.Equal(1448, full.Payload.Length);
        var tail = Assert.Single(c.SendAckOf(1548));
        Assert.Equal(552, tail.Payload.Length);
    }

    [Fact]
    public void With_no_delay_every_small_write_goes_at_once()
    {
        var (peer, c, tcb) = Connected();
        tcb.NoDelay = true;
        tcb.Send(new byte[100]);
        Assert.Equal(100, Assert.Single(peer.Poll()).Payload.Length);
        tcb.Send(new byte[200]);
        var second = Assert.Single(peer.Poll());
        Assert.Equal(c.StackSeq(100), second.Seq);
        Assert.Equal(200, second.Payload.Length);
    }

    [Fact]
    public void No_delay_can_be_the_stack_default()
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions { Address = defaults.Address, IsnSecret = defaults.IsnSecret, NoDelay = true });
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith();
        Assert.True(tcb.NoDelay);
        tcb.Send(new byte[10]);
        peer.Poll();
        tcb.Send(new byte[10]);
        Assert.Single(peer.Poll());
    }

    [Fact]
    public void Close_sends_a_held_tail_at_once_with_the_fin()
    {
        var (peer, c, tcb) = Connected();
        tcb.Send(new byte[100]);
        Assert.Single(peer.Poll());
        tcb.Send(new byte[50]);
        Assert.Empty(peer.Poll());
        tcb.Close();
        var last = Assert.Single(peer.Poll());
        Assert.Equal(50, last.Payload.Length);
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin, last.Flags);
    }

    /// <summary>
    /// RFC 9293 §3.8.6.2.1: with data in flight, a segment shorter than a full one goes only if it is at least
    /// Fs = 1/2 of the largest window the peer ever offered (here 2000: at least 1000 bytes).
    /// </summary>
    [Fact]
    public void Sender_sws_avoidance_sends_a_partial_segment_only_when_half_the_largest_window_is_usable()
    {
        var (peer, c, tcb) = Connected(window: 2000, timestamps: false);
        tcb.Send(new byte[5000]);
        Assert.Equal(1460, Assert.Single(peer.Poll()).Payload.Length);

        Assert.Empty(c.SendAckOf(459, window: 2000));    // 2000 − 1001 in flight = 999 usable: too little
        var partial = Assert.Single(c.SendAckOf(460, window: 2000)); // 1000 usable: half the largest window
        Assert.Equal(c.StackSeq(1460), partial.Seq);
        Assert.Equal(1000, partial.Payload.Length);
    }

    [Fact]
    public void Sender_sws_avoidance_sends_what_fits_when_nothing_is_in_flight()
    {
        var (peer, c, tcb) = Connected(window: 2000, timestamps: false);
        tcb.Send(new byte[5000]);
        Assert.Single(peer.Poll());
        var small = Assert.Single(c.SendAckOf(1460, window: 500)); // no ACK would come to open the window further
        Assert.Equal(500, small.Payload.Length);
    }

    /// <summary>
    /// RFC 5681 §4.1: "TCP SHOULD set cwnd to no more than RW before beginning transmission if the TCP has not sent data in
    /// an interval exceeding the retransmission timeout", RW = min(IW, cwnd). cwnd grew to 20 segments; the RTO is 250 ms.
    /// </summary>
    [Theory]
    [InlineData(250_000, 20)]  // idle exactly one RTO: the window is kept
    [InlineData(250_001, 10)]  // longer: back to the initial window
    public void Restart_after_idle_uses_the_initial_window(long idle, int segmentsSent)
    {
        var (peer, c, tcb) = Connected(rtt: 100_000);
        tcb.Send(new byte[10 * 1448]);
        long sentAt = peer.Now;
        Assert.Equal(10, peer.Poll().Count);
        peer.Now += 100_000;
        Assert.Empty(c.SendAckOf(10 * 1448));
        Assert.Equal(20 * 1448, tcb.CongestionWindow);   // slow start: +1 segment per segment acknowledged
        Assert.Equal(250_000, tcb.CurrentRtoMicros);     // SRTT 100 ms, RTTVAR 37.5 ms

        peer.Now = sentAt + idle;
        tcb.Send(new byte[30 * 1448]);
        var burst = peer.Poll();
        Assert.Equal(segmentsSent, burst.Count);
    }
}
