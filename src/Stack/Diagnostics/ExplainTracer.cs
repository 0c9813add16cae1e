using System.Globalization;
using System.Text;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

/// <summary>
/// <c>--explain</c>: narrates each connection's opening and closing in plain language as it happens — which step of the
/// three-way handshake or of the close a segment is, which state it moves the connection to, why, and where RFC 9293
/// says so. Data transfer itself is not narrated (that is what <c>--trace</c> shows). Lines start like trace lines, with
/// the time and <c>##</c>, so the two interleave when both are on (<see cref="CompositeTracer"/>):
/// <code>
///    0.000000 ## [198.18.0.2:80 &lt;> 198.18.0.1:40000] opening, step 1 of 3: 198.18.0.1:40000 asks to open ...
/// </code>
/// </summary>
/// <remarks>
/// What it remembers about a connection (the offers in both SYNs, who closed first, whether a FIN was acknowledged) is
/// forgotten when the connection closes or enters TIME-WAIT; at most <c>maxConnections</c> connections are followed at
/// once, the oldest forgotten first, so memory stays bounded whatever the traffic. Like every tracer it runs on the
/// engine's thread, and costs nothing when off (<see cref="NetStack.Tracer"/> is null).
/// </remarks>
internal sealed class ExplainTracer : IStackTracer
{
    /// <summary>How many connections are followed at once by default.</summary>
    public const int DefaultMaxConnections = 1024;

    /// <summary>Characters of narration per line, after the time column.</summary>
    private const int TextWidth = 100;

    /// <summary>Continuation lines start under the text of the first line: 11 columns of time, " ## ".</summary>
    private const string Continuation = "               ";

    private readonly TextWriter _writer;
    private readonly long _mslMicros;
    private readonly int _maxConnections;
    private readonly Dictionary<FourTuple, Story> _stories = new();
    private readonly LinkedList<FourTuple> _oldestFirst = new();
    private readonly StringBuilder _line = new(256);
    private long _origin = -1;

