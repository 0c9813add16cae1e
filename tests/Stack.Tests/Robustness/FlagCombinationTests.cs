using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Every one of the 256 values of the flags byte (NULL, FIN alone, Xmas, SYN+FIN, SYN+RST, ...) sent to a
/// listening port, a closed port and an established connection, each checked against what RFC 9293 §3.10.7
/// prescribes for that state, followed by a fresh connection that must still be served.
/// </summary>
public class FlagCombinationTests
{
    public static TheoryData<byte> AllFlagBytes()
    {
        var data = new TheoryData<byte>();
        for (int b = 0; b < 256; b++) data.Add((byte)b);
        return data;
    }

    private static bool Has(TcpFlags flags, TcpFlags flag) => (flags & flag) != 0;

    [Theory]
    [MemberData(nameof(AllFlagBytes))]
    public void To_a_closed_port(byte flagByte)
    {
        var flags = (TcpFlags)flagByte;
        var target = new TargetStack();
        const uint seq = 5000, ack = 0xABCD_0123;
        var replies = target.Inject(TargetStack.Packet(flags, seq, ack, destinationPort: TargetStack.ClosedPort)
            .With(p => p.Payload = "xyz"u8.ToArray()).Build());

        Assert.Equal(1, target.Counters.Dropped(DropReason.NoListener));
        Assert.Empty(target.Stack.Connections);
        if (Has(flags, TcpFlags.Rst))
        {
            // RFC 9293 §3.10.7.1: "An incoming segment containing a RST is discarded."
            Assert.Empty(replies);
        }
        else if (Has(flags, TcpFlags.Ack))
        {
            // "<SEQ=SEG.ACK><CTL=RST>"
            var rst = Assert.Single(replies);
            Assert.Equal(TcpFlags.Rst, rst.Flags);
            Assert.Equal(ack, rst.Seq);
            Assert.Empty(rst.Payload);
        }
        else
        {
            // "<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>", SYN and FIN counting in SEG.LEN.
            var rst = Assert.Single(replies);
            Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
            Assert.Equal(0u, rst.Seq);
            Assert.Equal(seq + 3 + (Has(flags, TcpFlags.Syn) ? 1u : 0) + (Has(flags, TcpFlags.Fin) ? 1u : 0), rst.Ack);
        }
        Assert.All(replies, r => Assert.Equal(TargetStack.ClosedPort, r.SourcePort));
        target.AssertStillServes();
    }

    [Theory]
    [MemberData(nameof(AllFlagBytes))]
    public void To_a_listening_port(byte flagByte)
    {
        var flags = (TcpFlags)flagByte;
        var target = new TargetStack();
        const uint seq = 5000, ack = 0xABCD_0123;
        var replies = target.Inject(TargetStack.Packet(flags, seq, ack).Build());
        var tcb = target.Stack.Connections.SingleOrDefault();

        if (Has(flags, TcpFlags.Rst))
        {
            // RFC 9293 §3.10.7.2, first: "An incoming RST segment could not be valid ... Return." (SYN+RST too)
            Assert.Empty(replies);
            Assert.Null(tcb);
            Assert.Equal(1, target.Counters.Dropped(DropReason.Stale));
        }
        else if (Has(flags, TcpFlags.Ack))
        {
            // Second: "Any acknowledgment is bad if it arrives on a connection still in the LISTEN state. An
            // acceptable reset segment should be formed for any arriving ACK-bearing segment": <SEQ=SEG.ACK><CTL=RST>.
            var rst = Assert.Single(replies);
            Assert.Equal(TcpFlags.Rst, rst.Flags);
            Assert.Equal(ack, rst.Seq);
            Assert.Null(tcb);
        }
        else if (Has(flags, TcpFlags.Syn))
        {
            // Third: SYN. The SYN-ACK acknowledges the SYN alone: a FIN on the SYN is not accepted now (nor is data),
            // so the peer must send it again once the connection is synchronized. ECE and CWR together ask for ECN
            // (RFC 3168 §6.1.1), which this stack does not offer: the SYN-ACK carries neither.
            var synAck = Assert.Single(replies);
            Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
            Assert.Equal(seq + 1, synAck.Ack);
            Assert.NotNull(tcb);
            Assert.Equal(TcpState.SynReceived, tcb.State);
            Assert.Equal(seq + 1, tcb.RcvNxt.Value);
        }
        else
        {
            // Fourth: "Other text or control: ... drop the segment and return." (NULL, FIN alone, Xmas, PSH, URG...)
            Assert.Empty(replies);
            Assert.Null(tcb);
            Assert.Equal(1, target.Counters.Dropped(DropReason.Stale));
        }
        target.AssertStillServes();
    }

