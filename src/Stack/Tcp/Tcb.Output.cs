using TunStack.Diagnostics;
using TunStack.Tcp.Send;
using TunStack.Wire;

namespace TunStack.Tcp;

// Sending: the SYN-ACK; segments deemed lost (first); new data within the peer's window and the congestion window,
// with Nagle's algorithm and sender silly-window avoidance; the FIN; pure ACKs; window and loss probes. Called by the
// stack after input, application calls and timers (never re-entrantly).
internal sealed partial class Tcb
{
    private bool _synToSend;
    private long _synTransmitTime = -1;
    private bool _synRetransmitted;
    /// <summary>When a data segment last went out (for restart after idle, RFC 5681 §4.1); -1 before the first.</summary>
    private long _lastSendTime = -1;

    internal void Output()
    {
        _outputPending = false;
        switch (State)
        {
            case TcpState.Closed:
            case TcpState.Listen:
                return;
            case TcpState.SynReceived when _synToSend:
                SendSynAck();
                return;
            case TcpState.SynSent:
                if (_synToSend) SendSyn();
                return;
        }
        if (State != TcpState.TimeWait)
            SendData();
        if (_ackNow)
            SendAck();
    }

    /// <summary>The SYN-ACK of a passive open (RFC 9293 §3.10.7.2) with the options the peer's SYN offered.</summary>
    private void SendSynAck()
    {
        var options = new TcpOptions { Mss = LocalMss };
        if (_windowScaling) options.WindowScale = _rcvWndShift;
        if (SackEnabled) options.SackPermitted = true;
        if (TimestampsEnabled)
        {
            options.HasTimestamps = true;
            options.TimestampValue = TimestampNow;
            options.TimestampEcho = _tsRecent;
        }
        bool retransmission = _synTransmitTime >= 0;
        ushort window = (ushort)Math.Min(_receiveBuffer.Free, ushort.MaxValue); // never scaled in a SYN (RFC 7323 §2.2)
        var edge = RcvNxt + window;
        if (edge > _rcvAdvertisedEdge) _rcvAdvertisedEdge = edge;
        _stack.Tcp.Sender.Send(this, Tuple, Iss, RcvNxt, TcpFlags.Syn | TcpFlags.Ack, window, options, default, default,
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
        SndNxt = Iss + 1;
        _synToSend = false;
        AckSent();
        if (_rtoDeadline == Never) StartRetransmitTimer();
    }

    /// <summary>Retransmissions first, then new data and the FIN, as the windows allow; then the persist timer if stuck.</summary>
    private void SendData()
    {
        if (_lostBytes > _retransmittedLostBytes)
            RetransmitLost();
        SendNewData();
        if (_sent.IsEmpty && HasUnsent && SndWnd <= (uint)(SndNxt - SndUna) && _persistDeadline == Never)
            StartPersistTimer();
    }

    private bool HasUnsent => _sendBuffer.Count - (SndNxt - _sndBufSeq) > 0 || (_finQueued && !FinSent);

    /// <summary>RFC 6675 §5 NextSeg rule 1 (and after a timeout, RFC 5681 §3.1): resend what is deemed lost, oldest first.</summary>
    private void RetransmitLost()
    {
        var cc = _cc!;
        var windowEnd = SndUna + (int)Math.Min(SndWnd, int.MaxValue);
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (!s.Is(SentFlags.Lost) || s.Is(SentFlags.RetransmittedSinceLost))
                continue;
            if (cc.Cwnd - Pipe < Math.Min(s.Length, MaxPayload))
            {
                _cwndLimited = true;
                return;
            }
            if (s.Start >= windowEnd && s.Start != SndUna)
                return; // the peer shrank its window below this segment
            RetransmitSegment(ref s, TraceNote.Retransmission);
        }
    }

