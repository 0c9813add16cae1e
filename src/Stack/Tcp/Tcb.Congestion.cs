using TunStack.Wire;

namespace TunStack.Tcp;

// Congestion control: NewReno (RFC 5681 slow start and congestion avoidance, RFC 6582 fast recovery) with the
// initial window of RFC 6928. Pluggable algorithms (CUBIC) come later.
public sealed partial class Tcb
{
    private int _cwnd;
    private int _ssthresh;
    private int _dupAcks;
    private bool _inFastRecovery;
    private SeqNumber _recover;

    private int FlightSize => SndMax - SndUna;

    private void InitCongestionControl()
    {
        _cwnd = Math.Min(10 * SendMss, Math.Max(2 * SendMss, 14600)); // RFC 6928 §2
        _ssthresh = int.MaxValue / 2;                                  // RFC 5681 §3.1: arbitrarily high
        _recover = Iss;
    }

    /// <summary>SND.UNA advanced to <paramref name="ack"/>: free the acknowledged bytes, sample the RTT, grow cwnd.</summary>
    private void OnNewDataAcknowledged(SeqNumber ack)
    {
        int acked = ack - SndUna;
        if (SndUna == Iss) acked--; // the SYN's sequence number carries no data and does not grow cwnd
        int dataAcked = Math.Clamp(ack - _sndBufSeq, 0, _sendBuffer.Count);
        _sendBuffer.Discard(dataAcked);
        _sndBufSeq += dataAcked;
        SndUna = ack;
        if (SndNxt < SndUna) SndNxt = SndUna;

        if (_rttTiming && ack > _rttSeq)
        {
            _rto.AddSample(_stack.Now - _rttStart);
            _rttTiming = false;
        }

        if (_inFastRecovery)
        {
            if (ack >= _recover)
            {
                // RFC 6582 §3.2 step 3: full acknowledgment, deflate the window and leave fast recovery.
                _cwnd = Math.Max(SendMss, Math.Min(_ssthresh, FlightSize + SendMss));
                _inFastRecovery = false;
            }
            else
            {
                // Partial acknowledgment: retransmit the next hole at once, deflate by the amount acked.
                _cwnd = Math.Max(SendMss, _cwnd - acked + SendMss);
                RetransmitFirstUnacknowledged();
            }
        }
        else if (_cwnd < _ssthresh)
            _cwnd += Math.Min(acked, SendMss);                        // RFC 5681 §3.1 slow start
        else
            _cwnd += Math.Max(1, SendMss * SendMss / _cwnd);          // congestion avoidance
        _cwnd = Math.Min(_cwnd, 1 << 30);

        _dupAcks = 0;
        _retransmitCount = 0;
        // RFC 6298 §5.2-5.3: stop the timer when all is acknowledged, else restart it.
        if (SndUna == SndMax) StopRetransmitTimer();
        else RestartRetransmitTimer();
        if (dataAcked > 0) Raise(ConnectionEvents.Writable);
        RequestOutput();
    }

    /// <summary>RFC 5681 §3.2: the third duplicate ACK triggers fast retransmit and fast recovery.</summary>
    private void OnDuplicateAck()
    {
        _dupAcks++;
        if (_dupAcks == 3 && !_inFastRecovery && SndUna >= _recover)
        {
            _stack.Counters.FastRetransmissions++;
            _ssthresh = Math.Max(FlightSize / 2, 2 * SendMss);
            _cwnd = _ssthresh + 3 * SendMss;
            _inFastRecovery = true;
            _recover = SndMax;
            RetransmitFirstUnacknowledged();
        }
        else if (_inFastRecovery)
        {
            _cwnd += SendMss; // window inflation: each duplicate ACK means a segment left the network
            RequestOutput();
        }
    }

    private void OnRetransmitTimeoutCongestion()
    {
        // RFC 5681 §3.1 eq. (4) and the loss window of one segment.
        _ssthresh = Math.Max(FlightSize / 2, 2 * SendMss);
        _cwnd = SendMss;
        _inFastRecovery = false;
        _recover = SndMax;
        _dupAcks = 0;
    }

    private void RetransmitFirstUnacknowledged()
    {
        int available = _sendBuffer.Count - (SndUna - _sndBufSeq);
        int length = Math.Min(SendMss, Math.Max(0, available));
        bool fin = _finQueued && SndUna + length == FinSeq;
        if (length == 0 && !fin) return;
        _rttTiming = false;
        var flags = TcpFlags.Ack | (fin ? TcpFlags.Fin : TcpFlags.None);
        SendSegment(SndUna, length, flags);
        RestartRetransmitTimer();
    }
}
