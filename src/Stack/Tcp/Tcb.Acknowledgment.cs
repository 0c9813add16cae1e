using TunStack.Diagnostics;
using TunStack.Tcp.Congestion;
using TunStack.Tcp.Send;
using TunStack.Wire;

namespace TunStack.Tcp;

// The ACK field (RFC 9293 §3.10.7.4, fifth check) and what the sender learns from it: cumulative and selective
// acknowledgments update the scoreboard of segments in flight (RFC 6675), RACK-TLP decides what is lost (RFC 8985),
// and fast recovery retransmits it at the pace proportional rate reduction allows (RFC 6937). A peer without SACK
// gets NewReno's duplicate-ACK recovery (RFC 6582) with limited transmit (RFC 3042).
internal sealed partial class Tcb
{
    private CongestionControl? _cc;
    private long _initialWindow;

    /// <summary>Segments sent and not cumulatively acknowledged, oldest first.</summary>
    private readonly SentSegmentQueue _sent = new();
    private long _sackedBytes;    // bytes of _sent the peer SACKed
    private int _sackedSegments;
    private long _lostBytes;      // bytes of _sent deemed lost (retransmitted or not)
    private long _retransmittedLostBytes; // of those, bytes retransmitted since and in flight again

    /// <summary>RFC 6675 "pipe": bytes in flight — sent, not acknowledged, not SACKed, not deemed lost unless resent.</summary>
    private long Pipe => (SndNxt - SndUna) - _sackedBytes - _lostBytes + _retransmittedLostBytes;

    // Fast recovery (RFC 6675 §5, RFC 6937) and recovery after a retransmission timeout.
    private bool _inFastRecovery;
    private bool _inTimeoutRecovery;
    private SeqNumber _recoveryPoint;   // RFC 6675 RecoveryPoint / RFC 6582 "recover"
    private long _prrDelivered;
    private long _prrOut;
    private long _recoverFlightSize;
    private int _dupAcks;               // NewReno, without SACK
    private long _limitedTransmitBytes; // sent by limited transmit since the last new ACK (RFC 3042)
    private bool _cwndLimited;          // the last send attempt stopped at cwnd (RFC 7661: grow cwnd only then)

    // RACK (RFC 8985 §5.2).
    private long _rackTransmitTime = -1;
    private SeqNumber _rackEndSeq;
    private long _rackRtt;
    private long _minRtt = long.MaxValue;
    private SeqNumber _rackFack;
    private bool _reorderingSeen;
    private int _reorderWindowMultiplier = 1;
    private int _reorderWindowPersist;
    private SeqNumber _dsackRound;
    private bool _dsackRoundActive;

    // Tail loss probe (RFC 8985 §7).
    private bool _lossProbeOutstanding;
    private bool _lossProbeWasRetransmission;
    private SeqNumber _lossProbeEndSeq;

