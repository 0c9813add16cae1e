using TunStack.Wire;

namespace TunStack.Tcp;

// RFC 9293 §3.10.7 "SEGMENT ARRIVES", for a connection that has a TCB. The checks run in the RFC's order:
// sequence number, RST, SYN, ACK, (URG), segment text, FIN. LISTEN and CLOSED are handled in TcpLayer.
public sealed partial class Tcb
{
    /// <summary>
    /// A SYN arrived at a listener (RFC 9293 §3.10.7.2, third check): set up the TCB in SYN-RECEIVED and
    /// queue the SYN-ACK.
    /// </summary>
    internal void OpenFromSyn(in TcpSegment seg, in TcpOptions options, SeqNumber iss)
    {
        Irs = new SeqNumber(seg.SequenceNumber);
        RcvNxt = Irs + 1;
        Iss = iss;
        SndUna = iss;
        SndNxt = iss;
        SndMax = iss;
        _sndBufSeq = iss + 1;

        // RFC 9293 §3.7.1 (MUST-15): without an MSS option assume 536 for IPv4 and 1220 for IPv6.
        PeerMss = options.Mss ?? (Tuple.RemoteAddress.IsV4 ? (ushort)536 : (ushort)1220);
        SendMss = Math.Max(64, Math.Min((int)PeerMss, LocalMss));

        // RFC 7323 §2.2-2.3: scaling is used only if both SYNs carry the option; the shift is capped at 14.
        if (options.WindowScale is byte peerShift)
        {
            _peerOfferedWindowScale = true;
            _sndWndShift = Math.Min(peerShift, (byte)14);
            _rcvWndShift = Math.Min(_stack.Options.WindowScale, (byte)14);
        }

        // The window in a SYN is never scaled (RFC 7323 §2.2).
        SndWnd = seg.Window;
        _maxSndWnd = SndWnd;
        _sndWl1 = Irs;
        _sndWl2 = iss;
        InitCongestionControl();
        SetState(TcpState.SynReceived, "SYN");
        RequestOutput();
    }

    /// <summary>Processes one segment for this connection; returns why it was dropped, or None.</summary>
    internal DropReason SegmentArrives(in TcpSegment seg, in TcpOptions options)
    {
        var seq = new SeqNumber(seg.SequenceNumber);
        var flags = seg.Flags;
        int segLen = seg.Payload.Length + ((flags & TcpFlags.Syn) != 0 ? 1 : 0) + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);