    /// <summary>
    /// Sends as much new data as min(peer window, congestion window) allows, then the FIN once the data is out.
    /// </summary>
    private void SendNewData()
    {
        var cc = _cc!;
        if (_sent.IsEmpty && _lastSendTime >= 0 && Now - _lastSendTime > _rto.Current && HasUnsent)
        {
            // RFC 5681 §4.1: after an idle period longer than the RTO, restart from at most the initial window.
            cc.OnIdle(Now - _lastSendTime);
            cc.Cwnd = Math.Min(cc.Cwnd, _initialWindow);
        }
        int burst = SuperPacketPayload;
        while (true)
        {
            int unsent = _sendBuffer.Count - (SndNxt - _sndBufSeq);
            bool finPending = _finQueued && !FinSent;
            if (unsent <= 0 && !finPending)
                return;
            long peerRoom = (long)SndWnd - (SndNxt - SndUna);
            long cwndRoom = cc.Cwnd + LimitedTransmitAllowance - Pipe;
            long usable = Math.Min(peerRoom, cwndRoom);
            int length = (int)Math.Max(0, Math.Min(Math.Min(unsent, MaxPayload), usable));
            if (burst > MaxPayload && length == MaxPayload)
            {
                // With segmentation offload, send what the windows allow in one super-packet: whole segments, and the
                // tail of the data with them if it fits (the device cuts it into segments of MaxPayload).
                long more = Math.Min(Math.Min(unsent, burst), usable);
                length = more == unsent ? (int)more : (int)(more / MaxPayload * MaxPayload);
            }

            if (length < Math.Min(unsent, MaxPayload))
            {
                // Less than a full segment fits although more is waiting.
                if (cwndRoom < peerRoom)
                {
                    // The congestion window is the limit: wait for ACKs rather than send a runt.
                    _cwndLimited = true;
                    if (length < MaxPayload) return;
                }
                else if (length == 0 || (usable < _maxSndWnd / 2 && SndNxt != SndUna))
                {
                    // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a partial segment only if it is at least half the
                    // largest window the peer offered, or nothing is in flight (no ACK would come to open it further).
                    return;
                }
            }
            // Nagle (RFC 9293 §3.7.4): while data is unacknowledged, a short segment waits until a full one can go
            // or everything is acknowledged — unless this connection asked for no delay, or the FIN follows it.
            if (length > 0 && length == unsent && length < MaxPayload && !NoDelay && !finPending && SndNxt != SndUna)
                return;

            // The FIN rides on the segment that ends the data, and needs a sequence number inside the window.
            bool fin = finPending && length == unsent && peerRoom > length;
            if (length == 0 && !fin)
                return;

            var flags = TcpFlags.Ack;
            if (length > 0 && length == unsent) flags |= TcpFlags.Psh;
            if (fin) flags |= TcpFlags.Fin;
            if (cc.Cwnd - Pipe < length) _limitedTransmitBytes += length; // beyond cwnd: only limited transmit allows it
            SendNewSegment(length, flags);
            if (fin) return;
        }
    }

    /// <summary>RFC 3042: on the first two duplicate ACKs a peer without SACK may get one new segment each.</summary>
    private long LimitedTransmitAllowance =>
        !SackEnabled && !InRecovery && _dupAcks is 1 or 2 ? (long)_dupAcks * MaxPayload : 0;

    /// <summary>
    /// Payload of the largest super-packet the device would segment for us (whole segments within 64 KiB), or
    /// <see cref="MaxPayload"/> when it does not segment.
    /// </summary>
    private int SuperPacketPayload
    {
        get
        {
            var needed = Tuple.LocalAddress.IsV4 ? DeviceOffloads.TcpSegmentation4 : DeviceOffloads.TcpSegmentation6;
            if ((_stack.DeviceOffloads & needed) == 0)
                return MaxPayload;
            int room = ushort.MaxValue - IpHeader.LengthFor(Tuple.LocalAddress) - TcpSegment.MaxHeaderLength;
            return Math.Max(MaxPayload, room / MaxPayload * MaxPayload);
        }
    }