    /// <summary>RFC 9293 §3.10.7.4 fifth check: the ACK field. May change state or delete the TCB.</summary>
    private DropReason AckArrives(in TcpSegment seg, SeqNumber seq, in TcpOptions options)
    {
        var ack = new SeqNumber(seg.AcknowledgmentNumber);

        if (State == TcpState.SynReceived)
        {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... otherwise form a reset."
            if (!(SndUna < ack && ack <= SndNxt))
            {
                _stack.Tcp.SendReset(Tuple, ack, default, TcpFlags.Rst);
                return DropReason.Unacceptable;
            }
            if (Listener is not null && !IsActiveOpen)
            {
                if (Listener.AcceptQueueFull)
                {
                    // RFC 9293 leaves this to the implementation; like Linux, ignore the ACK and stay in SYN-RECEIVED:
                    // the SYN-ACK is retransmitted and the peer's next ACK may find room.
                    return DropReason.AcceptQueueFull;
                }
                Listener.HalfOpenCount--;
                Listener.AcceptQueueLength++;
                _inAcceptQueue = true;
            }
            SetState(TcpState.Established, "ACK");
            _stack.Counters.ConnectionsEstablished++;
            if (_closeWhenEstablished)
            {
                _finQueued = true;
                SetState(TcpState.FinWait1, "close() in SYN-RECEIVED");
                RequestOutput();
            }
            FallBackToThreeSecondRto();
            ArmKeepAlive();
            // Take the window from this segment (the WL1/WL2 test below would also accept it).
            SndWnd = (uint)seg.Window << _sndWndShift;
            _maxSndWnd = Math.Max(_maxSndWnd, SndWnd);
            _sndWl1 = seq;
            _sndWl2 = ack;
            Raise(ConnectionEvents.Established);
        }

        if (ack > SndNxt)
        {
            // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send an ACK, drop the segment."
            // (RFC 5961 §5.2 makes it a challenge ACK, rate-limited like the others.)
            SendChallengeAck();
            return DropReason.Unacceptable;
        }
        if (ack < SndUna - (int)Math.Min(_maxSndWnd, int.MaxValue))
        {
            // RFC 5961 §5.2: older than any window the peer could have seen — not a real ACK. ACK and drop.
            SendChallengeAck();
            return DropReason.Unacceptable;
        }

        uint window = (uint)seg.Window << _sndWndShift;
        bool isDuplicateAck = ack == SndUna && seg.Payload.Length == 0 && (seg.Flags & TcpFlags.Fin) == 0
            && window == SndWnd && SndNxt > SndUna;
        var previousUna = SndUna;
        long flightBefore = Pipe;

        long delivered = 0;
        bool dsack = false;
        if (ack > SndUna)
            delivered += AcknowledgeCumulatively(ack, options);
        if (SackEnabled && options.SackBlockCount > 0 && ack >= previousUna)
            delivered += ProcessSackBlocks(options, ack, out dsack);

        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated" when the segment is newer than the
        // one that last updated it (SND.WL1/SND.WL2 rule) — and always when it advanced SND.UNA, as Linux does: the
        // window is measured from SND.UNA, so keeping the old window while SND.UNA moves on (a retransmitted segment
        // of the peer's, with an old SEG.SEQ, can carry a new ACK) would slide the right edge past what was offered.
        if (ack >= previousUna && (ack > previousUna || _sndWl1 < seq || (_sndWl1 == seq && _sndWl2 <= ack)))
        {
            if (window > SndWnd) RequestOutput();
            if (SndWnd == 0 && window > 0 && _inTimeoutRecovery)
                ForgetProbesIntoZeroWindow();
            SndWnd = window;
            _maxSndWnd = Math.Max(_maxSndWnd, window);
            _sndWl1 = seq;
            _sndWl2 = ack;
            if (window > 0 && _persistDeadline != Never) StopPersistTimer();
        }
        _persistProbesUnanswered = 0; // the peer is alive (RFC 9293 §3.8.6.1: keep probing while it answers)

        if (isDuplicateAck) ArrivalNote |= TraceNote.DuplicateAck;
        bool probeRepairedLoss = EndLossProbeEpisode(ack, dsack);
        DetectLosses(ack, previousUna, isDuplicateAck, dsack);
        UpdateRecovery(ack, delivered, isDuplicateAck);
        if (ack > previousUna && !_inFastRecovery && !probeRepairedLoss && (_cwndLimited || 2 * flightBefore >= _cc!.Cwnd))
            _cc!.OnAck(delivered, Now, Math.Max(_rto.SmoothedRtt, 1));
        if (ack > previousUna)
        {
            _cwndLimited = false;
            _limitedTransmitBytes = 0;
        }
        UpdateLossTimers(ack > previousUna);

        switch (State)
        {
            case TcpState.FinWait1 when FinAcked:
                SetState(TcpState.FinWait2, "ACK of FIN");
                StartFinWait2Timer();
                break;
            case TcpState.Closing when FinAcked:
                EnterTimeWait();
                break;
            case TcpState.LastAck when FinAcked:
                _stack.Tcp.Remove(this, CloseReason.Normal);
                break;
        }
        // New room in the windows: data acknowledged or SACKed, a duplicate ACK (limited transmit, or PRR's pace in
        // recovery, RFC 6937), or losses to repair.
        if (delivered > 0 || isDuplicateAck || InRecovery || _lostBytes > _retransmittedLostBytes)
            RequestOutput();
        return DropReason.None;
    }

