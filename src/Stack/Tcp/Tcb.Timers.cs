using TunStack.Wire;

namespace TunStack.Tcp;

// Timers: retransmission (RFC 6298), the persist timer for zero windows (RFC 9293 §3.8.6.1) and TIME-WAIT
// (RFC 9293 §3.10.8). Each TCB keeps absolute deadlines; the stack's Poll calls OnTimer when one is due.
public sealed partial class Tcb
{
    internal const long Never = long.MaxValue;

    private RtoEstimator _rto;
    private long _retransmitDeadline = Never;
    private long _timeWaitDeadline = Never;
    private int _retransmitCount;
    private bool _probeDue;
    private bool _rttTiming;
    private SeqNumber _rttSeq;
    private long _rttStart;

    internal long NextDeadline => Math.Min(_retransmitDeadline, _timeWaitDeadline);

    /// <summary>The deadline of this connection's live entry in the stack's <see cref="TimerQueue"/>.</summary>
    internal long QueuedDeadline = Never;

    private void StartRetransmitTimerIfIdle()
    {
        if (_retransmitDeadline == Never)
            RestartRetransmitTimer();
    }

    private void RestartRetransmitTimer()
    {
        _retransmitDeadline = _stack.Now + _rto.Current;
        _stack.Tcp.ScheduleTimer(this, _retransmitDeadline);
    }

    private void StopRetransmitTimer() => _retransmitDeadline = Never;

    private void EnterTimeWait()
    {
        if (State != TcpState.TimeWait && !_stack.Tcp.TryAddTimeWait())
        {
            // Too many connections in TIME-WAIT already: close at once rather than grow without bound,
            // after acknowledging the peer's FIN.
            if (_ackNow)
                SendSegment(SndNxt, 0, TcpFlags.Ack);
            _stack.Tcp.Remove(this, CloseReason.Normal, "TIME-WAIT limit");
            return;
        }
        SetState(TcpState.TimeWait, "FIN");
        _sendBuffer.Release();    // everything we sent, FIN included, is acknowledged
        _receiveBuffer.Release(); // if the application has read it all; otherwise when it has
        StopRetransmitTimer();
        _timeWaitDeadline = _stack.Now + 2 * _stack.Options.MslMicros;
        _stack.Tcp.ScheduleTimer(this, _timeWaitDeadline);
    }

    internal void OnTimer()
    {
        long now = _stack.Now;
        if (now >= _timeWaitDeadline)
        {
            // "If the time-wait timeout expires on a connection, delete the TCB" (RFC 9293 §3.10.8).
            _stack.Tcp.Remove(this, CloseReason.Normal, "2MSL timeout");
            return;
        }
        if (now >= _retransmitDeadline)
            RetransmitTimeout();
    }

    private void RetransmitTimeout()
    {
        _retransmitDeadline = Never;
        if (SndMax == SndUna)
        {
            // Nothing in flight: this is the persist timer. Probe the zero window with one byte.
            if (SndWnd == 0 && _sendBuffer.Count - (SndNxt - _sndBufSeq) > 0)
            {
                _probeDue = true;
                _rto.BackOff();
                RequestOutput();
            }
            return;
        }

        _retransmitCount++;
        int limit = State == TcpState.SynReceived
            ? _stack.Options.MaxSynAckRetransmissions
            : _stack.Options.MaxRetransmissions;
        if (_retransmitCount > limit)
        {
            // RFC 9293 §3.8.3 (R2): give up on the connection.
            _stack.Counters.ConnectionsTimedOut++;
            _stack.Tcp.Remove(this, CloseReason.TimedOut, "retransmission timeout");
            return;
        }

        OnRetransmitTimeoutCongestion();
        _rto.BackOff();         // RFC 6298 §5.5
        _rttTiming = false;     // Karn: no RTT sample from retransmitted data (RFC 6298 §3)
        SndNxt = SndUna;        // RFC 6298 §5.4: retransmit the earliest unacknowledged segment (go-back-N)
        if (SndWnd == 0) _probeDue = true;
        RequestOutput();
    }
}
