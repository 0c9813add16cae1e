using TunStack.Tcp;
using TunStack.Wire;
using Xunit.Abstractions;

namespace TunStack.Tests.Tcp;

/// <summary>
/// RFC 9293 §3.10.7.4 ("Other States") with RFC 5961, as a matrix in the manner of the FreeBSD tcp-testsuite: every
/// synchronized state × every kind of segment × the four edges of the receive window (RCV.NXT−1, RCV.NXT,
/// RCV.NXT+RCV.WND−1, RCV.NXT+RCV.WND), each case asserting the exact segment sent back and the state that follows.
/// The connection is the stack's side of a passive open; the peer offers no options (no SACK, timestamps or window
/// scaling), so RCV.WND is the window field of the last segment the stack sent and MAX.SND.WND is the peer's 65535.
/// Delayed ACKs are off, so an ACK the stack owes goes out at once. Each case prints its --trace lines.
/// </summary>
public class SynchronizedStateMatrixTests(ITestOutputHelper output)
{
    /// <summary>What the peer sends. Data and FIN acknowledge SND.UNA (nothing new); SYN carries an MSS option.</summary>
    public enum Input
    {
        /// <summary>SYN alone (a new connection attempt, or a blind SYN: RFC 5961 §4).</summary>
        Syn,
        /// <summary>SYN+ACK, ACK = SND.NXT.</summary>
        SynAck,
        /// <summary>RST alone (RFC 5961 §3).</summary>
        Rst,
        /// <summary>RST+ACK, ACK = SND.NXT.</summary>
        RstAck,
        /// <summary>A bare ACK with SEG.ACK = SND.UNA − MAX.SND.WND: the oldest acknowledgment RFC 5961 §5 still accepts.</summary>
        OldestAcceptableAck,
        /// <summary>A bare ACK with SEG.ACK = SND.UNA − MAX.SND.WND − 1: below the window (RFC 5961 §5).</summary>
        AckBelowWindow,
        /// <summary>A bare ACK with SEG.ACK = SND.NXT + 1: acknowledges something never sent.</summary>
        AckBeyondSndMax,
        /// <summary>Two bytes of text, PSH+ACK.</summary>
        Data,
        /// <summary>FIN+ACK without text.</summary>
        Fin,
    }

    /// <summary>Where the segment's sequence number lies.</summary>
    public enum Edge { RcvNxtMinus1, RcvNxt, RcvNxtPlusWndMinus1, RcvNxtPlusWnd }

    private static readonly Edge[] Edges = [Edge.RcvNxtMinus1, Edge.RcvNxt, Edge.RcvNxtPlusWndMinus1, Edge.RcvNxtPlusWnd];