    /// <summary>
    /// The peer opens a window it had shrunk to zero below data in flight (SHLD-17). What the retransmission timer sent
    /// meanwhile were probes the peer could not take: they are not in the network, so the data is sent again now rather
    /// than at the next, backed-off timeout.
    /// </summary>
    private void ForgetProbesIntoZeroWindow()
    {
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (!s.Is(SentFlags.RetransmittedSinceLost)) continue;
            s.Flags &= ~SentFlags.RetransmittedSinceLost;
            _retransmittedLostBytes -= s.Length;
        }
        RequestOutput();
    }

    /// <summary>
    /// SND.UNA advances to <paramref name="ack"/>: free the acknowledged bytes, forget their records, take an RTT
    /// sample (Karn's rule: never from a retransmitted segment, RFC 6298 §3), feed RACK. Returns the bytes newly
    /// delivered (those acknowledged now that were not already SACKed).
    /// </summary>
    private long AcknowledgeCumulatively(SeqNumber ack, in TcpOptions options)
    {
        if (SndUna == Iss)
        {
            // Our SYN is acknowledged; it carries no data and counts for nothing below.
            if (_synTransmitTime >= 0 && !_synRetransmitted)
                AddRttSample(Now - _synTransmitTime);
            SndUna = Iss + 1;
        }
        int dataAcked = Math.Clamp(ack - _sndBufSeq, 0, _sendBuffer.Count);
        _sendBuffer.Discard(dataAcked);
        _sndBufSeq += dataAcked;
        _sendBuffer.Release(); // when everything is acknowledged and nothing waits, the memory goes back to the pool

        long delivered = 0;
        long oldestFreshTransmit = -1;
        while (!_sent.IsEmpty && _sent.Oldest.End <= ack)
        {
            ref var s = ref _sent.Oldest;
            if (!s.Is(SentFlags.Sacked))
            {
                delivered += s.Length;
                RackOnDelivered(ref s, options);
                if (!s.Is(SentFlags.Retransmitted) && oldestFreshTransmit < 0)
                    oldestFreshTransmit = s.TransmitTime;
            }
            Forget(ref s);
            _sent.RemoveOldest();
        }
        if (!_sent.IsEmpty && _sent.Oldest.Start < ack)
        {
            // The peer took part of a segment (it trimmed it to its window): keep the rest as a shorter segment.
            ref var s = ref _sent.Oldest;
            int cut = ack - s.Start;
            if (s.Is(SentFlags.Sacked)) _sackedBytes -= cut; else delivered += cut;
            if (s.Is(SentFlags.Lost)) _lostBytes -= cut;
            if (s.Is(SentFlags.RetransmittedSinceLost)) _retransmittedLostBytes -= cut;
            s.Start = ack;
            s.Length -= cut;
        }
        SndUna = ack;
        if (oldestFreshTransmit >= 0)
            AddRttSample(Now - oldestFreshTransmit);
        _retransmitCount = 0;
        _rto.ResetBackoff();
        if (dataAcked > 0) Raise(ConnectionEvents.Writable);
        return delivered;
    }

    /// <summary>Removes a record's bytes from the scoreboard totals.</summary>
    private void Forget(ref SentSegment s)
    {
        if (s.Is(SentFlags.Sacked)) { _sackedBytes -= s.Length; _sackedSegments--; }
        if (s.Is(SentFlags.Lost)) _lostBytes -= s.Length;
        if (s.Is(SentFlags.RetransmittedSinceLost)) _retransmittedLostBytes -= s.Length;
        s.Flags &= ~(SentFlags.Sacked | SentFlags.Lost | SentFlags.RetransmittedSinceLost);
    }

    private void AddRttSample(long rtt)
    {
        if (rtt < 0) return;
        _rto.AddSample(rtt);
        if (rtt < _minRtt) _minRtt = rtt;
        _stack.Observer?.OnRttSample(this, rtt);
    }

    /// <summary>
    /// Marks every in-flight segment that a SACK block covers completely (RFC 6675 §4 "update the scoreboard").
    /// A first block below SND.UNA, or inside the second block, reports a duplicate (D-SACK, RFC 2883 §4).
    /// Blocks outside SND.UNA..SND.NXT are ignored. Returns the bytes newly SACKed.
    /// </summary>
    private long ProcessSackBlocks(in TcpOptions options, SeqNumber ack, out bool dsack)
    {
        dsack = false;
        long newlySacked = 0;
        for (int b = 0; b < options.SackBlockCount; b++)
        {
            var left = new SeqNumber(options.SackBlocks[b].Left);
            var right = new SeqNumber(options.SackBlocks[b].Right);
            if (right <= left)
                continue;
            if (b == 0 && (right <= ack || (options.SackBlockCount > 1
                && new SeqNumber(options.SackBlocks[1].Left) <= left && right <= new SeqNumber(options.SackBlocks[1].Right))))
            {
                dsack = true;
                _stack.Counters.DsacksReceived++;
                continue;
            }
            if (left < ack) left = ack;
            if (right > SndNxt || right <= left)
                continue; // SACKs data never sent, or nothing left: not trusted
            _stack.Counters.SackBlocksReceived++;
            for (int i = _sent.FirstEndingAfter(left); i < _sent.Count; i++)
            {
                ref var s = ref _sent[i];
                if (s.End > right) break;
                if (s.Start < left || s.Is(SentFlags.Sacked)) continue;
                if (s.Is(SentFlags.Lost)) _lostBytes -= s.Length;
                if (s.Is(SentFlags.RetransmittedSinceLost)) _retransmittedLostBytes -= s.Length;
                s.Flags = (s.Flags & ~(SentFlags.Lost | SentFlags.RetransmittedSinceLost)) | SentFlags.Sacked;
                _sackedBytes += s.Length;
                _sackedSegments++;
                newlySacked += s.Length;
                RackOnDelivered(ref s, options);
            }
        }
        if (dsack) RackOnDsack();
        return newlySacked;
    }

    // ---- RACK (RFC 8985 §6) ----

    /// <summary>RFC 8985 §6.2 steps 2 and 3: a segment was delivered (cumulatively or selectively).</summary>
    private void RackOnDelivered(ref SentSegment s, in TcpOptions options)
    {
        long rtt = Now - s.TransmitTime;
        if (s.Is(SentFlags.Retransmitted))
        {
            // Step 2: ambiguous — was it the original or the retransmission that arrived? Timestamps tell, else an
            // RTT below the minimum says it was the original.
            if (TimestampsEnabled && options.HasTimestamps
                && unchecked((int)(options.TimestampEcho - TimestampAt(s.TransmitTime))) < 0)
                return;
            if (rtt < _minRtt)
                return;
        }
        else if (rtt >= 0 && rtt < _minRtt)
        {
            _minRtt = rtt;
        }
        _rackRtt = rtt;
        if (SentAfter(s.TransmitTime, s.End, _rackTransmitTime, _rackEndSeq))
        {
            _rackTransmitTime = s.TransmitTime;
            _rackEndSeq = s.End;
        }
        // Step 3: a segment delivered below the highest delivered one, and never retransmitted, was reordered.
        if (s.End < _rackFack)
        {
            if (!s.Is(SentFlags.Retransmitted)) _reorderingSeen = true;
        }
        else
        {
            _rackFack = s.End;
        }
    }

    private static bool SentAfter(long t1, SeqNumber end1, long t2, SeqNumber end2) =>
        t1 > t2 || (t1 == t2 && end1 > end2);

    /// <summary>RFC 8985 §6.2 step 4: D-SACKs widen the reordering window, for 16 recoveries.</summary>
    private void RackOnDsack()
    {
        if (_dsackRoundActive && SndUna < _dsackRound)
            return; // at most one increase per round trip
        _dsackRoundActive = true;
        _dsackRound = SndNxt;
        _reorderWindowMultiplier++;
        _reorderWindowPersist = 16;
    }

    /// <summary>RFC 8985 §6.2 step 4: how long after a later segment was delivered an earlier one counts as lost.</summary>
    private long RackReorderWindow()
    {
        if (!_reorderingSeen && (InRecovery || _sackedSegments >= 3))
            return 0; // behave like the duplicate-ACK threshold
        long minRtt = _minRtt == long.MaxValue ? _rto.SmoothedRtt : _minRtt;
        return Math.Min(_reorderWindowMultiplier * minRtt / 4, Math.Max(_rto.SmoothedRtt, 1));
    }

    /// <summary>
    /// RFC 8985 §6.2 step 5: every segment sent before the most recently delivered one, and older than it by more than
    /// RACK.rtt + reordering window, is lost. Segments that are not yet old enough arm the reordering timer.
    /// </summary>
    private void RackDetectLosses()
    {
        if (_rackTransmitTime < 0)
            return;
        long reorderWindow = RackReorderWindow();
        long wait = 0;
        long now = Now;
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (s.Is(SentFlags.Sacked) || (s.Is(SentFlags.Lost) && !s.Is(SentFlags.RetransmittedSinceLost)))
                continue;
            if (!SentAfter(_rackTransmitTime, _rackEndSeq, s.TransmitTime, s.End))
                continue;
            long remaining = s.TransmitTime + _rackRtt + reorderWindow - now;
            if (remaining <= 0)
                MarkLost(ref s);
            else
                wait = Math.Max(wait, remaining);
        }
        if (wait > 0)
        {
            _reorderDeadline = now + wait;
            _stack.Tcp.ScheduleTimer(this, _reorderDeadline);
        }
        else
        {
            _reorderDeadline = Never;
        }
    }

    private void MarkLost(ref SentSegment s)
    {
        if (s.Is(SentFlags.RetransmittedSinceLost))
        {
            // A retransmission was lost too (RFC 8985 §2.2): it counts as not in flight again and goes once more.
            s.Flags &= ~SentFlags.RetransmittedSinceLost;
            _retransmittedLostBytes -= s.Length;
            _stack.Counters.LostRetransmissions++;
            return;
        }
        if (s.Is(SentFlags.Lost)) return;
        s.Flags |= SentFlags.Lost;
        _lostBytes += s.Length;
    }

    /// <summary>Loss detection for this ACK: RACK with SACK, duplicate ACKs (NewReno) without.</summary>
    private void DetectLosses(SeqNumber ack, SeqNumber previousUna, bool isDuplicateAck, bool dsack)
    {
        if (_sent.IsEmpty)
        {
            _dupAcks = 0;
            _reorderDeadline = Never;
            return;
        }
        if (SackEnabled)
        {
            if (_sackedBytes > 0 || InRecovery || _lostBytes > 0 || _reorderDeadline != Never)
                RackDetectLosses();
            return;
        }

        // NewReno (RFC 5681 §3.2, RFC 6582 §3.2) with limited transmit (RFC 3042).
        if (ack > previousUna)
        {
            _dupAcks = 0;
            if (_inFastRecovery && ack < _recoveryPoint)
            {
                // A partial acknowledgment: the next segment was lost too; retransmit it at once (RFC 6582 §3.2 (5)).
                ref var next = ref _sent.Oldest;
                if (!next.Is(SentFlags.Lost))
                    MarkLost(ref next);
            }
            return;
        }
        if (!isDuplicateAck || _inTimeoutRecovery)
            return;
        _dupAcks++;
        if (_inFastRecovery)
            return;
        if (_dupAcks < 3)
        {
            RequestOutput(); // limited transmit: one new segment per duplicate ACK (RFC 3042 §2)
            return;
        }
        // RFC 6582 §3.2 (2): only when the ACK covers more than "recover", so one window causes one reduction.
        if (_dupAcks == 3 && (!_recoveryPointSet || ack > _recoveryPoint))
            MarkLost(ref _sent.Oldest);
    }

    private bool _recoveryPointSet;

    /// <summary>
    /// Enters fast recovery when losses are known (RFC 6675 §5, with the congestion response of the algorithm in use),
    /// paces retransmissions with proportional rate reduction while in it (RFC 6937 §3), and leaves it when everything
    /// outstanding at its start is acknowledged.
    /// </summary>
    private void UpdateRecovery(SeqNumber ack, long delivered, bool isDuplicateAck)
    {
        var cc = _cc!;
        if (_inTimeoutRecovery && ack >= _recoveryPoint)
            _inTimeoutRecovery = false;

        if (_inFastRecovery && ack >= _recoveryPoint)
        {
            _inFastRecovery = false;
            cc.OnRecoveryEnd();
            if (_reorderWindowPersist > 0 && --_reorderWindowPersist == 0)
                _reorderWindowMultiplier = 1; // RFC 8985 §6.2 step 4: the widened window lapses after 16 recoveries
        }

        bool entering = false;
        if (!InRecovery && _lostBytes > 0)
        {
            entering = true;
            _inFastRecovery = true;
            _recoveryPoint = SndNxt;
            _recoveryPointSet = true;
            _recoverFlightSize = SndNxt - SndUna; // RFC 6937 RecoverFS
            _prrDelivered = 0;
            _prrOut = 0;
            // RFC 5681 §3.2 (2): the FlightSize that sets ssthresh leaves out what limited transmit sent.
            cc.OnCongestionEvent(Now, _recoverFlightSize - _limitedTransmitBytes);
            _stack.Counters.FastRecoveries++;
            _lossProbeOutstanding = false;
        }
        if (!_inFastRecovery)
            return;

        // Without SACK a duplicate ACK tells only that "a segment" left the network (RFC 6937 §3, DeliveredData).
        if (!SackEnabled && isDuplicateAck) delivered += MaxPayload;
        _prrDelivered += delivered;
        long pipe = Pipe;
        long ssthresh = cc.Ssthresh;
        long sendCount;
        if (pipe > ssthresh)
        {
            // Proportional rate reduction: spread the reduction over the round trip.
            sendCount = CeilingDivide(_prrDelivered * ssthresh, Math.Max(_recoverFlightSize, 1)) - _prrOut;
        }
        else
        {
            // Slow-start reduction bound: regain ssthresh no faster than slow start would.
            long limit = Math.Max(_prrDelivered - _prrOut, delivered) + MaxPayload;
            sendCount = Math.Min(ssthresh - pipe, limit);
        }
        if (entering && _prrOut == 0)
            sendCount = Math.Max(sendCount, MaxPayload); // the fast retransmit itself always goes out
        cc.Cwnd = pipe + Math.Max(sendCount, 0);
    }

    private static long CeilingDivide(long a, long b) => (a + b - 1) / b;

    /// <summary>
    /// RFC 8985 §7.4: did a loss probe that was a retransmission repair a real loss? Then react as to a loss, from the
    /// window in force when it happened (before this ACK could grow it). Returns true when it did.
    /// </summary>
    private bool EndLossProbeEpisode(SeqNumber ack, bool dsack)
    {
        if (!_lossProbeOutstanding || ack < _lossProbeEndSeq)
            return false;
        _lossProbeOutstanding = false;
        if (!_lossProbeWasRetransmission || dsack || InRecovery)
            return false;
        // The probe's retransmission was the copy that got through: the original was lost.
        _cc!.OnCongestionEvent(Now, _cc.Cwnd);
        _cc.OnRecoveryEnd();
        _stack.Counters.LossProbeRecoveries++;
        return true;
    }
}
