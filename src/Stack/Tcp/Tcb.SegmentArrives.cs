using TunStack.Diagnostics;
using TunStack.Tcp.Congestion;
using TunStack.Wire;

namespace TunStack.Tcp;

// RFC 9293 §3.10.7 "SEGMENT ARRIVES", for a connection that has a TCB. The checks run in the RFC's order:
// sequence number, RST, SYN, ACK, (URG), segment text, FIN. LISTEN and CLOSED are handled in TcpLayer.
internal sealed partial class Tcb
{
    /// <summary>What the latest segment turned out to be, for the trace (out of order, duplicate, ...).</summary>
    internal TraceNote ArrivalNote;

    /// <summary>
    /// A SYN arrived at a listener (RFC 9293 §3.10.7.2, third check): set up the TCB in SYN-RECEIVED and
    /// queue the SYN-ACK.
    /// </summary>
    internal void OpenFromSyn(in TcpSegment seg, in TcpOptions options, SeqNumber iss, uint timestampOffset)
    {
        Irs = new SeqNumber(seg.SequenceNumber);
        RcvNxt = Irs + 1;
        _rcvAdvertisedEdge = RcvNxt; // nothing offered yet; the SYN-ACK's window moves it (never compare with 0)
        Iss = iss;
        SndUna = iss;
        SndNxt = iss;
        _sndBufSeq = iss + 1;
        _timestampOffset = timestampOffset;
        NegotiateOptions(options);

        // The window in a SYN is never scaled (RFC 7323 §2.2).
        SndWnd = seg.Window;
        _maxSndWnd = SndWnd;
        _sndWl1 = Irs;
        _sndWl2 = iss;
        InitCongestionControl();
        SetState(TcpState.SynReceived, "SYN");
        _synToSend = true;
        RequestOutput();
    }

    /// <summary>
    /// An ACK returned a valid SYN cookie (RFC 4987 §3.6): rebuild the connection as it would stand after our SYN-ACK —
    /// in SYN-RECEIVED with the options the cookie carried — and let the ACK itself establish it.
    /// </summary>
    internal void OpenFromCookie(in TcpSegment ack, in TcpOptions options, SeqNumber iss, SeqNumber peerIsn, ushort mss,
        byte? peerWindowScale, bool sack, bool timestamps, ushort synAckWindow, uint timestampOffset)
    {
        var o = _stack.Options;
        Irs = peerIsn;
        RcvNxt = peerIsn + 1;
        Iss = iss;
        SndUna = iss;
        SndNxt = iss + 1;
        _sndBufSeq = iss + 1;
        _timestampOffset = timestampOffset;
        PeerMss = mss;
        SendMss = Math.Max(MinimumMss, Math.Min((int)mss, LocalMss));
        if (peerWindowScale is byte shift)
        {
            _windowScaling = true;
            _sndWndShift = Math.Min(shift, MaxWindowShift);
            _rcvWndShift = o.WindowScale ?? ShiftFor(o.ReceiveBufferSize);
        }
        SackEnabled = sack && o.Sack;
        if (timestamps)
        {
            TimestampsEnabled = true;
            _tsRecent = options.TimestampValue;
            _tsRecentTime = Now;
        }
        _rcvAdvertisedEdge = RcvNxt + synAckWindow;
        _lastAckSent = RcvNxt;
        SndWnd = (uint)ack.Window << _sndWndShift;
        _maxSndWnd = SndWnd;
        _sndWl1 = RcvNxt;
        _sndWl2 = iss + 1;
        InitCongestionControl();
        Listener!.HalfOpenCount++;
        SetState(TcpState.SynReceived, "SYN cookie");
    }

    /// <summary>Counted in the listener's accept queue until the application accepts the connection.</summary>
    private bool _inAcceptQueue;

    internal void LeaveAcceptQueue()
    {
        if (!_inAcceptQueue) return;
        _inAcceptQueue = false;
        Listener!.AcceptQueueLength--;
    }

    /// <summary>Takes what the peer's SYN offered: MSS (§3.7.1), window scale (RFC 7323 §2), SACK (RFC 2018), timestamps (RFC 7323 §3).</summary>
    private void NegotiateOptions(in TcpOptions peer)
    {
        var o = _stack.Options;
        // RFC 9293 §3.7.1 (MUST-15): without an MSS option assume 536 for IPv4 and 1220 for IPv6. A nonsensical MSS
        // (0, 1, ...) is raised to 88 bytes as Linux does (TCP_MIN_MSS), so every segment still carries data.
        PeerMss = peer.Mss ?? DefaultPeerMss;
        SendMss = Math.Max(MinimumMss, Math.Min((int)PeerMss, LocalMss));

        // RFC 7323 §2.2-2.3: scaling is used only if both SYNs carry the option; a shift above 14 is taken as 14.
        if (peer.WindowScale is byte peerShift)
        {
            _windowScaling = true;
            _sndWndShift = Math.Min(peerShift, MaxWindowShift);
            _rcvWndShift = o.WindowScale ?? ShiftFor(o.ReceiveBufferSize);
        }
        SackEnabled = peer.SackPermitted && o.Sack;
        if (peer.HasTimestamps && o.Timestamps)
        {
            TimestampsEnabled = true;
            _tsRecent = peer.TimestampValue; // RFC 7323 §4.3: TS.Recent from the SYN
            _tsRecentTime = Now;
        }
    }