    /// <param name="writer">Where the narration goes (standard output for the server).</param>
    /// <param name="mslMicros">The stack's maximum segment lifetime, to say how long TIME-WAIT lasts; 0: not said.</param>
    /// <param name="maxConnections">How many connections to follow at once; the oldest is forgotten beyond that.</param>
    public ExplainTracer(TextWriter writer, long mslMicros = 0, int maxConnections = DefaultMaxConnections)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        _writer = writer;
        _mslMicros = mslMicros;
        _maxConnections = maxConnections;
    }

    /// <summary>Connections whose story is being followed now (for tests of the bound).</summary>
    internal int ConnectionsFollowed => _stories.Count;

    /// <summary>What the narration remembers about one connection, between its segments.</summary>
    private sealed class Story
    {
        public LinkedListNode<FourTuple>? Node;
        /// <summary>We sent the first SYN (connect()).</summary>
        public bool Active;
        public long OpenedAt;
        public TcpOptions PeerSyn;
        public bool HavePeerSyn;
        public TcpOptions OurSyn;
        public bool HaveOurSyn;
        /// <summary>When our SYN (active) or SYN+ACK (passive) first left, for the handshake's RTT; -1 once resent.</summary>
        public long SynSentAt = -1;
        public bool OurSynTold;
        public bool PeerSynAckSeen;
        public bool FinalHandshakeAckTold;
        /// <summary>The peer's FIN was received in order: every ACK we send from now on acknowledges it.</summary>
        public bool PeerFinSeen;
        public bool PeerFinAckTold;
        public bool OurFinTold;
        public bool ChallengeTold;
        public bool AwaitingFinalAck;
        public long BytesIn;
        public long BytesOut;
    }

    public void OnPacketDropped(long timeMicros, DropReason reason) => Clock(timeMicros);

    public void OnSegment(in SegmentTraceRecord r)
    {
        Clock(r.TimeMicros);
        if (r.Direction == TraceDirection.In)
            SegmentIn(r);
        else
            SegmentOut(r);
    }

    public void OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause)
    {
        Clock(timeMicros);
        _stories.TryGetValue(tuple, out var story);
        if (to == TcpState.SynSent && from == TcpState.Closed)
        {
            story = Follow(tuple, timeMicros);
            story.Active = true;
            Say(timeMicros, tuple, "opening",
                $"our application connects to {Peer(tuple)} (OPEN, active: RFC 9293 §3.10.1) from our port {tuple.LocalPort}, an " +
                "ephemeral port picked by a keyed hash so that it is hard to predict (RFC 6056). CLOSED -> SYN-SENT; our SYN " +
                "goes out next.");
            return;
        }
        if (from == TcpState.Established && to == TcpState.FinWait1)
        {
            Say(timeMicros, tuple, "closing",
                "our application closes the connection (CLOSE, §3.10.4): it has nothing more to send. ESTABLISHED -> " +
                "FIN-WAIT-1; our FIN follows whatever data is still queued. We close first, so at the end it is we who " +
                "wait in TIME-WAIT.");
            return;
        }
        if (from == TcpState.CloseWait && to == TcpState.LastAck)
        {
            Say(timeMicros, tuple, "closing",
                "our application closes its side too (CLOSE, §3.10.4). CLOSE-WAIT -> LAST-ACK; our FIN follows whatever data " +
                "is still queued.");
            return;
        }
        if (to == TcpState.Closed)
        {
            ConnectionEnded(timeMicros, tuple, from, cause, story);
            Forget(tuple);
            return;
        }
        Say(timeMicros, tuple, "state", $"{from.ToRfcName()} -> {to.ToRfcName()} ({cause}).");
    }

    private void ConnectionEnded(long time, in FourTuple tuple, TcpState from, string cause, Story? story)
    {
        string state = $"{from.ToRfcName()} -> CLOSED";
        switch (cause)
        {
            case "2MSL timeout":
                Say(time, tuple, "TIME-WAIT over",
                    $"no FIN from {Peer(tuple)} for 2·MSL{MslText(" ({0})")}: our last ACK evidently arrived, and any " +
                    "segment of this connection still in the network has expired. The record is deleted (§3.10.8) and the " +
                    "four-tuple may be used again.");
                return;
            case "new SYN (RFC 6191)":
                Say(time, tuple, "reopening",
                    $"a new SYN from {Peer(tuple)} reuses the four-tuple of a connection still in TIME-WAIT. Its sequence " +
                    "number (or its timestamp) lies beyond anything the old connection used, so it cannot be an old duplicate: " +
                    "the TIME-WAIT record is dropped and a new connection starts (§3.6.1 MAY-2, RFC 6191). Our new ISN is " +
                    "chosen above the old connection's sequence numbers, so the two cannot be confused.");
                return;
            case "abort()":
                Say(time, tuple, "reset",
                    "our application aborted the connection (ABORT, §3.10.5)" +
                    (from is TcpState.SynSent ? "" : ": we sent RST, ") +
                    $"and the connection is deleted at once ({state}): no FIN exchange and no TIME-WAIT; data not yet " +
                    "delivered is thrown away, and the peer's application sees \"connection reset\"." + Summary(story, time));
                return;
            case "close()":
                Say(time, tuple, "closing",
                    $"our application closed before the handshake completed: in SYN-SENT there is nothing to tell the peer, " +
                    $"so the connection is simply deleted (§3.10.4). {state}.");
                return;
            case "connect timeout":
                Say(time, tuple, "giving up",
                    $"no answer to our SYN from {Peer(tuple)} in time ({state}); connect() fails with \"timed out\" " +
                    "(§3.8.3). A host that is down or a firewall that drops SYNs looks like this; a closed port would have " +
                    "answered RST at once.");
                return;
            case "retransmission timeout":
                Say(time, tuple, "giving up",
                    $"our segments went unacknowledged through every retransmission, each after a doubled timeout (§3.8.3, " +
                    $"RFC 6298 §5.5): the peer is unreachable or gone. {state}; we send nothing more." + Summary(story, time));
                return;
            case "keep-alive timeout":
                Say(time, tuple, "giving up",
                    $"the connection was idle and {Peer(tuple)} answered none of our keep-alive probes (§3.8.4). {state}." +
                    Summary(story, time));
                return;
            case "FIN-WAIT-2 timeout":
                Say(time, tuple, "giving up",
                    $"{Peer(tuple)} acknowledged our FIN but never sent its own, and our application has let go of the " +
                    $"connection: after the FIN-WAIT-2 timeout we sent RST and deleted it ({state}), as Linux does after " +
                    "tcp_fin_timeout. RFC 9293 alone would wait for that FIN forever." + Summary(story, time));
                return;
            case "TIME-WAIT limit":
                Say(time, tuple, "closing",
                    $"too many connections are in TIME-WAIT already: this one is deleted at once instead of waiting 2·MSL " +
                    $"({state}), a bound on memory like Linux's tcp_max_tw_buckets." + Summary(story, time));
                return;
            default:
                Say(time, tuple, "closed", $"{state} ({cause})." + Summary(story, time));
                return;
        }
    }

    // ---- segments in ----

    private void SegmentIn(in SegmentTraceRecord r)
    {
        var t = r.Tuple;
        switch (r.Before)
        {
            case TcpState.Listen:
                SegmentAtListener(r);
                return;
            case TcpState.TimeWait:
                SegmentInTimeWait(r);
                return;
            case TcpState.Closed when !r.HasConnection:
                SegmentToClosedPort(r);
                return;
            case TcpState.Closed:
                return;
        }

        var story = FollowOrGet(t, r.TimeMicros);
        if (r.Drop == DropReason.None && (r.Note & TraceNote.Duplicate) == 0)
            story.BytesIn += r.PayloadLength;

        var from = r.Before;
        if (from == TcpState.SynSent)
        {
            SynSentSegmentIn(r, story);
            if (r.After is TcpState.Closed) Forget(t);
            if (r.After is not TcpState.CloseWait) return;
            from = TcpState.Established; // a FIN came with the SYN+ACK: it is narrated below
        }
        else if (from == TcpState.SynReceived)
        {
            if (SynReceivedSegmentIn(r, story))
                return;
            if (r.After is TcpState.SynReceived or TcpState.Closed)
                return;
            from = TcpState.Established; // the handshake completed; a FIN may have come along
        }

        if (Has(r.Flags, TcpFlags.Rst))
        {
            ResetIn(r, story, from);
            return;
        }
        if (Has(r.Flags, TcpFlags.Syn) && r.Drop == DropReason.Unacceptable && !story.ChallengeTold)
        {
            story.ChallengeTold = true;
            Say(r.TimeMicros, t, "challenge ACK",
                $"a SYN on a synchronized connection: a real peer that restarted, or a forged segment. Rather than reset the " +
                "connection we answer with a challenge ACK; a peer that really restarted replies with a RST at the right " +
                "sequence number (RFC 5961 §4).");
        }
        ClosingSegmentIn(r, story, from);
        if (r.After == TcpState.Closed)
            Forget(t);
    }

    /// <summary>SYN-SENT (§3.10.7.3): the answer to our SYN.</summary>
    private void SynSentSegmentIn(in SegmentTraceRecord r, Story story)
    {
        var t = r.Tuple;
        var f = r.Flags;
        if (Has(f, TcpFlags.Rst) && r.After == TcpState.Closed)
        {
            Say(r.TimeMicros, t, "opening refused",
                $"{Peer(t)} answers our SYN with RST+ACK: nothing listens on port {t.RemotePort} there. A RST in SYN-SENT " +
                "is believed only if it acknowledges our SYN (ack = x+1), which it does (§3.10.7.3). SYN-SENT -> CLOSED; " +
                "connect() fails with \"connection refused\". There is no retry: a refusal is an answer, unlike a lost SYN.");
            return;
        }
        if (Has(f, TcpFlags.Syn) && Has(f, TcpFlags.Ack) && r.After is not (TcpState.SynSent or TcpState.Closed))
        {
            story.PeerSyn = r.Options;
            story.HavePeerSyn = true;
            story.PeerSynAckSeen = true;
            Say(r.TimeMicros, t, "opening, step 2 of 3",
                $"{Peer(t)} answers SYN+ACK. Its SYN half carries its own initial sequence number y = {r.Sequence}; its ACK " +
                $"half, ack = x+1 = {r.Acknowledgment}, acknowledges our SYN{Rtt(story, r.TimeMicros, "our SYN")}. It offers " +
                $"{Offer(r.Options)}. SYN-SENT -> ESTABLISHED (§3.10.7.3): for us the handshake is complete — our ISN was " +
                $"acknowledged and we know theirs — so connect() returns. {Agreed(story)}");
            return;
        }
        if (Has(f, TcpFlags.Syn) && !Has(f, TcpFlags.Ack) && r.After == TcpState.SynReceived)
        {
            story.PeerSyn = r.Options;
            story.HavePeerSyn = true;
            Say(r.TimeMicros, t, "simultaneous open",
                $"{Peer(t)} sends a SYN of its own (y = {r.Sequence}) instead of answering ours: both sides opened at once " +
                "and the SYNs crossed (RFC 9293 Figure 7). SYN-SENT -> SYN-RECEIVED; we answer SYN+ACK (our ISN again, " +
                "ack = y+1), and so will the peer: four segments instead of three, and no listener on either side.");
        }
    }

    /// <summary>SYN-RECEIVED: the handshake's last step (or a retransmitted SYN). True when nothing more is to be said.</summary>
    private bool SynReceivedSegmentIn(in SegmentTraceRecord r, Story story)
    {
        var t = r.Tuple;
        var f = r.Flags;
        if (Has(f, TcpFlags.Syn) && !Has(f, TcpFlags.Ack) && r.After == TcpState.SynReceived)
        {
            Say(r.TimeMicros, t, "opening",
                $"{Peer(t)} sends its SYN again: our SYN+ACK was lost, or its ACK was. We answer with the SYN+ACK again.");
            return true;
        }
        if (Has(f, TcpFlags.Rst))
        {
            if (r.After == TcpState.Closed)
            {
                Say(r.TimeMicros, t, story.Active ? "opening refused" : "reset",
                    story.Active
                        ? $"{Peer(t)} answers with RST: it refuses the connection (§3.10.7.4, MUST-11). SYN-RECEIVED -> CLOSED."
                        : $"{Peer(t)} resets the half-open connection. SYN-RECEIVED -> CLOSED: the connection is forgotten " +
                          "and the listener carries on (§3.10.7.4: \"return to the LISTEN state\").");
                Forget(t);
            }
            return true;
        }
        if (r.Drop == DropReason.AcceptQueueFull)
        {
            Say(r.TimeMicros, t, "opening",
                $"{Peer(t)} completes the handshake, but the listener's accept queue is full: the application is not " +
                "accepting. Like Linux we ignore this ACK and stay in SYN-RECEIVED; our SYN+ACK will be sent again, and a " +
                "later ACK may find room.");
            return true;
        }
        if (r.After is TcpState.SynReceived or TcpState.Closed)
            return true;

        story.FinalHandshakeAckTold = true;
        string rtt = Rtt(story, r.TimeMicros, "our SYN+ACK");
        string how = story.Active
            ? $"{Peer(t)} acknowledges our SYN (ack = {r.Acknowledgment}){rtt}. SYN-RECEIVED -> ESTABLISHED: the " +
              "simultaneous open is complete, each side having sent a SYN and acknowledged the other's."
            : $"{Peer(t)} acknowledges our SYN: ack = y+1 = {r.Acknowledgment}{rtt}. SYN-RECEIVED -> ESTABLISHED " +
              "(§3.10.7.4, the ACK check); the connection waits in the listener's accept queue until the application " +
              $"accepts it. {WhyThree}";
        Say(r.TimeMicros, t, story.Active ? "simultaneous open" : "opening, step 3 of 3", $"{how} {Agreed(story)}");
        return false;
    }

    private void ResetIn(in SegmentTraceRecord r, Story story, TcpState from)
    {
        var t = r.Tuple;
        if (r.After == TcpState.Closed)
        {
            Say(r.TimeMicros, t, "reset",
                $"{Peer(t)} aborts the connection with RST. Its sequence number is exactly the next one we expect, as RFC " +
                $"5961 §3.2 requires before a RST is believed. {from.ToRfcName()} -> CLOSED at once (§3.10.7.4): no FIN " +
                "exchange and no TIME-WAIT; data not yet delivered is lost, and our application sees \"connection " +
                "reset\"." + Summary(story, r.TimeMicros));
            Forget(t);
            return;
        }
        if (r.Drop == DropReason.Unacceptable && !story.ChallengeTold)
        {
            story.ChallengeTold = true;
            Say(r.TimeMicros, t, "challenge ACK",
                "a RST inside our window but not exactly at the next sequence number we expect: it could be forged by " +
                "someone who guessed the window. Instead of closing we answer with a challenge ACK; a real peer replies " +
                "with a RST at the exact number (RFC 5961 §3.2).");
        }
    }

    /// <summary>FINs and the ACKs of FINs, in any synchronized state (§3.10.7.4, eighth check; §3.6).</summary>
    private void ClosingSegmentIn(in SegmentTraceRecord r, Story story, TcpState from)
    {
        var t = r.Tuple;
        var to = r.After;
        bool fin = Has(r.Flags, TcpFlags.Fin);
        // The peer's FIN counts once it is in order: it may have come earlier, out of order, and this segment filled the gap.
        if (to is TcpState.CloseWait or TcpState.Closing or TcpState.TimeWait && from is not (TcpState.CloseWait
            or TcpState.Closing or TcpState.LastAck or TcpState.TimeWait))
            story.PeerFinSeen = true;
        string withData = r.PayloadLength > 0 ? $" (with its last {r.PayloadLength} bytes of data)" : "";

        switch (from, to)
        {
            case (TcpState.Established, TcpState.CloseWait):
                Say(r.TimeMicros, t, "closing, step 1 of 4",
                    $"{Peer(t)} sends FIN{withData}: it has nothing more to send (its application closed or shut down " +
                    "writing). Its half of the connection is finished; ours stays open, and we may still send. ESTABLISHED " +
                    "-> CLOSE-WAIT (§3.10.7.4, the FIN check), and our application reads the end of the data. " + WhyFour);
                break;
            case (TcpState.FinWait1, TcpState.FinWait2):
                Say(r.TimeMicros, t, "closing, step 2 of 4",
                    $"{Peer(t)} acknowledges our FIN (ack = {r.Acknowledgment}). FIN-WAIT-1 -> FIN-WAIT-2: our half is " +
                    "closed. Its half is still open — it may go on sending — until its application closes and its FIN " +
                    "comes; this is why its ACK and its FIN are two separate steps.");
                break;
            case (TcpState.FinWait1, TcpState.TimeWait):
                story.AwaitingFinalAck = true;
                Say(r.TimeMicros, t, "closing, steps 2 and 3 of 4 in one segment",
                    $"{Peer(t)} acknowledges our FIN (ack = {r.Acknowledgment}) and sends its own FIN{withData} in the same " +
                    "segment: its application had closed before its TCP got round to acknowledging ours (a delayed ACK " +
                    "waits a moment, and the FIN caught up with it). FIN-WAIT-1 -> TIME-WAIT.");
                break;
            case (TcpState.FinWait2, TcpState.TimeWait):
                story.AwaitingFinalAck = true;
                Say(r.TimeMicros, t, "closing, step 3 of 4",
                    $"{Peer(t)} sends its FIN{withData}: it is done too. FIN-WAIT-2 -> TIME-WAIT.");
                break;
            case (TcpState.FinWait1, TcpState.Closing):
                Say(r.TimeMicros, t, "simultaneous close",
                    $"{Peer(t)}'s FIN{withData} crossed ours: it closed before our FIN reached it, so its FIN does not " +
                    "acknowledge ours. FIN-WAIT-1 -> CLOSING (RFC 9293 Figure 13). Each side now acknowledges the other's " +
                    "FIN, and both end in TIME-WAIT: each closed first, as far as it can tell.");
                break;
            case (TcpState.Closing, TcpState.TimeWait):
                Say(r.TimeMicros, t, "simultaneous close",
                    $"{Peer(t)} acknowledges our FIN (ack = {r.Acknowledgment}). CLOSING -> TIME-WAIT for " +
                    $"2·MSL{MslText(" ({0})")}: both FINs are acknowledged, and like the peer we wait in case our last ACK " +
                    "was lost and its FIN comes again (§3.6.1)." + Summary(story, r.TimeMicros));
                Forget(t);
                break;
            case (TcpState.LastAck, TcpState.Closed):
                Say(r.TimeMicros, t, "closing, step 4 of 4",
                    $"{Peer(t)} acknowledges our FIN (ack = {r.Acknowledgment}). LAST-ACK -> CLOSED: the connection is " +
                    $"gone, at once. We closed second, so we do not wait: TIME-WAIT falls to the side that closed first, " +
                    $"because it sends the last ACK — {Peer(t)} waits there now." + Summary(story, r.TimeMicros));
                break;
            default:
                if (fin && to == from && from is TcpState.CloseWait or TcpState.LastAck or TcpState.Closing)
                {
                    Say(r.TimeMicros, t, "closing",
                        $"{Peer(t)} sends its FIN again: our ACK of it was lost (or is late). We acknowledge it again.");
                }
                break;
        }
    }

    /// <summary>A segment to a listening port (§3.10.7.2), including SYN cookies (RFC 4987).</summary>
    private void SegmentAtListener(in SegmentTraceRecord r)
    {
        var t = r.Tuple;
        var f = r.Flags;
        if ((r.Note & TraceNote.SynCookie) != 0)
        {
            if (Has(f, TcpFlags.Syn))
            {
                Say(r.TimeMicros, t, "SYN cookie",
                    $"{Peer(t)} asks to open a connection (SYN, x = {r.Sequence}), but the listener's half-open queue is " +
                    "full — too many connections wait in SYN-RECEIVED, as in a SYN flood. Instead of creating a connection " +
                    "we answer SYN+ACK with a cookie as our ISN: a keyed hash of the four-tuple and a time counter, with the " +
                    "MSS encoded in it (RFC 4987 §3.6). We keep nothing; if an ACK returns ack = cookie+1, the connection is " +
                    "rebuilt from it.");
            }
            else if (r.After is not (TcpState.Listen or TcpState.Closed))
            {
                var story = Follow(t, r.TimeMicros);
                story.FinalHandshakeAckTold = true;
                story.BytesIn += r.PayloadLength;
                Say(r.TimeMicros, t, "SYN cookie returned",
                    $"{Peer(t)}'s ACK carries ack = {r.Acknowledgment} = cookie+1, and the cookie checks out: we rebuild the " +
                    "connection from it (the MSS, and window scale and SACK if timestamps carried them) and go LISTEN -> " +
                    $"{r.After.ToRfcName()} directly. Three segments as usual, but we held no state between them.");
                if (r.After == TcpState.CloseWait)
                    ClosingSegmentIn(r, story, TcpState.Established);
            }
            return;
        }
        if (Has(f, TcpFlags.Syn) && !Has(f, TcpFlags.Ack) && r.After == TcpState.SynReceived)
        {
            var story = Follow(t, r.TimeMicros);
            story.PeerSyn = r.Options;
            story.HavePeerSyn = true;
            Say(r.TimeMicros, t, "opening, step 1 of 3",
                $"{Peer(t)} asks to open a connection to port {t.LocalPort}: a SYN carrying its initial sequence number " +
                $"x = {r.Sequence} (the trace counts from it, so it shows seq 0). It offers {Offer(r.Options)}. We create " +
                "the connection's control block and move LISTEN -> SYN-RECEIVED (§3.10.7.2); our answer is a SYN+ACK with " +
                "our own ISN y and ack = x+1.");
            return;
        }
        if (Has(f, TcpFlags.Syn) && r.Drop is DropReason.AcceptQueueFull or DropReason.BacklogFull or DropReason.ConnectionLimit
            or DropReason.MemoryLimit)
        {
            Say(r.TimeMicros, t, "opening",
                $"{Peer(t)} asks to open a connection, but we cannot take it now ({DropText(r.Drop)}). The SYN is dropped " +
                "without an answer, so the peer sends it again after its retransmission timeout, when there may be room.");
            return;
        }
        if (Has(f, TcpFlags.Ack) && !Has(f, TcpFlags.Rst) && !Has(f, TcpFlags.Syn))
        {
            Say(r.TimeMicros, t, "no such connection",
                $"{Peer(t)} sends an ACK to port {t.LocalPort}, but no connection exists for it (a segment of a " +
                "connection we have forgotten, or a forged one). In LISTEN an ACK is answered with RST, seq = its ack " +
                "(§3.10.7.2), so that the peer learns the connection is gone.");
        }
    }

    /// <summary>No connection and no listener (§3.10.7.1).</summary>
    private void SegmentToClosedPort(in SegmentTraceRecord r)
    {
        var t = r.Tuple;
        var f = r.Flags;
        if (Has(f, TcpFlags.Rst))
        {
            Say(r.TimeMicros, t, "no such connection",
                $"a RST from {Peer(t)} for a connection we do not have: ignored, since a RST is never answered " +
                "(§3.10.7.1).");
        }
        else if (Has(f, TcpFlags.Syn) && !Has(f, TcpFlags.Ack))
        {
            Say(r.TimeMicros, t, "refused",
                $"{Peer(t)} asks to open a connection to port {t.LocalPort}, where nothing listens. We refuse at once with " +
                $"RST+ACK: seq 0, ack = x+1 = {unchecked(r.Sequence + 1 + (uint)r.PayloadLength)}, which acknowledges its " +
                "SYN so that the peer can believe the RST (§3.10.7.1). Its connect() fails with \"connection refused\".");
        }
        else
        {
            Say(r.TimeMicros, t, "no such connection",
                $"a segment from {Peer(t)} for a connection we do not have (port {t.LocalPort}): we answer RST so that " +
                "the peer learns it does not exist (§3.10.7.1).");
        }
    }

    /// <summary>A segment for a connection in TIME-WAIT, which is a small record by now (§3.10.7.4).</summary>
    private void SegmentInTimeWait(in SegmentTraceRecord r)
    {
        var t = r.Tuple;
        var f = r.Flags;
        if (Has(f, TcpFlags.Rst) && r.After == TcpState.Closed)
        {
            Say(r.TimeMicros, t, "TIME-WAIT",
                $"a RST from {Peer(t)} at the exact next sequence number ends TIME-WAIT early: TIME-WAIT -> CLOSED " +
                "(§3.10.7.4; RFC 1337 describes what this can cost).");
        }
        else if (Has(f, TcpFlags.Fin) && r.Drop == DropReason.None)
        {
            Say(r.TimeMicros, t, "TIME-WAIT",
                $"{Peer(t)} sends its FIN again: our last ACK was lost or is late. This is what TIME-WAIT is for: we are " +
                "still here to acknowledge it once more, and the 2·MSL timer starts over (§3.10.7.4).");
        }
        else if (r.Drop is DropReason.Unacceptable or DropReason.PawsRejected && !Has(f, TcpFlags.Rst))
        {
            Say(r.TimeMicros, t, "TIME-WAIT",
                $"a segment of the finished connection arrives from {Peer(t)} during TIME-WAIT: we answer with an ACK " +
                "and drop it. This is the other reason for TIME-WAIT: had the four-tuple already been reused, a new " +
                "connection might have taken this old segment for its own.");
        }
    }

    // ---- segments out ----

    private void SegmentOut(in SegmentTraceRecord r)
    {
        var t = r.Tuple;
        if (!r.HasConnection)
            return; // RSTs and cookie SYN+ACKs: told with their cause
        if (r.Before == TcpState.TimeWait)
        {
            if (_stories.TryGetValue(t, out var waiting) && waiting.AwaitingFinalAck)
            {
                Say(r.TimeMicros, t, "closing, step 4 of 4",
                    $"we acknowledge {Peer(t)}'s FIN (ack = {r.Acknowledgment}). The connection is done, but we stay in " +
                    $"TIME-WAIT for 2·MSL{MslText(" = {0}")} (§3.6.1, MUST-13), MSL being the maximum segment lifetime, " +
                    $"the longest a segment may survive in the network{MslText(" ({1} here)")}. Why wait: if this last ACK is lost, " +
                    "the peer sends its FIN again, and we must still be here to answer it, or it would get a RST instead of " +
                    "a clean close; and segments of this connection still wandering in the network must expire before a new " +
                    "connection on the same four-tuple could take them for its own (§3.3.2). Why us: the side that closes " +
                    "first is the one that sends the last ACK, and only it cannot know whether that ACK arrived — the other " +
                    "side learns it by receiving it." + Summary(waiting, r.TimeMicros));
                Forget(t);
            }
            return;
        }
        if (r.Before is TcpState.Closed or TcpState.Listen)
            return;

        var story = FollowOrGet(t, r.TimeMicros);
        bool retransmission = (r.Note & (TraceNote.Retransmission | TraceNote.LossProbe)) != 0;
        if (!retransmission)
            story.BytesOut += r.PayloadLength;
        var f = r.Flags;

        if (Has(f, TcpFlags.Syn))
        {
            SynOut(r, story, retransmission);
            return;
        }
        if (story.Active && story.PeerSynAckSeen && !story.FinalHandshakeAckTold && Has(f, TcpFlags.Ack))
        {
            story.FinalHandshakeAckTold = true;
            string data = r.PayloadLength > 0 ? $", and carries our first {r.PayloadLength} bytes of data" : "";
            Say(r.TimeMicros, t, "opening, step 3 of 3",
                $"we acknowledge {Peer(t)}'s SYN: ack = y+1 = {r.Acknowledgment}{data}. When this arrives the peer moves " +
                $"SYN-RECEIVED -> ESTABLISHED too. {WhyThreeActive}");
        }

        // Once the peer's FIN is in, RCV.NXT lies past it: whatever we send from CLOSE-WAIT, CLOSING or LAST-ACK acknowledges it.
        bool acksPeerFin = story.PeerFinSeen && !story.PeerFinAckTold && Has(f, TcpFlags.Ack)
            && r.Before is TcpState.CloseWait or TcpState.Closing or TcpState.LastAck;
        if (Has(f, TcpFlags.Fin))
        {
            FinOut(r, story, retransmission, acksPeerFin);
            return;
        }
        if (!acksPeerFin)
            return;
        story.PeerFinAckTold = true;
        if (r.Before == TcpState.CloseWait)
        {
            Say(r.TimeMicros, t, "closing, step 2 of 4",
                $"we acknowledge {Peer(t)}'s FIN: ack = {r.Acknowledgment} (a FIN occupies one sequence number, like a SYN). " +
                "TCP sends this ACK at once, by itself; we stay in CLOSE-WAIT until our application closes.");
        }
        else if (r.Before == TcpState.Closing)
        {
            Say(r.TimeMicros, t, "simultaneous close",
                $"we acknowledge {Peer(t)}'s FIN (ack = {r.Acknowledgment}) and wait in CLOSING for the ACK of ours.");
        }
    }

    private void SynOut(in SegmentTraceRecord r, Story story, bool retransmission)
    {
        var t = r.Tuple;
        bool synAck = Has(r.Flags, TcpFlags.Ack);
        if (retransmission)
        {
            story.SynSentAt = -1; // Karn's rule: no RTT from a handshake that needed a retransmission
            Say(r.TimeMicros, t, "opening",
                synAck
                    ? "no ACK for our SYN+ACK in time: either it or the peer's ACK was lost. We send the SYN+ACK again, and " +
                      "wait twice as long for the answer (RFC 6298 §5.5)."
                    : $"no answer to our SYN in time: we send it again, and wait twice as long before the next try " +
                      "(RFC 6298 §5.5; §3.8.3 bounds how long we keep trying).");
            return;
        }
        if (story.OurSynTold)
            return;
        story.OurSynTold = true;
        story.OurSyn = r.Options;
        story.HaveOurSyn = true;
        story.SynSentAt = r.TimeMicros;
        if (!synAck)
        {
            story.Active = true;
            Say(r.TimeMicros, t, "opening, step 1 of 3",
                $"our SYN to {Peer(t)}, carrying our initial sequence number x = {r.Sequence} (the trace counts from it: " +
                "seq 0). The ISN comes from a keyed hash of the four-tuple plus a clock (RFC 6528), so that no one off the " +
                $"path can guess it. We offer {Offer(r.Options)}. We wait in SYN-SENT; without an answer the SYN is sent " +
                "again after the retransmission timeout.");
        }
        else if (story.Active)
        {
            Say(r.TimeMicros, t, "simultaneous open",
                $"our SYN+ACK: our ISN again (x = {r.Sequence}), now with ack = y+1 = {r.Acknowledgment} for the peer's SYN.");
        }
        else
        {
            Say(r.TimeMicros, t, "opening, step 2 of 3",
                $"our SYN+ACK to {Peer(t)}. Its SYN half carries our initial sequence number y = {r.Sequence}, from a keyed " +
                "hash of the four-tuple plus a clock (RFC 6528), so that no one off the path can guess it; its ACK half, " +
                $"ack = x+1 = {r.Acknowledgment}, says \"I have your SYN; your data starts at x+1\" (a SYN occupies one " +
                $"sequence number). We offer {Offer(r.Options)}. Now we wait in SYN-RECEIVED for the peer's ACK.");
        }
    }

    private void FinOut(in SegmentTraceRecord r, Story story, bool retransmission, bool acksPeerFin)
    {
        var t = r.Tuple;
        if (retransmission)
        {
            Say(r.TimeMicros, t, "closing",
                "our FIN was not acknowledged in time: we send it again (it occupies a sequence number, so it is " +
                "retransmitted like data).");
            return;
        }
        if (story.OurFinTold)
            return;
        story.OurFinTold = true;
        uint finSeq = unchecked(r.Sequence + (uint)r.PayloadLength);
        string withData = r.PayloadLength > 0 ? $", after our last {r.PayloadLength} bytes" : "";
        if (acksPeerFin)
            story.PeerFinAckTold = true;
        switch (r.Before)
        {
            case TcpState.FinWait1:
                Say(r.TimeMicros, t, "closing, step 1 of 4",
                    $"our FIN (seq = {finSeq}{withData}): we have nothing more to send. Our half of the connection is " +
                    "finished; the peer's stays open, and we keep receiving until its FIN comes.");
                break;
            case TcpState.LastAck when acksPeerFin:
                Say(r.TimeMicros, t, "closing, steps 2 and 3 of 4 in one segment",
                    $"our application closed before we had acknowledged {Peer(t)}'s FIN, so the ACK of its FIN (ack = " +
                    $"{r.Acknowledgment}) and our own FIN (seq = {finSeq}{withData}) travel together: a three-segment " +
                    "close. We wait in LAST-ACK for the ACK of our FIN.");
                break;
            case TcpState.LastAck:
                Say(r.TimeMicros, t, "closing, step 3 of 4",
                    $"our FIN (seq = {finSeq}{withData}). We wait in LAST-ACK for its acknowledgment; without one, the FIN " +
                    "is sent again.");
                break;
            case TcpState.Closing:
                Say(r.TimeMicros, t, "simultaneous close",
                    $"our FIN (seq = {finSeq}{withData}), which also acknowledges the peer's FIN (ack = {r.Acknowledgment}). " +
                    "We wait in CLOSING for the ACK of ours.");
                break;
        }
    }

    // ---- the stories ----

    private Story Follow(in FourTuple tuple, long time)
    {
        Forget(tuple);
        if (_stories.Count >= _maxConnections && _oldestFirst.First is { } oldest)
            Forget(oldest.Value);
        var story = new Story { OpenedAt = time };
        story.Node = _oldestFirst.AddLast(tuple);
        _stories.Add(tuple, story);
        return story;
    }

    private Story FollowOrGet(in FourTuple tuple, long time) =>
        _stories.TryGetValue(tuple, out var story) ? story : Follow(tuple, time);

    private void Forget(in FourTuple tuple)
    {
        if (_stories.Remove(tuple, out var story) && story.Node is not null)
            _oldestFirst.Remove(story.Node);
    }

    // ---- wording ----

    private const string WhyThree =
        "Why three segments: each side picks its own initial sequence number and must hear it acknowledged before it " +
        "can trust the numbers that follow — two SYNs and two ACKs — and our SYN travelled together with our ACK of " +
        "theirs in step 2, so three segments suffice. The exchange also lets us see through an old duplicate SYN: its " +
        "sender would answer our SYN+ACK with RST instead of an ACK (§3.5).";

    private const string WhyThreeActive =
        "Why three segments: each side picks its own initial sequence number and must hear it acknowledged before it " +
        "can trust the numbers that follow — two SYNs and two ACKs — and the peer's SYN travelled together with its ACK " +
        "of ours in step 2, so three segments suffice (§3.5).";

    private const string WhyFour =
        "Why four segments to close when three open: the ACK of a FIN goes out at once, from TCP itself, but the other " +
        "side's FIN can only follow when its application decides to close — which may be much later, with more data " +
        "before it. So the ACK and the second FIN usually travel apart (§3.6, Figure 12).";

    private static string DropText(DropReason reason) => reason switch
    {
        DropReason.AcceptQueueFull => "the accept queue is full: the application is not accepting",
        DropReason.BacklogFull => "the half-open queue is full and SYN cookies are off",
        DropReason.ConnectionLimit => "the stack's connection limit is reached",
        DropReason.MemoryLimit => "the buffer memory limit is reached",
        _ => reason.ToString(),
    };

    private static string Offer(in TcpOptions o)
    {
        var parts = new List<string>(4);
        if (o.Mss is ushort mss) parts.Add($"MSS {mss}");
        if (o.SackPermitted) parts.Add("SACK");
        if (o.HasTimestamps) parts.Add("timestamps");
        if (o.WindowScale is byte ws) parts.Add($"window scale {ws}");
        return parts.Count == 0 ? "no options" : string.Join(", ", parts);
    }

    /// <summary>What both SYNs agreed on: each option is used only if both offered it (RFC 7323, RFC 2018).</summary>
    private static string Agreed(Story s)
    {
        if (!s.HavePeerSyn || !s.HaveOurSyn)
            return "";
        var peer = s.PeerSyn;
        var ours = s.OurSyn;
        var b = new StringBuilder("Agreed: ");
        if (peer.Mss is ushort theirs && ours.Mss is ushort mine)
            b.Append(CultureInfo.InvariantCulture, $"segments of up to {theirs} bytes to the peer and {mine} to us (each side's MSS is the largest segment it accepts); ");
        b.Append(peer.SackPermitted && ours.SackPermitted ? "SACK on; " : "no SACK; ");
        b.Append(peer.HasTimestamps && ours.HasTimestamps ? "timestamps on; " : "no timestamps; ");
        if (peer.WindowScale is byte ps && ours.WindowScale is byte os)
            b.Append(CultureInfo.InvariantCulture, $"window scaling on (the peer's window fields count in units of 2^{ps} bytes, ours in 2^{os}).");
        else
            b.Append("no window scaling (windows of at most 64 KiB).");
        return b.ToString();
    }

    /// <summary>", 10.5 ms after our SYN: the first round-trip time sample" — unless a retransmission blurs it (Karn).</summary>
    private static string Rtt(Story s, long now, string what)
    {
        if (s.SynSentAt < 0)
            return "";
        return $", {Duration(now - s.SynSentAt)} after {what}: the connection's first round-trip time sample";
    }

    private static string Summary(Story? s, long now)
    {
        if (s is null)
            return "";
        return $" In all, the connection carried {s.BytesIn} bytes from the peer and {s.BytesOut} bytes to it, over " +
            $"{Duration(now - s.OpenedAt)}.";
    }

    /// <summary>Formats <paramref name="format"/> with {0} = 2·MSL and {1} = MSL; empty when the MSL is not known.</summary>
    private string MslText(string format)
    {
        if (_mslMicros <= 0)
            return "";
        return string.Format(CultureInfo.InvariantCulture, format, Duration(2 * _mslMicros), Duration(_mslMicros));
    }

    private static string Duration(long micros)
    {
        if (micros >= 1_000_000)
            return (micros / 1e6).ToString("0.###", CultureInfo.InvariantCulture) + " s";
        if (micros >= 1000)
            return (micros / 1e3).ToString("0.###", CultureInfo.InvariantCulture) + " ms";
        return micros.ToString(CultureInfo.InvariantCulture) + " µs";
    }

    private static string Peer(in FourTuple t) => TextTracer.Endpoint(t.RemoteAddress, t.RemotePort);

    private static bool Has(TcpFlags flags, TcpFlags flag) => (flags & flag) != 0;

    private void Clock(long micros)
    {
        if (_origin < 0) _origin = micros;
    }

    /// <summary>One narration: "TIME ## [local &lt;> remote] title: text", wrapped at <see cref="TextWidth"/>.</summary>
    private void Say(long time, in FourTuple tuple, string title, string text)
    {
        var line = _line.Clear();
        line.Append(TextTracer.Time(time, ref _origin)).Append(" ## ");
        string all = $"[{TextTracer.Endpoint(tuple.LocalAddress, tuple.LocalPort)} <> {Peer(tuple)}] {title}: {text}";
        int column = 0;
        foreach (string word in Units(all))
        {
            if (column > 0 && column + 1 + word.Length > TextWidth)
            {
                _writer.WriteLine(line.ToString());
                line.Clear().Append(Continuation);
                column = 0;
            }
            if (column > 0)
            {
                line.Append(' ');
                column++;
            }
            line.Append(word);
            column += word.Length;
        }
        _writer.WriteLine(line.ToString());
    }

    /// <summary>
    /// The words of <paramref name="text"/>, except that "a = b", "A -> B", "RFC n" and "Figure n" stay together, so that
    /// a line never ends in the middle of "ack = x+1", of a state transition or of a reference.
    /// </summary>
    private static List<string> Units(string text)
    {
        var units = new List<string>();
        bool glueNext = false;
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            bool glue = word is "=" or "->";
            if (units.Count > 0 && (glue || glueNext))
                units[^1] += " " + word;
            else
                units.Add(word);
            glueNext = glue || word.EndsWith("RFC", StringComparison.Ordinal) || word.EndsWith("Figure", StringComparison.Ordinal);
        }
        return units;
    }
}