    [Theory]
    [MemberData(nameof(AllFlagBytes))]
    public void To_an_established_connection_at_rcv_nxt(byte flagByte)
    {
        var flags = (TcpFlags)flagByte;
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        uint rcvNxt = c.ClientNxt, sndNxt = c.ServerNxt;
        var replies = target.Inject(TargetStack.Packet(flags, rcvNxt, sndNxt, sourcePort: c.ClientPortNumber).Build());

        if (Has(flags, TcpFlags.Rst))
        {
            // RFC 9293 §3.10.7.4 second check (RST before SYN), RFC 5961 §3.2: SEG.SEQ = RCV.NXT resets the connection.
            Assert.Empty(replies);
            Assert.Equal(TcpState.Closed, tcb.State);
            Assert.Equal(CloseReason.ResetByPeer, tcb.CloseReason);
            Assert.Empty(target.Stack.Connections);
        }
        else if (Has(flags, TcpFlags.Syn))
        {
            // Fourth check, RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK and changes nothing.
            var challenge = Assert.Single(replies);
            Assert.Equal(TcpFlags.Ack, challenge.Flags);
            Assert.Equal(sndNxt, challenge.Seq);
            Assert.Equal(rcvNxt, challenge.Ack);
            Assert.Equal(TcpState.Established, tcb.State);
            Assert.Equal(rcvNxt, tcb.RcvNxt.Value);
        }
        else if (!Has(flags, TcpFlags.Ack))
        {
            // Fifth check: "if the ACK bit is off, drop the segment and return" — even with FIN.
            Assert.Empty(replies);
            Assert.Equal(TcpState.Established, tcb.State);
            Assert.Equal(rcvNxt, tcb.RcvNxt.Value);
        }
        else if (Has(flags, TcpFlags.Fin))
        {
            // Eighth check: the FIN is acknowledged and the connection goes to CLOSE-WAIT. URG, PSH, ECE and CWR
            // change nothing (no urgent data, ECN not negotiated).
            var ack = Assert.Single(replies);
            Assert.Equal(TcpFlags.Ack, ack.Flags);
            Assert.Equal(sndNxt, ack.Seq);
            Assert.Equal(rcvNxt + 1, ack.Ack);
            Assert.Equal(TcpState.CloseWait, tcb.State);
        }
        else
        {
            // A pure ACK of nothing new: nothing to say.
            Assert.Empty(replies);
            Assert.Equal(TcpState.Established, tcb.State);
            Assert.Equal(rcvNxt, tcb.RcvNxt.Value);
        }
        target.AssertStillServes();
    }

    [Theory]
    [MemberData(nameof(AllFlagBytes))]
    public void To_an_established_connection_in_the_window_but_not_at_rcv_nxt(byte flagByte)
    {
        var flags = (TcpFlags)flagByte;
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        uint rcvNxt = c.ClientNxt, sndNxt = c.ServerNxt;
        var replies = target.Inject(TargetStack.Packet(flags, rcvNxt + 1000, sndNxt, sourcePort: c.ClientPortNumber).Build());

        Assert.Equal(TcpState.Established, tcb.State); // nothing here may reset, open or close anything
        Assert.Equal(rcvNxt, tcb.RcvNxt.Value);
        if (Has(flags, TcpFlags.Rst) || Has(flags, TcpFlags.Syn))
        {
            // RFC 5961 §3.2 (RST in the window, not exact) and §4.2 (SYN anywhere): a challenge ACK,
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, so that only a peer that sees it can reset.
            var challenge = Assert.Single(replies);
            Assert.Equal(TcpFlags.Ack, challenge.Flags);
            Assert.Equal(sndNxt, challenge.Seq);
            Assert.Equal(rcvNxt, challenge.Ack);
        }
        else if (!Has(flags, TcpFlags.Ack))
        {
            Assert.Empty(replies); // fifth check: no ACK bit, drop
        }
        else
        {
            // In the window but beyond RCV.NXT: a FIN here is out of order and must wait (RFC 9293 §3.10.7.4,
            // eighth check); at most a duplicate ACK asks for what is missing (RFC 5681 §4.2).
            Assert.InRange(replies.Count, 0, 1);
            Assert.All(replies, r => Assert.Equal((TcpFlags.Ack, sndNxt, rcvNxt), (r.Flags, r.Seq, r.Ack)));
            if (Has(flags, TcpFlags.Fin)) Assert.Single(replies);
        }
        target.AssertStillServes();
    }
}
