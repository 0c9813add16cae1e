using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

// Active OPEN (RFC 9293 §3.10.1) and the SYN-SENT state (§3.10.7.3): our SYN, the peer's SYN-ACK (or its SYN, for a
// simultaneous open), or its refusal.
internal sealed partial class Tcb
{
    /// <summary>The connection began with our SYN (active OPEN); remembered through SYN-RECEIVED (MUST-11).</summary>
    public bool IsActiveOpen { get; private set; }

    /// <summary>OPEN, active: choose the ISS, send SYN with our options, enter SYN-SENT.</summary>
    internal void OpenActive(SeqNumber iss, uint timestampOffset)
    {
        var o = _stack.Options;
        IsActiveOpen = true;
        Iss = iss;
        SndUna = iss;
        SndNxt = iss;
        _sndBufSeq = iss + 1;
        _timestampOffset = timestampOffset;
        _rcvWndShift = o.WindowScale ?? ShiftFor(o.ReceiveBufferSize);
        SendMss = LocalMss;
        if (o.ConnectTimeoutMicros != long.MaxValue)
        {
            _connectDeadline = Now + o.ConnectTimeoutMicros;
            _stack.Tcp.ScheduleTimer(this, _connectDeadline);
        }
        SetState(TcpState.SynSent, "connect()");
        _synToSend = true;
        RequestOutput();
    }

    /// <summary>Our SYN: MSS, window scale, SACK-permitted and timestamps, as configured (RFC 9293 §3.10.1).</summary>
    private void SendSyn()
    {
        var o = _stack.Options;
        var options = new TcpOptions { Mss = LocalMss, WindowScale = _rcvWndShift, SackPermitted = o.Sack };
        if (o.Timestamps)
        {
            options.HasTimestamps = true;
            options.TimestampValue = TimestampNow;
        }
        bool retransmission = _synTransmitTime >= 0;
        ushort window = (ushort)Math.Min(_receiveBuffer.Free, ushort.MaxValue); // never scaled in a SYN
        _stack.Tcp.Sender.Send(this, Tuple, Iss, default, TcpFlags.Syn, window, options, default, default,
            retransmission ? TraceNote.Retransmission : TraceNote.None);
        if (retransmission)
        {
            _synRetransmitted = true;
            _stack.Counters.Retransmissions++;
            Retransmissions++;
        }
        else
        {
            _synTransmitTime = Now;
        }
        _synWindow = window;
        SndNxt = Iss + 1;
        _synToSend = false;
        if (_rtoDeadline == Never) StartRetransmitTimer();
    }

    private ushort _synWindow;

    /// <summary>RFC 9293 §3.10.7.3: a segment arrives in SYN-SENT.</summary>
    private DropReason SynSentSegmentArrives(in TcpSegment seg, in TcpOptions options)
    {
        var flags = seg.Flags;
        var seq = new SeqNumber(seg.SequenceNumber);
        var ack = new SeqNumber(seg.AcknowledgmentNumber);
        bool hasAck = (flags & TcpFlags.Ack) != 0;

        // First: the ACK bit. An ACK of anything but our SYN is bad: <SEQ=SEG.ACK><CTL=RST> (unless it is a RST).
        if (hasAck && (ack <= Iss || ack > SndNxt))
        {
            if ((flags & TcpFlags.Rst) == 0)
                _stack.Tcp.SendReset(Tuple, ack, default, TcpFlags.Rst);
            return DropReason.Unacceptable;
        }

        // Second: the RST bit. With an acceptable ACK the peer refused us; without one it is dropped (RFC 5961 §3.2).
        if ((flags & TcpFlags.Rst) != 0)
        {
            if (!hasAck)
                return DropReason.Unacceptable;
            _stack.Counters.ResetsReceived++;
            _stack.Tcp.Remove(this, CloseReason.Refused, "connection refused");
            return DropReason.None;
        }

        // Fourth: the SYN bit. Fifth: neither SYN nor RST — drop.
        if ((flags & TcpFlags.Syn) == 0)
            return DropReason.Unacceptable;

        Irs = seq;
        RcvNxt = seq + 1;
        _rcvAdvertisedEdge = RcvNxt + _synWindow;
        NegotiateFromSynAck(options);
        InitCongestionControl();
        SndWnd = seg.Window; // the window of a SYN is never scaled (RFC 7323 §2.2)
        _maxSndWnd = SndWnd;
        _sndWl1 = seq;
        _connectDeadline = Never;

        if (hasAck)
        {
            // Our SYN is acknowledged: ESTABLISHED, and <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            _sndWl2 = ack;
            AcknowledgeCumulatively(ack, options);
            SetState(TcpState.Established, "SYN-ACK");
            _stack.Counters.ConnectionsEstablished++;
            PeerHeardFrom();
            ArmKeepAlive();
            FallBackToThreeSecondRto();
            StopLossTimers();
            _ackNow = true;
            Raise(ConnectionEvents.Established);
            // "If there are other controls or text in the segment, continue processing at the sixth step."
            if (TextArrives(seg, seq + 1))
                FinArrives();
            return DropReason.None;
        }

        // A SYN without ACK: both sides opened at once (simultaneous open, §3.10.7.3 and Figure 8). Answer with
        // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and wait in SYN-RECEIVED, remembering the active open (MUST-11).
        _sndWl2 = Iss;
        _synTransmitTime = -1;
        _synRetransmitted = false;
        SetState(TcpState.SynReceived, "SYN (simultaneous open)");
        _synToSend = true;
        RequestOutput();
        return DropReason.None;
    }

    /// <summary>The options agreed: each used only if both SYNs carried it (RFC 7323 §2.2 and §3.2, RFC 2018 §2).</summary>
    private void NegotiateFromSynAck(in TcpOptions peer)
    {
        var o = _stack.Options;
        PeerMss = peer.Mss ?? DefaultPeerMss; // MUST-15
        SendMss = Math.Max(MinimumMss, Math.Min((int)PeerMss, LocalMss));
        if (peer.WindowScale is byte shift)
        {
            _windowScaling = true;
            _sndWndShift = Math.Min(shift, MaxWindowShift);
        }
        else
        {
            _rcvWndShift = 0;
        }
        SackEnabled = peer.SackPermitted && o.Sack;
        if (peer.HasTimestamps && o.Timestamps)
        {
            TimestampsEnabled = true;
            _tsRecent = peer.TimestampValue;
            _tsRecentTime = Now;
        }
    }

    /// <summary>
    /// RFC 6298 §5.7: if the SYN (or SYN-ACK) had to be retransmitted and no RTT sample exists, start the data phase
    /// with an RTO of 3 seconds.
    /// </summary>
    private void FallBackToThreeSecondRto()
    {
        if (_synRetransmitted && !_rto.HasSample)
            _rto.FallBack(3_000_000);
    }
}
