using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

// Sending: the SYN-ACK, data segments within the send and congestion windows, the FIN, pure ACKs and
// zero-window probes. Called by the stack after input, application calls and timers (never re-entrantly).
public sealed partial class Tcb
{
    internal void Output()
    {
        _outputPending = false;
        switch (State)
        {
            case TcpState.Closed:
            case TcpState.Listen:
                return;
            case TcpState.SynReceived when SndNxt == Iss:
                SendSynAck();
                return;
        }

        bool sent = State != TcpState.TimeWait && SendQueuedData();
        if (!sent && _ackNow)
            SendSegment(SndNxt, 0, TcpFlags.Ack);
        _ackNow = false;
    }

    /// <summary>The SYN-ACK of a passive open (RFC 9293 §3.10.7.2), with our MSS and, if offered, window scale.</summary>
    private void SendSynAck()
    {
        var options = new TcpOptions { Mss = LocalMss };
        if (_peerOfferedWindowScale)
            options.WindowScale = _rcvWndShift;
        bool retransmission = SndMax > Iss;
        ushort window = (ushort)Math.Min(ReceiveWindow, ushort.MaxValue); // never scaled in a SYN (RFC 7323 §2.2)
        _rcvAdvertisedEdge = RcvNxt + window;
        _stack.Tcp.Sender.Send(this, Tuple, Iss, RcvNxt, TcpFlags.Syn | TcpFlags.Ack, window, options, default, default);
        if (retransmission)
            _stack.Counters.Retransmissions++;
        else
            StartRttMeasurement(Iss);
        SndNxt = Iss + 1;
        if (SndNxt > SndMax) SndMax = SndNxt;
        StartRetransmitTimerIfIdle();
        _ackNow = false;
    }

    /// <summary>
    /// Sends as much queued data as the windows allow, then the FIN if the application closed. Returns true when
    /// at least one segment (which carries the ACK) went out.
    /// </summary>
    private bool SendQueuedData()
    {
        bool any = false;
        while (true)
        {
            int offset = SndNxt - _sndBufSeq;
            int unsent = _sendBuffer.Count - offset;
            int inFlight = SndNxt - SndUna;
            long window = Math.Min(SndWnd, (uint)_cwnd);
            long usable = Math.Max(0, window - inFlight);
            int length = (int)Math.Min(Math.Min(Math.Max(unsent, 0), SendMss), usable);

            if (length == 0 && unsent > 0 && _probeDue)
            {
                length = 1; // zero-window probe: one byte past the window (RFC 9293 §3.8.6.1)
                _probeDue = false;
            }
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a short segment only if it is all we have, or the
            // usable window is at least half the largest window the peer offered. With nothing in flight no ACK
            // will come to open the window further, so send at once (this replaces the override timer).
            if (length > 0 && length < SendMss && length < unsent && usable < _maxSndWnd / 2 && inFlight > 0)
                length = 0;

            bool fin = _finQueued && SndNxt + length == FinSeq; // the FIN rides on the segment that ends the data
            if (length == 0 && !fin)
                break;

            var flags = TcpFlags.Ack;
            if (length > 0 && length == unsent) flags |= TcpFlags.Psh;
            if (fin) flags |= TcpFlags.Fin;
            SendSegment(SndNxt, length, flags);
            any = true;
            if (fin) break;
        }

        // Persist timer: data waits, the peer's window is zero and nothing is in flight to provoke an ACK.
        if (!any && SndWnd == 0 && SndMax == SndUna && _sendBuffer.Count - (SndNxt - _sndBufSeq) > 0)
            StartRetransmitTimerIfIdle();
        return any;
    }

    /// <summary>Sends <paramref name="length"/> bytes of the send buffer starting at <paramref name="seq"/>; advances SND.NXT.</summary>
    private void SendSegment(SeqNumber seq, int length, TcpFlags flags)
    {
        ReadOnlySpan<byte> first = default, second = default;
        if (length > 0)
            _sendBuffer.Peek(seq - _sndBufSeq, length, out first, out second);
        bool retransmission = seq < SndMax && (length > 0 || (flags & TcpFlags.Fin) != 0);

        _stack.Tcp.Sender.Send(this, Tuple, seq, RcvNxt, flags, AdvertisedWindow(), default, first, second);
        _ackNow = false;

        int consumed = length + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);
        if (consumed == 0)
            return;
        if (retransmission)
            _stack.Counters.Retransmissions++;
        else
            StartRttMeasurement(seq);
        var end = seq + consumed;
        if (end > SndNxt) SndNxt = end;
        if (end > SndMax) SndMax = end;
        StartRetransmitTimerIfIdle();
    }

    /// <summary>
    /// The window field for a non-SYN segment: free receive-buffer space, scaled (RFC 7323 §2.3), never moving the
    /// right edge left (RFC 9293 §3.8.6.2.2, MUST-35).
    /// </summary>
    private ushort AdvertisedWindow()
    {
        int promised = Math.Max(0, _rcvAdvertisedEdge - RcvNxt);
        int window = Math.Max(ReceiveWindow, promised);
        int scaled = Math.Min(window >> _rcvWndShift, ushort.MaxValue);
        if ((long)scaled << _rcvWndShift < promised)
            scaled = Math.Min(ushort.MaxValue, (promised + (1 << _rcvWndShift) - 1) >> _rcvWndShift);
        var edge = RcvNxt + (scaled << _rcvWndShift);
        if (edge > _rcvAdvertisedEdge) _rcvAdvertisedEdge = edge;
        return (ushort)scaled;
    }

    private void StartRttMeasurement(SeqNumber seq)
    {
        if (_rttTiming) return;
        _rttTiming = true;
        _rttSeq = seq;
        _rttStart = _stack.Now;
    }
}