    private void SendNewSegment(int length, TcpFlags flags)
    {
        var seq = SndNxt;
        Transmit(seq, length, flags, TraceNote.None, segmentSize: length > MaxPayload ? MaxPayload : 0);
        bool fin = (flags & TcpFlags.Fin) != 0;
        int consumed = length + (fin ? 1 : 0);
        // One record per segment, also for a super-packet: the peer acknowledges and SACKs the segments the device made.
        for (int offset = 0; offset < length || (offset == 0 && fin); offset += MaxPayload)
        {
            int chunk = Math.Min(MaxPayload, length - offset);
            bool last = offset + chunk >= length;
            _sent.Add(seq + offset, chunk + (last && fin ? 1 : 0), Now, last && fin ? SentFlags.Fin : SentFlags.None);
            if (last) break;
        }
        SndNxt += consumed;
        if (_inFastRecovery) _prrOut += consumed;
        _lastSendTime = Now;
        if (_rtoDeadline == Never) StartRetransmitTimer();
        ArmLossProbe();
    }

    private void RetransmitSegment(ref SentSegment s, TraceNote note)
    {
        int payload = s.PayloadLength;
        var flags = TcpFlags.Ack;
        if (s.Is(SentFlags.Fin)) flags |= TcpFlags.Fin;
        if (payload > 0 && s.End == SndNxt) flags |= TcpFlags.Psh;
        Transmit(s.Start, payload, flags, note);
        if (s.Is(SentFlags.Lost) && !s.Is(SentFlags.RetransmittedSinceLost))
        {
            s.Flags |= SentFlags.RetransmittedSinceLost;
            _retransmittedLostBytes += s.Length;
        }
        s.Flags |= SentFlags.Retransmitted;
        s.TransmitTime = Now;
        Retransmissions++;
        _stack.Counters.Retransmissions++;
        if (_inFastRecovery) _prrOut += s.Length;
        _lastSendTime = Now;
        if (_rtoDeadline == Never) StartRetransmitTimer();
    }

    /// <summary>A pure ACK: SEQ = SND.NXT, ACK = RCV.NXT, the current window and options.</summary>
    private void SendAck() => Transmit(SndNxt, 0, TcpFlags.Ack, TraceNote.None);

    /// <summary>
    /// A zero-window probe: a segment the peer must answer with an ACK carrying its window. Like Linux we send it with
    /// SEQ = SND.UNA − 1 and no text, so it occupies no sequence space and never enters the retransmission machinery.
    /// </summary>
    private void SendWindowProbe()
    {
        var options = SegmentOptions(0);
        _stack.Tcp.Sender.Send(this, Tuple, SndUna - 1, RcvNxt, TcpFlags.Ack, AdvertisedWindow(), options, default, default,
            TraceNote.WindowProbe);
        AckSent();
        _stack.Counters.WindowProbes++;
    }

    /// <summary>
    /// Builds and queues one segment of the send buffer starting at <paramref name="seq"/> — or, with
    /// <paramref name="segmentSize"/>, a super-packet the device cuts into segments of that size.
    /// </summary>
    private void Transmit(SeqNumber seq, int length, TcpFlags flags, TraceNote note, int segmentSize = 0)
    {
        ReadOnlySpan<byte> first = default, second = default;
        if (length > 0)
            _sendBuffer.Peek(seq - _sndBufSeq, length, out first, out second);
        var options = SegmentOptions(Math.Min(length, MaxPayload));
        _stack.Tcp.Sender.Send(this, Tuple, seq, RcvNxt, flags, AdvertisedWindow(), options, first, second, note,
            default, segmentSize);
        AckSent();
    }

    /// <summary>Every segment we send acknowledges RCV.NXT: nothing is left to acknowledge for now.</summary>
    private void AckSent()
    {
        _lastAckSent = RcvNxt;
        _ackNow = false;
        _delayedAckDeadline = Never;
    }
}
