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
        // RFC 9293 §3.10.4: CLOSE in SYN-RECEIVED with nothing to send sends a FIN and enters FIN-WAIT-1. Our SYN is
        // still unacknowledged, so when the retransmission timer fires, SND.NXT goes back to SND.UNA = ISS and the
        // SYN-ACK must be sent again (RFC 6298 §5.4). Found by the engine harness: the output path instead read the
        // send buffer at offset -1 and threw out of NetStack.Poll, which has no catch: in the event loop that would
        // end the loop thread and the whole stack.
        var target = new TargetStack();
        var c = new ScriptedConnection(target.Peer, TargetStack.ListenPort, clientIsn: 1000, clientPort: 45000);
        var synAck = Assert.Single(c.SendSyn());
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        tcb.Close();
        var fin = Assert.Single(target.Peer.Poll());
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        Assert.Equal(TcpState.FinWait1, tcb.State);

        var retransmitted = target.Peer.Advance(tcb.CurrentRtoMicros);
        Assert.Null(target.Counters.LastInternalError);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, retransmitted[0].Flags);
        Assert.Equal(synAck.Seq, retransmitted[0].Seq);
        Assert.Equal(1001u, retransmitted[0].Ack);

        // The peer acknowledges the SYN and the FIN together: FIN-WAIT-2.
        Assert.Empty(c.Send(1001, synAck.Seq + 2, TcpFlags.Ack));
        Assert.Equal(TcpState.FinWait2, tcb.State);
        target.AssertStillServes();
    }
}