    /// <summary>MUST-15: the MSS to assume when the peer sends no MSS option.</summary>
    private ushort DefaultPeerMss => Tuple.RemoteAddress.IsV4 ? (ushort)536 : (ushort)1220;

    /// <summary>The smallest segment size we send with, whatever the peer's MSS option says (Linux's TCP_MIN_MSS).</summary>
    internal const int MinimumMss = 88;
    private const byte MaxWindowShift = 14;

    /// <summary>The smallest window scale shift that lets the field express the whole receive buffer (RFC 7323 §2.3).</summary>
    internal static byte ShiftFor(int receiveBuffer)
    {
        byte shift = 0;
        while (shift < MaxWindowShift && (receiveBuffer >> shift) > ushort.MaxValue) shift++;
        return shift;
    }

    private void InitCongestionControl()
    {
        int mss = MaxPayload;
        long initialWindow = Math.Min(10L * mss, Math.Max(2L * mss, 14600)); // RFC 6928 §2
        _cc = CongestionControl.Create(_stack.Options.CongestionControl, mss, initialWindow);
        _rackFack = Iss + 1; // RFC 8985 §6.2 step 3 compares against the highest delivered sequence: start at the first
        _initialWindow = initialWindow;
        _rcvMss = Math.Min((int)LocalMss, 536);
    }

    /// <summary>Processes one segment for this connection; returns why it was dropped, or None.</summary>
    internal DropReason SegmentArrives(in TcpSegment seg, in TcpOptions options)
    {
        var seq = new SeqNumber(seg.SequenceNumber);
        var flags = seg.Flags;
        int segLen = seg.Payload.Length + ((flags & TcpFlags.Syn) != 0 ? 1 : 0) + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);
        ArrivalNote = TraceNote.None;
        if (State == TcpState.SynSent)
            return SynSentSegmentArrives(seg, options);

