using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>How to trace a segment no TCB object stands for: the state to show and, for TIME-WAIT, the ISNs.</summary>
internal readonly record struct DetachedTrace(TcpState State, uint LocalIsn = 0, uint PeerIsn = 0, bool HasIsns = false);

// TIME-WAIT (RFC 9293 §3.10.7.4, §3.6.1; RFC 6191; RFC 1122 §4.2.2.13): once a connection enters it, its TCB leaves the
// connection table for a small record here, and the application's side of it is gone.
internal sealed partial class TcpLayer
{
    /// <summary>Connections now in TIME-WAIT.</summary>
    public int TimeWaitCount => _timeWait.Count;

    public bool IsInTimeWait(in FourTuple tuple) => _timeWait.Contains(tuple);

    public IEnumerable<KeyValuePair<FourTuple, TimeWaitRecord>> TimeWaitRecords => _timeWait.Records;

    /// <summary>False when <see cref="NetStackOptions.MaxTimeWait"/> connections are in TIME-WAIT already.</summary>
    public bool HasTimeWaitRoom()
    {
        if (_timeWait.Count < _stack.Options.MaxTimeWait)
            return true;
        _stack.Counters.TimeWaitLimitReached++;
        return false;
    }

    /// <summary>
    /// The TCB has entered TIME-WAIT: keep a record of it for 2·MSL and let the TCB itself go (its state stays
    /// TIME-WAIT, the application is told the connection is closed).
    /// </summary>
    public void MoveToTimeWait(Tcb tcb, in TimeWaitRecord record)
    {
        if (!RemoveConnection(tcb.Tuple))
            return;
        _timeWait.Add(tcb.Tuple, record);
        _stack.Counters.ConnectionsClosed++;
    }

    private void TimeWaitExpired(FourTuple tuple, TimeWaitRecord record)
    {
        // "If the time-wait timeout expires on a connection, delete the TCB" (RFC 9293 §3.10.8).
        _stack.Tracer?.OnStateChange(_stack.Now, tuple, TcpState.TimeWait, TcpState.Closed, "2MSL timeout");
    }

    /// <summary>RFC 9293 §3.10.7.4 for TIME-WAIT, on a record.</summary>
    private DropReason TimeWaitSegmentArrives(in FourTuple tuple, ref TimeWaitRecord record, in TcpSegment seg, in TcpOptions options)
    {
        var flags = seg.Flags;
        var seq = new SeqNumber(seg.SequenceNumber);
        var detached = new DetachedTrace(TcpState.TimeWait, record.Iss.Value, record.Irs.Value, true);

        // RFC 6191 / §3.6.1: a new SYN beyond the old incarnation (higher sequence number or newer timestamp) may reopen
        // the 4-tuple. The new ISN lies beyond everything the old one sent (MAY-2); if the listener cannot take the
        // SYN, the record stays as it was.
        if ((flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst | TcpFlags.Fin)) == TcpFlags.Syn
            && FindListener(tuple) is { } listener && IsNewIncarnation(record, seq, options))
        {
            if (listener.HalfOpenCount >= listener.HalfOpenLimit && !_stack.Options.SynCookies || listener.AcceptQueueFull)
            {
                listener.SynsDropped++;
                Trace(tuple, seg, options, detached, DropReason.BacklogFull);
                return DropReason.BacklogFull;
            }
            _timeWait.Remove(tuple);
            _stack.Tracer?.OnStateChange(_stack.Now, tuple, TcpState.TimeWait, TcpState.Closed, "new SYN (RFC 6191)");
            return ListenSegmentArrives(listener, tuple, seg, options, record.SndNxt);
        }

        DropReason drop;
        bool ack = false;
        if (record.Timestamps && options.HasTimestamps && (flags & TcpFlags.Rst) == 0
            && unchecked((int)(options.TimestampValue - record.TsRecent)) < 0)
        {
            // RFC 7323 §5.3 (PAWS): an old duplicate.
            _stack.Counters.PawsRejected++;
            drop = DropReason.PawsRejected;
            ack = true;
        }
        else if ((flags & TcpFlags.Rst) != 0)
        {
            // RFC 5961 §3.2: a RST exactly at RCV.NXT deletes the record ("enter CLOSED"); any other gets a challenge ACK.
            if (seq == record.RcvNxt)
            {
                _stack.Counters.ResetsReceived++;
                _timeWait.Remove(tuple);
                Trace(tuple, seg, options, detached, DropReason.None, TcpState.Closed);
                return DropReason.None;
            }
            // §3.10.7.4 first check: one outside RCV.NXT..RCV.NXT+RCV.WND-1 is dropped silently.
            drop = DropReason.Unacceptable;
            ack = seq.InRange(record.RcvNxt, record.RcvNxt + record.WindowBytes);
        }
        else if ((flags & TcpFlags.Fin) != 0)
        {
            // "The only thing that can arrive in this state is a retransmission of the remote FIN. Acknowledge it, and
            // restart the 2 MSL timeout."
            _timeWait.Restart(tuple, _stack.Now + 2 * _stack.Options.MslMicros);
            drop = DropReason.None;
            ack = true;
        }
        else if ((flags & TcpFlags.Ack) != 0 && new SeqNumber(seg.AcknowledgmentNumber) > record.SndNxt)
        {
            // §3.10.7.4 fifth check (RFC 5961 §5.2): an ACK of something never sent is discarded and answered with an ACK.
            drop = DropReason.Unacceptable;
            ack = true;
        }
        else if ((flags & TcpFlags.Syn) != 0 || seg.Payload.Length > 0 || seq != record.RcvNxt)
        {
            // A SYN (RFC 5961 §4: challenge ACK), data (no window is open), or anything else out of the window: ACK.
            drop = DropReason.Unacceptable;
            ack = true;
        }
        else
        {
            drop = DropReason.Stale; // a plain ACK: nothing to do
        }
        Trace(tuple, seg, options, detached, drop);
        if (ack)
            SendFromTimeWait(tuple, record);
        return drop;
    }

    private static bool IsNewIncarnation(in TimeWaitRecord record, SeqNumber seq, in TcpOptions options) =>
        record.Timestamps && options.HasTimestamps
            ? unchecked((int)(options.TimestampValue - record.TsRecent)) > 0
            : seq > record.RcvNxt;

    private void SendFromTimeWait(in FourTuple tuple, in TimeWaitRecord record)
    {
        var options = new TcpOptions();
        if (record.Timestamps)
        {
            options.HasTimestamps = true;
            options.TimestampValue = unchecked((uint)(_stack.Now / 1000) + record.TsOffset);
            options.TimestampEcho = record.TsRecent;
        }
        Sender.Send(null, tuple, record.SndNxt, record.RcvNxt, TcpFlags.Ack, record.Window, options, default, default,
            TraceNote.None, new DetachedTrace(TcpState.TimeWait, record.Iss.Value, record.Irs.Value, true));
    }

    private void Trace(in FourTuple tuple, in TcpSegment seg, in TcpOptions options, in DetachedTrace detached, DropReason drop,
        TcpState? after = null) =>
        TraceWithoutConnection(TraceDirection.In, tuple, seg.SequenceNumber, seg.AcknowledgmentNumber, seg.Flags, seg.Window,
            seg.Payload.Length, options, detached, drop, after);
}
