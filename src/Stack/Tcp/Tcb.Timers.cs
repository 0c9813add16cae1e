using TunStack.Diagnostics;
using TunStack.Tcp.Send;
using TunStack.Wire;

namespace TunStack.Tcp;

// Timers, each an absolute deadline on this TCB; the stack's timer heap (TimerQueue) calls OnTimer when the earliest
// is due:
//   retransmission (RFC 6298)          loss probe (RFC 8985 §7)      reordering (RFC 8985 §6.3)
//   persist, for zero windows (RFC 9293 §3.8.6.1)    delayed ACK (RFC 9293 §3.8.6.3)    TIME-WAIT (§3.10.8)
internal sealed partial class Tcb
{
    internal const long Never = long.MaxValue;
    /// <summary>RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time a loss probe waits for when one segment is out.</summary>
    private const long WorstCaseDelayedAckMicros = 200_000;
    private const long ClockGranularityMicros = 1_000;

    private RtoEstimator _rto;
    private long _rtoDeadline = Never;
    private long _lossProbeDeadline = Never;
    private long _reorderDeadline = Never;
    private long _persistDeadline = Never;
    private long _delayedAckDeadline = Never;
    private long _connectDeadline = Never;
    private int _retransmitCount;
    private int _persistBackoff;
    private int _persistProbesUnanswered;

    internal long NextDeadline =>
        Math.Min(Math.Min(Math.Min(_rtoDeadline, _lossProbeDeadline), Math.Min(_reorderDeadline, _persistDeadline)),
            Math.Min(Math.Min(_delayedAckDeadline, _connectDeadline),
                Math.Min(_finWait2Deadline, _keepAliveDeadline)));

    /// <summary>The deadline of this connection's live entry in the stack's <see cref="TimerQueue"/>.</summary>
    internal long QueuedDeadline = Never;
    /// <summary>This connection's entry in the <see cref="TimerQueue"/>, while it has one.</summary>
    internal TimerQueue.Entry? TimerEntry;

    private void StartRetransmitTimer()
    {
        _rtoDeadline = Now + _rto.Current;
        _stack.Tcp.ScheduleTimer(this, _rtoDeadline);
    }

    private void StopLossTimers()
    {
        _rtoDeadline = Never;
        _lossProbeDeadline = Never;
        _reorderDeadline = Never;
    }

    /// <summary>After an ACK: RFC 6298 §5.2-5.3 — stop the timer when all is acknowledged, restart it when new data was.</summary>
    private void UpdateLossTimers(bool newDataAcknowledged)
    {
        if (SndUna == SndNxt)
        {
            StopLossTimers();
            return;
        }
        if (newDataAcknowledged)
        {
            StartRetransmitTimer();
            ArmLossProbe();
        }
    }

    /// <summary>
    /// RFC 8985 §7.2: after new data is sent or acknowledged, a probe is scheduled PTO = 2·SRTT from now (plus the
    /// worst-case delayed ACK when a single segment is out), unless recovering, already probing, or without SACK.
    /// </summary>
    private void ArmLossProbe()
    {
        if (!SackEnabled || InRecovery || _lossProbeOutstanding || _sent.IsEmpty || State is not
            (TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing or TcpState.LastAck))
        {
            _lossProbeDeadline = Never;
            return;
        }
        // PTO = 2·SRTT, plus the worst-case delayed ACK when a single segment is out; 1 s without an RTT sample. The
        // probe never waits longer than the retransmission timer would: at that point it goes instead of the timeout.
        long pto;
        if (_rto.HasSample)
        {
            pto = 2 * _rto.SmoothedRtt;
            if (_sent.Count == 1) pto += WorstCaseDelayedAckMicros;
        }
        else
        {
            pto = 1_000_000;
        }
        // Never "now": with an RTT measured as 0 (a fake clock, or a very fast link) 2·SRTT is 0. One clock tick
        // (RFC 6298's G, 1 ms) is the shortest timeout that means anything.
        pto = Math.Max(pto, ClockGranularityMicros);
        long deadline = Math.Min(Now + pto, _rtoDeadline);
        _lossProbeDeadline = deadline;
        _stack.Tcp.ScheduleTimer(this, deadline);
    }

    private void StartPersistTimer()
    {
        long timeout = Math.Min(_rto.Base << Math.Min(_persistBackoff, 16), _stack.Options.MaxRtoMicros);
        _persistDeadline = Now + Math.Max(timeout, _stack.Options.MinRtoMicros);
        _stack.Tcp.ScheduleTimer(this, _persistDeadline);
    }