        // A retransmitted SYN while we are in SYN-RECEIVED: our SYN-ACK was probably lost; send it again.
        if (State == TcpState.SynReceived && (flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn && seq == Irs)
        {
            _synToSend = true;
            RequestOutput();
            return DropReason.None;
        }

        // Simultaneous open (RFC 9293 Figure 8, step 6): in SYN-RECEIVED after our own SYN, the peer's SYN-ACK repeats
        // its SYN (old: only the new parts are processed) and acknowledges ours. Take it as the ACK it carries.
        if (State == TcpState.SynReceived && IsActiveOpen && (flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == (TcpFlags.Syn | TcpFlags.Ack)
            && seq == Irs && new SeqNumber(seg.AcknowledgmentNumber) == SndNxt)
        {
            PeerHeardFrom();
            return AckArrives(seg, seq + 1, options);
        }

        // RFC 7323 §5.3 R1 (PAWS): a segment whose timestamp is older than TS.Recent is an old duplicate.
        if (TimestampsEnabled && options.HasTimestamps && (flags & TcpFlags.Rst) == 0 && IsOldTimestamp(options.TimestampValue))
        {
            AckUnacceptable(segLen > 0);
            _stack.Counters.PawsRejected++;
            return DropReason.PawsRejected;
        }

        // First: is the sequence number acceptable? (§3.10.7.4, the four-case table)
        if (!IsAcceptable(seq, segLen))
        {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply (unless the
            // RST bit is set ...)". (TIME-WAIT is a record of its own: TcpLayer.TimeWait.cs.)
            if ((flags & TcpFlags.Rst) == 0)
            {
                if (SackEnabled && seg.Payload.Length > 0 && seq < RcvNxt)
                    OnDuplicateData(seq, seq + seg.Payload.Length);
                AckUnacceptable(segLen > 0);
            }
            return DropReason.Unacceptable;
        }

        PeerHeardFrom();

        // RFC 7323 §4.3 (3): remember the timestamp to echo.
        if (TimestampsEnabled && options.HasTimestamps)
            RememberTimestamp(seq, options.TimestampValue);

        // Second: the RST bit (§3.10.7.4, with RFC 5961 §3.2 blind-reset protection).
        if ((flags & TcpFlags.Rst) != 0)
            return ResetArrives(seq);

        // Fourth: the SYN bit (§3.10.7.4; RFC 5961 §4 challenge ACK).
        if ((flags & TcpFlags.Syn) != 0)
        {
            if (State == TcpState.SynReceived && !IsActiveOpen)
            {
                // Passive open: return to LISTEN, i.e. forget this embryonic connection.
                _stack.Tcp.Remove(this, CloseReason.ResetByPeer);
                return DropReason.None;
            }
            SendChallengeAck();
            return DropReason.Unacceptable;
        }

        // Fifth: the ACK field. "If the ACK bit is off, drop the segment and return."
        if ((flags & TcpFlags.Ack) == 0)
            return DropReason.Unacceptable;
        var ackResult = AckArrives(seg, seq, options);
        if (ackResult != DropReason.None || State == TcpState.Closed)
            return ackResult;

        // Sixth: URG is not supported (see docs/CONFORMANCE.md); the urgent pointer is ignored.

        // Seventh: the segment text (Tcb.Receive.cs).
        bool finInOrder = TextArrives(seg, seq);

        // Eighth: the FIN bit, processed only when everything before it has been received.
        if (finInOrder)
            FinArrives();

        return DropReason.None;
    }

    /// <summary>
    /// After a segment was processed and traced: send the ACK it asked for now, one per segment even inside a batch
    /// (RFC 5681 §4.2 for out-of-order and gap-filling segments, RFC 9293 §3.10.7.4 for unacceptable ones).
    /// </summary>
    internal void AfterSegment()
    {
        if (_ackNow && State is not (TcpState.Closed or TcpState.Listen or TcpState.SynReceived or TcpState.SynSent))
            SendAck();
    }

    /// <summary>RFC 9293 §3.10.7.4 first check: the segment overlaps the receive window.</summary>
    private bool IsAcceptable(SeqNumber seq, int segLen)
    {
        int window = Math.Max(0, _rcvAdvertisedEdge - RcvNxt);
        if (window == 0)
            // Zero window: only a segment exactly at RCV.NXT, so its ACK, URG and RST still count.
            return seq == RcvNxt;
        var windowEnd = RcvNxt + window;
        if (segLen == 0)
            return seq.InRange(RcvNxt, windowEnd);
        return seq.InRange(RcvNxt, windowEnd) || (seq + (segLen - 1)).InRange(RcvNxt, windowEnd);
    }

    private DropReason ResetArrives(SeqNumber seq)
    {
        // RFC 5961 §3.2: only an exact match resets; an in-window RST gets a challenge ACK.
        if (seq != RcvNxt)
        {
            SendChallengeAck();
            return DropReason.Unacceptable;
        }
        _stack.Counters.ResetsReceived++;
        // In SYN-RECEIVED after a passive open the connection returns to LISTEN; after an active open (a simultaneous
        // open) the peer refused it (MUST-11); everywhere else it is aborted. Either way this TCB is deleted.
        _stack.Tcp.Remove(this, State == TcpState.SynReceived && IsActiveOpen ? CloseReason.Refused : CloseReason.ResetByPeer);
        return DropReason.None;
    }

    private long _challengeAckWindowStart = long.MinValue / 4; // long ago, without overflowing Now - it
    private int _challengeAcksInWindow;
    private long _lastOutOfWindowAck = long.MinValue / 4; // long ago, without overflowing Now - it

    /// <summary>
    /// A challenge ACK (RFC 5961 §3.2, §4.2, §5.2), at most <see cref="NetStackOptions.ChallengeAckLimit"/> per second
    /// for this connection (§7). The limit is per connection on purpose: a stack-wide counter lets an off-path attacker
    /// learn, by watching it run out, that a connection exists and where its window is (CVE-2016-5696).
    /// </summary>
    private void SendChallengeAck()
    {
        if (Now - _challengeAckWindowStart >= 1_000_000)
        {
            _challengeAckWindowStart = Now;
            _challengeAcksInWindow = 0;
        }
        if (_challengeAcksInWindow >= _stack.Options.ChallengeAckLimit)
        {
            _stack.Counters.ChallengeAcksSuppressed++;
            return;
        }
        _challengeAcksInWindow++;
        _stack.Counters.ChallengeAcksSent++;
        _ackNow = true;
    }

    /// <summary>
    /// "An acknowledgment should be sent in reply" to an unacceptable segment (§3.10.7.4). A segment with text or a FIN
    /// is always answered (the peer may be retransmitting); a bare ACK outside the window at most every 500 ms, as in
    /// Linux, so that two stacks with confused windows cannot ping-pong ACKs forever.
    /// </summary>
    private void AckUnacceptable(bool occupiesSequenceSpace)
    {
        if (!occupiesSequenceSpace && Now - _lastOutOfWindowAck < 500_000)
        {
            _stack.Counters.OutOfWindowAcksSuppressed++;
            return;
        }
        if (!occupiesSequenceSpace) _lastOutOfWindowAck = Now;
        _ackNow = true;
    }

    /// <summary>RFC 9293 §3.10.7.4 eighth check: the FIN bit.</summary>
    private void FinArrives()
    {
        if (!FinReceived)
        {
            RcvNxt += 1;
            FinReceived = true;
            Raise(ConnectionEvents.ReadClosed);
        }
        _ackNow = true;
        switch (State)
        {
            case TcpState.SynReceived:
            case TcpState.Established:
                SetState(TcpState.CloseWait, "FIN");
                break;
            case TcpState.FinWait1:
                if (FinAcked) EnterTimeWait();
                else SetState(TcpState.Closing, "FIN");
                break;
            case TcpState.FinWait2:
                EnterTimeWait();
                break;
        }
    }
}