        // A retransmitted SYN while we are in SYN-RECEIVED: our SYN-ACK was probably lost; send it again.
        if (State == TcpState.SynReceived && (flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn && seq == Irs)
        {
            SndNxt = Iss;
            RequestOutput();
            return DropReason.None;
        }

        // First: is the sequence number acceptable? (§3.10.7.4, the four-case table)
        if (!IsAcceptable(seq, segLen))
        {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in reply (unless the
            // RST bit is set ...)" — this also re-ACKs a retransmitted FIN in TIME-WAIT.
            if ((flags & TcpFlags.Rst) == 0)
            {
                // A retransmitted FIN in TIME-WAIT: acknowledge it and restart the 2·MSL timeout.
                if (State == TcpState.TimeWait && (flags & TcpFlags.Fin) != 0)
                    EnterTimeWait();
                _ackNow = true;
                RequestOutput();
            }
            return DropReason.Unacceptable;
        }

        // Second: the RST bit (§3.10.7.4, with RFC 5961 §3.2 blind-reset protection).
        if ((flags & TcpFlags.Rst) != 0)
            return ResetArrives(seq);

        // Fourth: the SYN bit (§3.10.7.4; RFC 5961 §4 challenge ACK).
        if ((flags & TcpFlags.Syn) != 0)
        {
            if (State == TcpState.SynReceived)
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
        var ackResult = AckArrives(seg, seq);
        if (ackResult != DropReason.None || State == TcpState.Closed)
            return ackResult;

        // Sixth: URG is not supported (see docs/CONFORMANCE.md); the urgent pointer is ignored.

        // Seventh: the segment text.
        bool reachedEnd = TextArrives(seg, seq);

        // Eighth: the FIN bit, processed only when everything before it has been received.
        if ((flags & TcpFlags.Fin) != 0 && reachedEnd)
            FinArrives();

        return DropReason.None;
    }

    /// <summary>RFC 9293 §3.10.7.4 first check: the segment overlaps the receive window.</summary>
    private bool IsAcceptable(SeqNumber seq, int segLen)
    {
        int window = Math.Max(ReceiveWindow, _rcvAdvertisedEdge - RcvNxt);
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
        // In SYN-RECEIVED after a passive open the connection returns to LISTEN; everywhere else it is aborted.
        // Either way this TCB is deleted and the application (if any) learns "connection reset".
        _stack.Tcp.Remove(this, CloseReason.ResetByPeer);
        return DropReason.None;
    }

    private void SendChallengeAck()
    {
        _ackNow = true;
        RequestOutput();
    }

    /// <summary>RFC 9293 §3.10.7.4 fifth check: the ACK field. May change state or delete the TCB.</summary>
    private DropReason AckArrives(in TcpSegment seg, SeqNumber seq)
    {
        var ack = new SeqNumber(seg.AcknowledgmentNumber);

        if (State == TcpState.SynReceived)
        {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... otherwise form a reset."
            if (!(SndUna < ack && ack <= SndMax))
            {
                _stack.Tcp.SendReset(Tuple, ack, default, TcpFlags.Rst);
                return DropReason.Unacceptable;
            }
            SetState(TcpState.Established, "ACK");
            _stack.Counters.ConnectionsEstablished++;
            if (Listener is not null) Listener.HalfOpenCount--;
            // Take the window from this segment (the WL1/WL2 test below would also accept it).
            SndWnd = (uint)seg.Window << _sndWndShift;
            _sndWl1 = seq;
            _sndWl2 = ack;
            Raise(ConnectionEvents.Established);
        }

        if (ack > SndMax)
        {
            // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send an ACK, drop the segment."
            _ackNow = true;
            RequestOutput();
            return DropReason.Unacceptable;
        }

        var previousUna = SndUna;
        if (ack > SndUna)
            OnNewDataAcknowledged(ack);
        else if (ack == SndUna && seg.Payload.Length == 0 && (seg.Flags & TcpFlags.Fin) == 0
                 && ((uint)seg.Window << _sndWndShift) == SndWnd && SndMax > SndUna)
            OnDuplicateAck();

        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated" when the segment is newer
        // than the one that last updated it (SND.WL1/SND.WL2 rule).
        if (ack >= previousUna && (_sndWl1 < seq || (_sndWl1 == seq && _sndWl2 <= ack)))
        {
            uint window = (uint)seg.Window << _sndWndShift;
            if (window > SndWnd) RequestOutput();
            SndWnd = window;
            _maxSndWnd = Math.Max(_maxSndWnd, window);
            _sndWl1 = seq;
            _sndWl2 = ack;
        }
        if (SndWnd == 0) _retransmitCount = 0; // persist probes are answered: keep probing (RFC 9293 §3.8.6.1)

        switch (State)
        {
            case TcpState.FinWait1 when FinAcked:
                SetState(TcpState.FinWait2, "ACK of FIN");
                break;
            case TcpState.Closing when FinAcked:
                EnterTimeWait();
                break;
            case TcpState.LastAck when FinAcked:
                _stack.Tcp.Remove(this, CloseReason.Normal);
                break;
        }
        return DropReason.None;
    }

    /// <summary>
    /// RFC 9293 §3.10.7.4 seventh check. Accepts in-order bytes into the receive buffer, trimmed to the window.
    /// Returns true when RCV.NXT now stands at the segment's end, where a FIN would sit (nothing was cut off).
    /// </summary>
    private bool TextArrives(in TcpSegment seg, SeqNumber seq)
    {
        var payload = seg.Payload;
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2))
        {
            // After the peer's FIN no new text can be legal; nothing is kept.
            return seq + payload.Length == RcvNxt;
        }
        if (seq > RcvNxt)
        {
            // Out of order: kept for later in a future reassembly queue; for now ask for the gap again.
            _ackNow = true;
            RequestOutput();
            return false;
        }
        // Skip bytes we already have (the segment starts before RCV.NXT).
        int skip = RcvNxt - seq;
        if (skip > payload.Length)
            return false;
        payload = payload[skip..];
        int take = Math.Min(payload.Length, ReceiveWindow);
        if (take > 0)
        {
            _receiveBuffer.Write(payload[..take]);
            RcvNxt += take;
            Raise(ConnectionEvents.Readable);
        }
        if (payload.Length > 0)
        {
            _ackNow = true; // acknowledge data (delayed ACKs come later: see docs/CONFORMANCE.md)
            RequestOutput();
        }
        return take == payload.Length;
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
        RequestOutput();
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
            case TcpState.TimeWait:
                EnterTimeWait(); // restart the 2·MSL timeout
                break;
        }
    }
}
