using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>The retransmission timer of RFC 6298 for SYN-ACK, data and FIN.</summary>
public class RetransmissionTests
{
    [Fact]
    public void Syn_ack_is_retransmitted_with_exponential_backoff_then_given_up()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var synAck = Assert.Single(c.SendSyn());

        Assert.Empty(peer.Advance(999_999));       // initial RTO is 1 s (RFC 6298 §2.1)
        var again = Assert.Single(peer.Advance(1));
        Assert.Equal(synAck.Seq, again.Seq);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, again.Flags);

        Assert.Empty(peer.Advance(1_999_999));     // backed off to 2 s
        Assert.Single(peer.Advance(1));
        Assert.Equal(2, peer.Stack.Counters.Retransmissions);

        // Five retransmissions (1+2+4+8+16 s), then the connection is dropped after 32 s more.
        for (int i = 0; i < 10; i++) peer.Advance(64_000_000);
        Assert.Empty(peer.Stack.Connections);
        Assert.Equal(0, listener.HalfOpenCount);
        Assert.Equal(5, peer.Stack.Counters.Retransmissions);
    }

    [Fact]
    public void Unacknowledged_data_is_retransmitted_from_snd_una_on_timeout()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        tcb.Send("important"u8);
        var first = Assert.Single(peer.Poll());

        long rto = tcb.CurrentRtoMicros;
        Assert.Empty(peer.Advance(rto - 1));
        var retransmit = Assert.Single(peer.Advance(1));
        Assert.Equal(first.Seq, retransmit.Seq);
        Assert.Equal("important"u8.ToArray(), retransmit.Payload);
        Assert.Equal(tcb.SendMss, tcb.CongestionWindow); // loss window: one segment (RFC 5681 §3.1)

        c.ServerNxt += 9;
        Assert.Empty(c.SendAck());
        Assert.Equal(0, tcb.BytesQueued);
        Assert.Empty(peer.Advance(10_000_000)); // timer stopped once everything is acknowledged
    }

    [Fact]
    public void Fin_is_retransmitted_on_timeout()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        tcb.Close();
        var fin = Assert.Single(peer.Poll());
        var again = Assert.Single(peer.Advance(tcb.CurrentRtoMicros));
        Assert.Equal(fin.Seq, again.Seq);
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, again.Flags);
    }

    [Fact]
    public void Rtt_sample_sets_the_rto_per_rfc_6298()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish(); // handshake ACK arrives at the same instant: RTT 0
        tcb.Send("x"u8);
        peer.Poll();
        peer.Advance(50_000);
        c.ServerNxt += 1;
        c.SendAck();
        // With samples 0 and 50 ms, RTO = SRTT + 4·RTTVAR, floored at 200 ms.
        Assert.Equal(200_000, tcb.CurrentRtoMicros);
        Assert.Equal(6_250, tcb.SmoothedRttMicros);
    }

    [Fact]
    public void Zero_window_is_probed_and_sending_resumes_when_it_opens()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish(window: 0);
        long cwnd = tcb.CongestionWindow;
        tcb.Send("abc"u8);
        Assert.Empty(peer.Poll());

        // The persist timer fires after one RTO (200 ms here) with a probe that occupies no sequence space: SEQ =
        // SND.UNA - 1 and no text, which the peer must answer with an ACK carrying its window (as Linux probes).
        long rto = tcb.CurrentRtoMicros;
        Assert.Empty(peer.Advance(rto - 1));
        var probe = Assert.Single(peer.Advance(1));
        Assert.Empty(probe.Payload);
        Assert.Equal(c.ServerNxt - 1, probe.Seq);
        Assert.Equal(1, peer.Stack.Counters.WindowProbes);

        // Still closed: the next probe comes after twice the interval (exponential backoff, RFC 1122 §4.2.2.17).
        Assert.Empty(c.SendAck(window: 0));
        Assert.Empty(peer.Advance(2 * rto - 1));
        Assert.Single(peer.Advance(1));

        // Probing never touches congestion control, and the data goes the moment the window opens.
        Assert.Equal(cwnd, tcb.CongestionWindow);
        Assert.Equal(0, peer.Stack.Counters.Retransmissions);
        var rest = Assert.Single(c.SendAck(window: 1000));
        Assert.Equal("abc"u8.ToArray(), rest.Payload);
    }
}
