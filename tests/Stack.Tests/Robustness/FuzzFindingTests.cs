using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Bugs the engine harness found under AFL, each written down as the shortest scripted sequence that shows it.
/// The crash inputs themselves are in fuzz/crashes and replayed by <see cref="FuzzCorpusReplayTests"/>.
/// </summary>
public class FuzzFindingTests
{
    [Fact]
    public void Close_in_syn_received_then_a_retransmission_timeout_resends_the_syn_ack()
    {
        // Found by the engine harness: CLOSE in SYN-RECEIVED sent a FIN before our SYN was acknowledged, and the
        // retransmission timer then read the send buffer at offset -1. RFC 9293 §3.10.4 allows the FIN to wait for
        // ESTABLISHED; it does here, so the SYN-ACK keeps being retransmitted until acknowledged, and the FIN follows.
        var target = new TargetStack();
        var c = new ScriptedConnection(target.Peer, TargetStack.ListenPort, clientIsn: 1000, clientPort: 45000);
        var synAck = Assert.Single(c.SendSyn());
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        tcb.Close();
        Assert.Empty(target.Peer.Poll());
        Assert.Equal(TcpState.SynReceived, tcb.State);

        var retransmitted = Assert.Single(target.Peer.Advance(tcb.CurrentRtoMicros));
        Assert.Null(target.Counters.LastInternalError);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, retransmitted.Flags);
        Assert.Equal(synAck.Seq, retransmitted.Seq);
        Assert.Equal(1001u, retransmitted.Ack);

        // The peer acknowledges the SYN: ESTABLISHED, and at once FIN-WAIT-1 with our FIN.
        var fin = Assert.Single(c.Send(1001, synAck.Seq + 1, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        Assert.Equal(synAck.Seq + 1, fin.Seq);
        Assert.Equal(TcpState.FinWait1, tcb.State);
        Assert.Empty(c.Send(1001, synAck.Seq + 2, TcpFlags.Ack));
        Assert.Equal(TcpState.FinWait2, tcb.State);
        target.AssertStillServes();
    }
}