    private void StopPersistTimer()
    {
        _persistDeadline = Never;
        _persistBackoff = 0;
    }

    /// <summary>
    /// Both FINs are acknowledged (RFC 9293 §3.10.7.4): TIME-WAIT for 2·MSL. The TCB hands what TIME-WAIT needs to a
    /// small record in the TCP layer and leaves the connection table; its state stays TIME-WAIT and the application
    /// learns the connection is done. The ACK of the peer's FIN still goes out from here, after the segment's trace.
    /// </summary>
    private void EnterTimeWait()
    {
        if (State == TcpState.TimeWait)
            return;
        if (!_stack.Tcp.HasTimeWaitRoom())
        {
            // Too many connections in TIME-WAIT already: close at once rather than grow without bound,
            // after acknowledging the peer's FIN.
            if (_ackNow)
                SendAck();
            _stack.Tcp.Remove(this, CloseReason.Normal, "TIME-WAIT limit");
            return;
        }
        SetState(TcpState.TimeWait, "FIN");
        ushort window = AdvertisedWindow();
        var record = new TimeWaitRecord
        {
            Iss = Iss, Irs = Irs, SndNxt = SndNxt, RcvNxt = RcvNxt,
            Timestamps = TimestampsEnabled, TsRecent = _tsRecent, TsOffset = _timestampOffset,
            Window = window,
            WindowBytes = window << _rcvWndShift,
            Deadline = Now + 2 * _stack.Options.MslMicros,
        };
        _stack.Tcp.MoveToTimeWait(this, record);
        LeaveAcceptQueue();
        CloseReason = CloseReason.Normal;
        _sendBuffer.Release();    // everything we sent, FIN included, is acknowledged
        _sent.Clear();
        if (ReceiveRingIdle)
            _receiveBuffer.Release(); // if the application has read it all; otherwise when it has
        StopLossTimers();
        _persistDeadline = Never;
        _delayedAckDeadline = Never;
        _keepAliveDeadline = Never;
        _finWait2Deadline = Never;
        TimerQueue.Cancel(this);
        Raise(ConnectionEvents.Closed);
    }

    internal void OnTimer()
    {
        long now = Now;
        if (now >= _finWait2Deadline)
        {
            // The application released the connection and the peer never sent its FIN.
            _finWait2Deadline = Never;
            if (State == TcpState.FinWait2)
            {
                _stack.Tcp.SendReset(Tuple, SndNxt, default, TcpFlags.Rst);
                GiveUp("FIN-WAIT-2 timeout");
                return;
            }
        }
        if (now >= _keepAliveDeadline)
            KeepAliveTimeout();
        if (now >= _connectDeadline)
        {
            // An active open that found no answer in time (RFC 9293 §3.8.3 R2 for SYNs, MUST-23).
            _connectDeadline = Never;
            if (State is TcpState.SynSent or TcpState.SynReceived)
            {
                GiveUp("connect timeout");
                return;
            }
        }
        if (now >= _delayedAckDeadline)
        {
            _delayedAckDeadline = Never;
            if (RcvNxt != _lastAckSent)
            {
                _stack.Counters.DelayedAcks++;
                SendAck();
            }
        }
        if (now >= _reorderDeadline)
        {
            // RFC 8985 §6.3: the reordering window of a segment passed; it is lost now.
            _reorderDeadline = Never;
            RackDetectLosses();
            UpdateRecovery(SndUna, 0, false);
            RequestOutput();
        }
        if (now >= _lossProbeDeadline)
            LossProbeTimeout();
        if (now >= _rtoDeadline)
            RetransmitTimeout();
        if (State != TcpState.Closed && now >= _persistDeadline)
            PersistTimeout();
    }

    /// <summary>
    /// RFC 8985 §7.3: no ACK for a PTO. Send one new segment if the peer's window allows, else resend the last one,
    /// so that a tail loss shows up as an ACK with SACK instead of waiting for the retransmission timer.
    /// </summary>
    private void LossProbeTimeout()
    {
        _lossProbeDeadline = Never;
        if (_sent.IsEmpty || InRecovery)
            return;
        int unsent = _sendBuffer.Count - (SndNxt - _sndBufSeq);
        long peerRoom = (long)SndWnd - (SndNxt - SndUna);
        if (unsent > 0 && peerRoom > 0)
        {
            int length = (int)Math.Min(Math.Min(unsent, MaxPayload), peerRoom);
            bool fin = _finQueued && length == unsent && peerRoom > length;
            var flags = TcpFlags.Ack | (length == unsent ? TcpFlags.Psh : 0) | (fin ? TcpFlags.Fin : 0);
            SendNewSegment(length, flags);
            _lossProbeWasRetransmission = false;
        }
        else
        {
            RetransmitSegment(ref _sent.Newest, TraceNote.LossProbe);
            _lossProbeWasRetransmission = true;
        }
        _lossProbeOutstanding = true;
        _lossProbeEndSeq = SndNxt;
        _lossProbeDeadline = Never;
        _stack.Counters.LossProbes++;
        StartRetransmitTimer();
    }