    // The expected outcome of each case, one line per state × input, one column per edge. A cell is the reply, then
    // "→ STATE" if the state changes:
    //   -            nothing is sent                 ACK      <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
    //   ACK+n        the same, ACK = RCV.NXT + n     SYN-ACK  a SYN-ACK acknowledging SEG.SEQ+1 (a new incarnation)
    //   CLOSED       nothing is sent; the TCB (or TIME-WAIT record) is deleted
    private static readonly (TcpState State, Input Input, string[] Cells)[] Matrix =
    [
        //                                          RCV.NXT−1   RCV.NXT                 RCV.NXT+WND−1  RCV.NXT+WND
        // First check (sequence number): an unacceptable segment gets an ACK unless it is a RST. Fourth (SYN): a
        // challenge ACK, whatever the sequence number (RFC 5961 §4). Second (RST): only an exact RST resets; one in
        // the window gets a challenge ACK, one outside is dropped (RFC 5961 §3). Fifth (ACK): SEG.ACK outside
        // SND.UNA−MAX.SND.WND..SND.NXT gets an ACK and is dropped (RFC 5961 §5); an old one is ignored.
        (TcpState.Established, Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Established, Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Established, Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.Established, Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.Established, Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.Established, Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Established, Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        // Seventh (text): only the new byte of a segment straddling RCV.NXT is taken; one beyond the left edge is held
        // (SHLD-31) and answered with a duplicate ACK; text past the window is cut off.
        (TcpState.Established, Input.Data,                ["ACK+1",  "ACK+2",                "ACK",         "ACK"]),
        // Eighth (FIN): processed only at RCV.NXT; a FIN beyond a gap is held.
        (TcpState.Established, Input.Fin,                 ["ACK",    "ACK+1 → CLOSE-WAIT",   "ACK",         "ACK"]),

        (TcpState.FinWait1,    Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait1,    Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait1,    Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.FinWait1,    Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.FinWait1,    Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.FinWait1,    Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait1,    Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait1,    Input.Data,                ["ACK+1",  "ACK+2",                "ACK",         "ACK"]),
        // Our FIN is not acknowledged by the peer's: the FINs crossed (simultaneous close).
        (TcpState.FinWait1,    Input.Fin,                 ["ACK",    "ACK+1 → CLOSING",      "ACK",         "ACK"]),

        (TcpState.FinWait2,    Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait2,    Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait2,    Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.FinWait2,    Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.FinWait2,    Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.FinWait2,    Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait2,    Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.FinWait2,    Input.Data,                ["ACK+1",  "ACK+2",                "ACK",         "ACK"]),
        (TcpState.FinWait2,    Input.Fin,                 ["ACK",    "ACK+1 → TIME-WAIT",    "ACK",         "ACK"]),

        // After the peer's FIN: its text is ignored (seventh check), and so is a second FIN at a later sequence number
        // (see docs/CONFORMANCE.md, deviations); RCV.NXT−1 is the FIN itself, so a FIN there is its retransmission.
        (TcpState.CloseWait,   Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.CloseWait,   Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.CloseWait,   Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.CloseWait,   Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.CloseWait,   Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.CloseWait,   Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.CloseWait,   Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.CloseWait,   Input.Data,                ["-",      "-",                    "-",           "ACK"]),
        (TcpState.CloseWait,   Input.Fin,                 ["ACK",    "-",                    "-",           "ACK"]),

        (TcpState.Closing,     Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Closing,     Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Closing,     Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.Closing,     Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.Closing,     Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.Closing,     Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Closing,     Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.Closing,     Input.Data,                ["-",      "-",                    "-",           "ACK"]),
        (TcpState.Closing,     Input.Fin,                 ["ACK",    "-",                    "-",           "ACK"]),

        (TcpState.LastAck,     Input.Syn,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.LastAck,     Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.LastAck,     Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.LastAck,     Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.LastAck,     Input.OldestAcceptableAck, ["ACK",    "-",                    "-",           "ACK"]),
        (TcpState.LastAck,     Input.AckBelowWindow,      ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.LastAck,     Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.LastAck,     Input.Data,                ["-",      "-",                    "-",           "ACK"]),
        (TcpState.LastAck,     Input.Fin,                 ["ACK",    "-",                    "-",           "ACK"]),

        // TIME-WAIT (a record, TcpLayer.TimeWait.cs). A SYN beyond RCV.NXT may open a new incarnation (MAY-2,
        // RFC 6191 §2 without timestamps; like Linux, "beyond" means after RCV.NXT). Any FIN is taken as the
        // retransmission of the peer's: acknowledged, and 2·MSL restarts. Text and anything out of the window get an ACK.
        (TcpState.TimeWait,    Input.Syn,                 ["ACK",    "ACK",                  "SYN-ACK → SYN-RECEIVED", "SYN-ACK → SYN-RECEIVED"]),
        (TcpState.TimeWait,    Input.SynAck,              ["ACK",    "ACK",                  "ACK",         "ACK"]),
        // RCV.NXT+WND: outside the window, so the RST is dropped silently (§3.10.7.4 first check, RFC 5961 §3.2 (1)).
        (TcpState.TimeWait,    Input.Rst,                 ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.TimeWait,    Input.RstAck,              ["-",      "CLOSED",               "ACK",         "-"]),
        (TcpState.TimeWait,    Input.OldestAcceptableAck, ["ACK",    "-",                    "ACK",         "ACK"]),
        // The record keeps no MAX.SND.WND; RFC 9293 §3.10.7.4 lets it be "hard-coded to a maximum permissible window
        // value", with which SND.UNA − 65536 is acceptable: ignored at RCV.NXT.
        (TcpState.TimeWait,    Input.AckBelowWindow,      ["ACK",    "-",                    "ACK",         "ACK"]),
        // RCV.NXT: RFC 9293 §3.10.7.4 fifth check (RFC 5961 §5.2), for every state in the list, TIME-WAIT included:
        // "All incoming segments whose ACK value doesn't satisfy the above condition MUST be discarded and an ACK sent
        // back." SEG.ACK = SND.NXT + 1 is above SND.NXT.
        (TcpState.TimeWait,    Input.AckBeyondSndMax,     ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.TimeWait,    Input.Data,                ["ACK",    "ACK",                  "ACK",         "ACK"]),
        (TcpState.TimeWait,    Input.Fin,                 ["ACK",    "ACK",                  "ACK",         "ACK"]),
    ];

    public static TheoryData<TcpState, Input, Edge, string> Cases()
    {
        var data = new TheoryData<TcpState, Input, Edge, string>();
        foreach (var (state, input, cells) in Matrix)
            for (int i = 0; i < Edges.Length; i++)
                data.Add(state, input, Edges[i], cells[i]);
        return data;
    }

    [Fact]
    public void The_matrix_covers_every_synchronized_state_and_every_input_once()
    {
        TcpState[] states = [TcpState.Established, TcpState.FinWait1, TcpState.FinWait2, TcpState.CloseWait, TcpState.Closing,
            TcpState.LastAck, TcpState.TimeWait];
        foreach (var state in states)
            foreach (var input in Enum.GetValues<Input>())
                Assert.Single(Matrix, row => row.State == state && row.Input == input);
        Assert.Equal(states.Length * Enum.GetValues<Input>().Length, Matrix.Length);
        Assert.All(Matrix, row => Assert.Equal(Edges.Length, row.Cells.Length));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Segment_arrives(TcpState state, Input input, Edge edge, string expected)
    {
        var s = Connection.In(state);
        uint seq = edge switch
        {
            Edge.RcvNxtMinus1 => s.RcvNxt - 1,
            Edge.RcvNxt => s.RcvNxt,
            Edge.RcvNxtPlusWndMinus1 => s.RcvNxt + s.RcvWnd - 1,
            _ => s.RcvNxt + s.RcvWnd,
        };
        var (flags, ack, payload, options) = input switch
        {
            Input.Syn => (TcpFlags.Syn, 0u, Array.Empty<byte>(), new TcpOptions { Mss = 1460 }),
            Input.SynAck => (TcpFlags.Syn | TcpFlags.Ack, s.SndNxt, [], new TcpOptions { Mss = 1460 }),
            Input.Rst => (TcpFlags.Rst, 0u, [], default),
            Input.RstAck => (TcpFlags.Rst | TcpFlags.Ack, s.SndNxt, [], default),
            Input.OldestAcceptableAck => (TcpFlags.Ack, s.SndUna - MaxSndWnd, [], default),
            Input.AckBelowWindow => (TcpFlags.Ack, s.SndUna - MaxSndWnd - 1, [], default),
            Input.AckBeyondSndMax => (TcpFlags.Ack, s.SndNxt + 1, [], default),
            Input.Data => (TcpFlags.Psh | TcpFlags.Ack, s.SndUna, "ab"u8.ToArray(), default),
            _ => (TcpFlags.Fin | TcpFlags.Ack, s.SndUna, [], default),
        };
        string setupTrace = s.Peer.Trace;

        var replies = s.C.Send(seq, ack, flags, payload, 65535, options);

        output.WriteLine($"{state.ToRfcName()}: SND.UNA {s.SndUna} SND.NXT {s.SndNxt} RCV.NXT {s.RcvNxt} RCV.WND {s.RcvWnd}");
        output.WriteLine(s.Peer.Trace);
        string context = $"{state.ToRfcName()} × {input} at {edge}, expected \"{expected}\"\n{s.Peer.Trace[setupTrace.Length..]}";

        var (reply, next) = ParseCell(expected, state);
        switch (reply)
        {
            case "-":
                Assert.True(replies.Count == 0, $"expected no reply; got:\n{ScriptedConnection.Describe(replies)}{context}");
                break;
            case "SYN-ACK":
            {
                Assert.True(replies.Count == 1, $"expected one SYN-ACK; got:\n{ScriptedConnection.Describe(replies)}{context}");
                Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, replies[0].Flags);
                Assert.Equal(seq + 1, replies[0].Ack);
                break;
            }
            default:
            {
                // "ACK" or "ACK+n": <SEQ=SND.NXT><ACK=RCV.NXT(+n)><CTL=ACK>
                uint advance = reply.Length > 3 ? uint.Parse(reply[4..]) : 0;
                Assert.True(replies.Count == 1, $"expected one ACK; got:\n{ScriptedConnection.Describe(replies)}{context}");
                var a = replies[0];
                Assert.True(a.Flags == TcpFlags.Ack && a.Seq == s.SndNxt && a.Ack == s.RcvNxt + advance && a.Payload.Length == 0,
                    $"expected <SEQ={s.SndNxt}><ACK={s.RcvNxt + advance}><CTL=ACK>; got {a}\n{context}");
                break;
            }
        }
        AssertState(s, next, context);
    }

    private static void AssertState(Connection s, TcpState expected, string context)
    {
        var tcb = s.C.Tcb;
        bool timeWait = s.Peer.Stack.IsInTimeWait(s.C.Tuple);
        string actual = tcb is not null ? tcb.State.ToRfcName() : timeWait ? "TIME-WAIT" : "CLOSED";
        Assert.True(expected.ToRfcName() == actual, $"expected state {expected.ToRfcName()}, got {actual}\n{context}");
        if (expected == TcpState.Closed && s.State != TcpState.TimeWait)
            Assert.Equal(TcpState.Closed, s.Tcb!.State); // the application sees the TCB closed
    }

    private static (string Reply, TcpState Next) ParseCell(string cell, TcpState state)
    {
        if (cell == "CLOSED")
            return ("-", TcpState.Closed);
        var parts = cell.Split('→', StringSplitOptions.TrimEntries);
        var next = parts.Length == 2 ? Enum.GetValues<TcpState>().Single(t => t.ToRfcName() == parts[1]) : state;
        return (parts[0], next);
    }

    private const uint MaxSndWnd = 65535;

    /// <summary>A connection brought to <see cref="State"/>, with the variables as the peer knows them.</summary>
    private sealed record Connection(ScriptedPeer Peer, ScriptedConnection C, Tcb? Tcb, TcpState State,
        uint SndUna, uint SndNxt, uint RcvNxt, uint RcvWnd)
    {
        public static NetStackOptions Options()
        {
            var d = ScriptedPeer.DefaultOptions();
            return new NetStackOptions
            {
                Addresses = d.Addresses, IsnSecret = d.IsnSecret, MslMicros = d.MslMicros,
                ReceiveBufferSize = d.ReceiveBufferSize, SendBufferSize = d.SendBufferSize, DelayedAckMicros = 0,
            };
        }

        /// <summary>Plays the segments that lead from a passive open to <paramref name="state"/> (RFC 9293 Figures 12, 13).</summary>
        public static Connection In(TcpState state)
        {
            var peer = new ScriptedPeer(Options());
            peer.Stack.Listen(80);
            var c = new ScriptedConnection(peer);
            var tcb = c.EstablishWith(sack: false, timestamps: false);
            var last = c.SynAck!;
            switch (state)
            {
                case TcpState.Established:
                    break;
                case TcpState.FinWait1:
                case TcpState.FinWait2:
                case TcpState.TimeWait:
                    tcb.Close();
                    last = Fin(peer, c);
                    if (state == TcpState.FinWait1) break;
                    Assert.Empty(c.SendAck());
                    if (state == TcpState.FinWait2) break;
                    last = Assert.Single(c.SendFin());
                    break;
                case TcpState.CloseWait:
                case TcpState.LastAck:
                    last = Assert.Single(c.SendFin());
                    if (state == TcpState.CloseWait) break;
                    tcb.Close();
                    last = Fin(peer, c);
                    break;
                case TcpState.Closing:
                    tcb.Close();
                    Fin(peer, c);
                    // The peer's FIN crosses ours: it acknowledges everything before our FIN, not the FIN.
                    last = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt - 1, TcpFlags.Fin | TcpFlags.Ack));
                    c.ClientNxt++;
                    break;
            }
            Assert.Equal(state, tcb.State);
            bool finUnacknowledged = state is TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck;
            var s = new Connection(peer, c, tcb, state, finUnacknowledged ? c.ServerNxt - 1 : c.ServerNxt, c.ServerNxt,
                c.ClientNxt, last.Window);
            Assert.Equal(s.RcvNxt, last.Ack);
            if (state != TcpState.TimeWait)
            {
                Assert.Equal(s.SndUna, tcb.SndUna.Value);
                Assert.Equal(s.SndNxt, tcb.SndNxt.Value);
                Assert.Equal(s.RcvNxt, tcb.RcvNxt.Value);
            }
            else
            {
                Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
                Assert.Null(c.Tcb);
            }
            return s;
        }

        private static Seg Fin(ScriptedPeer peer, ScriptedConnection c)
        {
            var fin = Assert.Single(peer.Poll());
            Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
            Assert.Equal(c.ServerNxt, fin.Seq);
            c.ServerNxt++;
            return fin;
        }
    }
}
