using TunStack.Tcp;
using TunStack.Wire;
using Xunit.Abstractions;

namespace TunStack.Tests.Tcp;

/// <summary>
/// RFC 9293 §3.10.7.3, SEGMENT ARRIVES in SYN-SENT, as a matrix: each kind of segment with each kind of acknowledgment
/// field — none, SEG.ACK = ISS (not above ISS), ISS+1 (acceptable: SND.UNA &lt; SEG.ACK =&lt; SND.NXT), ISS+2 (above
/// SND.NXT) — asserting the exact reply and the state that follows. There is no receive window yet, so the
/// sequence-number edges of the synchronized states do not apply here.
/// </summary>
public class SynSentMatrixTests(ITestOutputHelper output)
{
    /// <summary>The acknowledgment field of the segment, relative to our ISS.</summary>
    public enum AckField { None, Iss, IssPlus1, IssPlus2 }

    private const uint PeerIsn = 9000;

    // Replies: "-" nothing; "RST" <SEQ=SEG.ACK><CTL=RST>; "ACK" <SEQ=ISS+1><ACK=SEG.SEQ+1(+text)><CTL=ACK>;
    // "SYN-ACK" <SEQ=ISS><ACK=SEG.SEQ+1><CTL=SYN,ACK>. Then "→ STATE" when the state changes.
    private static readonly (TcpFlags Flags, AckField Ack, string Expected)[] Matrix =
    [
        // Fourth check: a SYN without ACK is a simultaneous open (Figure 8): SYN-ACK, SYN-RECEIVED (MUST-10).
        (TcpFlags.Syn,                             AckField.None,     "SYN-ACK → SYN-RECEIVED"),
        // First check: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset ... <SEQ=SEG.ACK><CTL=RST>".
        (TcpFlags.Syn | TcpFlags.Ack,              AckField.Iss,      "RST"),
        // Fourth check with an acceptable ACK: ESTABLISHED and <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
        (TcpFlags.Syn | TcpFlags.Ack,              AckField.IssPlus1, "ACK → ESTABLISHED"),
        (TcpFlags.Syn | TcpFlags.Ack,              AckField.IssPlus2, "RST"),
        // Second check: "Otherwise (no ACK), drop the segment and return."
        (TcpFlags.Rst,                             AckField.None,     "-"),
        // A RST with an unacceptable ACK: "unless the RST bit is set, if so drop the segment and return".
        (TcpFlags.Rst | TcpFlags.Ack,              AckField.Iss,      "-"),
        // "If the ACK was acceptable, then signal to the user 'error: connection reset', ... enter CLOSED state".
        (TcpFlags.Rst | TcpFlags.Ack,              AckField.IssPlus1, "- → CLOSED"),
        (TcpFlags.Rst | TcpFlags.Ack,              AckField.IssPlus2, "-"),
        // Fifth: "if neither of the SYN or RST bits is set, then drop the segment and return" — after the first check.
        (TcpFlags.Ack,                             AckField.Iss,      "RST"),
        (TcpFlags.Ack,                             AckField.IssPlus1, "-"),
        (TcpFlags.Ack,                             AckField.IssPlus2, "RST"),
        (TcpFlags.Psh | TcpFlags.Ack,              AckField.Iss,      "RST"),
        (TcpFlags.Psh | TcpFlags.Ack,              AckField.IssPlus1, "-"),
        (TcpFlags.Psh | TcpFlags.Ack,              AckField.IssPlus2, "RST"),
        (TcpFlags.Psh,                             AckField.None,     "-"),
        (TcpFlags.Fin | TcpFlags.Ack,              AckField.Iss,      "RST"),
        (TcpFlags.Fin | TcpFlags.Ack,              AckField.IssPlus1, "-"),
        (TcpFlags.Fin | TcpFlags.Ack,              AckField.IssPlus2, "RST"),
        // Eighth check: "Do not process the FIN if the state is ... SYN-SENT since the SEG.SEQ cannot be validated".
        (TcpFlags.Fin,                             AckField.None,     "-"),
        (TcpFlags.None,                            AckField.None,     "-"),
    ];

    public static TheoryData<string, AckField, string> Cases()
    {
        var data = new TheoryData<string, AckField, string>();
        foreach (var (flags, ack, expected) in Matrix)
            data.Add(flags.ToShortString(), ack, expected);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Segment_arrives_in_syn_sent(string flagsText, AckField ackField, string expected)
    {
        var flags = Matrix.First(m => m.Flags.ToShortString() == flagsText).Flags;
        var peer = new ScriptedPeer();
        var (c, tcb, syn) = ScriptedConnection.ConnectFromStack(peer, peerIsn: PeerIsn);
        uint iss = syn.Seq;
        uint ack = ackField switch
        {
            AckField.None => 0,
            AckField.Iss => iss,
            AckField.IssPlus1 => iss + 1,
            _ => iss + 2,
        };
        byte[] payload = (flags & TcpFlags.Psh) != 0 ? "ab"u8.ToArray() : [];
        var options = (flags & TcpFlags.Syn) != 0 ? new TcpOptions { Mss = 1460 } : default;
        string before = peer.Trace;

        var replies = c.Send(PeerIsn, ack, flags, payload, 65535, options);

        output.WriteLine(peer.Trace);
        string context = $"SYN-SENT × {flagsText} ack {ackField}, expected \"{expected}\"\n{peer.Trace[before.Length..]}";
        var parts = expected.Split('→', StringSplitOptions.TrimEntries);
        var next = parts.Length == 2 ? Enum.GetValues<TcpState>().Single(t => t.ToRfcName() == parts[1]) : TcpState.SynSent;
        switch (parts[0])
        {
            case "-":
                Assert.True(replies.Count == 0, $"expected no reply; got:\n{ScriptedConnection.Describe(replies)}{context}");
                break;
            case "RST":
                Assert.True(replies.Count == 1 && replies[0].Flags == TcpFlags.Rst && replies[0].Seq == ack,
                    $"expected <SEQ={ack}><CTL=RST>; got:\n{ScriptedConnection.Describe(replies)}{context}");
                break;
            case "ACK":
                Assert.True(replies.Count == 1 && replies[0].Flags == TcpFlags.Ack && replies[0].Seq == iss + 1
                    && replies[0].Ack == PeerIsn + 1 + (uint)payload.Length,
                    $"expected <SEQ={iss + 1}><ACK={PeerIsn + 1}><CTL=ACK>; got:\n{ScriptedConnection.Describe(replies)}{context}");
                break;
            case "SYN-ACK":
                Assert.True(replies.Count == 1 && replies[0].Flags == (TcpFlags.Syn | TcpFlags.Ack) && replies[0].Seq == iss
                    && replies[0].Ack == PeerIsn + 1,
                    $"expected <SEQ={iss}><ACK={PeerIsn + 1}><CTL=SYN,ACK>; got:\n{ScriptedConnection.Describe(replies)}{context}");
                break;
            default:
                throw new InvalidOperationException(expected);
        }
        Assert.True(next == tcb.State, $"expected state {next.ToRfcName()}, got {tcb.State.ToRfcName()}\n{context}");
        Assert.Equal(next != TcpState.Closed, peer.Stack.FindConnection(tcb.Tuple) is not null);
        if (next == TcpState.SynSent)
        {
            // Nothing was learnt from the segment: the SYN is retransmitted at the RTO as if it had not arrived.
            var retransmission = Assert.Single(peer.Advance(1_000_000));
            Assert.Equal(TcpFlags.Syn, retransmission.Flags);
            Assert.Equal(iss, retransmission.Seq);
        }
    }
}