    private void RetransmitTimeout()
    {
        _rtoDeadline = Never;
        if (State is TcpState.SynReceived or TcpState.SynSent)
        {
            if (SndUna != Iss) return;
            int limit = State == TcpState.SynSent || IsActiveOpen
                ? _stack.Options.MaxSynRetransmissions
                : _stack.Options.MaxSynAckRetransmissions;
            if (++_retransmitCount > limit)
            {
                GiveUp(State == TcpState.SynSent ? "connect timeout" : "retransmission timeout");
                return;
            }
            _rto.BackOff();
            _synToSend = true;
            RequestOutput();
            return;
        }
        if (_sent.IsEmpty)
            return;

        // SHLD-17 (§3.8.6.2.1): the peer shrank its window to zero below data in flight and keeps answering. Our
        // retransmissions are then zero-window probes, and do not time the connection out — unless the peer has been
        // silent for two of the largest RTOs, or the application has let the connection go (as Linux does).
        bool shrunkWindowAnswered = SndWnd == 0 && !_released && Now - _lastReceiveTime <= 2 * _stack.Options.MaxRtoMicros;
        // RFC 9293 §3.8.3 (R2): give up on the connection.
        if (!shrunkWindowAnswered && ++_retransmitCount > _stack.Options.MaxRetransmissions)
        {
            GiveUp();
            return;
        }

        _stack.Counters.RetransmissionTimeouts++;
        _cc!.OnRetransmitTimeout(Now, SndNxt - SndUna);
        _inFastRecovery = false;
        _inTimeoutRecovery = true;
        _recoveryPoint = SndNxt;
        _recoveryPointSet = true;
        _dupAcks = 0;
        _lossProbeOutstanding = false;
        _lossProbeDeadline = Never;
        _reorderDeadline = Never;

        // RFC 2018 §8: a receiver may discard data it SACKed. If the segment at SND.UNA is marked SACKed yet was never
        // acknowledged, the peer reneged: forget every SACK mark (as Linux does).
        if (_sent.Oldest.Is(SentFlags.Sacked))
        {
            for (int i = 0; i < _sent.Count; i++)
                _sent[i].Flags &= ~SentFlags.Sacked;
            _sackedBytes = 0;
            _sackedSegments = 0;
        }
        // RFC 8985 §6.3 / RFC 6675 §5.1: after a timeout every segment not SACKed is deemed lost and resent in order.
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (s.Is(SentFlags.Sacked)) continue;
            if (s.Is(SentFlags.RetransmittedSinceLost))
            {
                s.Flags &= ~SentFlags.RetransmittedSinceLost;
                _retransmittedLostBytes -= s.Length;
            }
            if (!s.Is(SentFlags.Lost))
            {
                s.Flags |= SentFlags.Lost;
                _lostBytes += s.Length;
            }
        }
        _rto.BackOff(); // RFC 6298 §5.5
        StartRetransmitTimer();
        RequestOutput();
    }

    /// <summary>The persist timer: probe the zero window (RFC 9293 §3.8.6.1, MUST-36), backing off exponentially.</summary>
    private void PersistTimeout()
    {
        _persistDeadline = Never;
        if (!_sent.IsEmpty || !HasUnsent || SndWnd > (uint)(SndNxt - SndUna))
        {
            _persistBackoff = 0;
            RequestOutput();
            return;
        }
        if (++_persistProbesUnanswered > _stack.Options.MaxRetransmissions)
        {
            GiveUp(); // the peer stopped answering probes altogether
            return;
        }
        SendWindowProbe();
        _persistBackoff++;
        StartPersistTimer();
    }

    private void GiveUp(string cause = "retransmission timeout")
    {
        _stack.Counters.ConnectionsTimedOut++;
        _stack.Tcp.Remove(this, CloseReason.TimedOut, cause);
    }
}
