using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// TCP demultiplexing and the connection table: finds the TCB for a segment by its 4-tuple, handles segments
/// for LISTEN and CLOSED (RFC 9293 §3.10.7.1-2), runs due timers and flushes pending output.
/// </summary>
internal sealed class TcpLayer
{
    private readonly NetStack _stack;
    private readonly Dictionary<FourTuple, Tcb> _connections = new();
    private readonly Dictionary<ushort, ListenEndpoint> _listeners = new();
    private List<Tcb> _outputQueue = new();
    private List<Tcb> _outputDraining = new();
    private readonly IsnGenerator _isn;
    private readonly TimerQueue _timers = new();

    public TcpLayer(NetStack stack, IsnGenerator isn)
    {
        _stack = stack;
        _isn = isn;
        Sender = new SegmentSender(stack);
    }

    public SegmentSender Sender { get; }
    public IReadOnlyCollection<Tcb> Connections => _connections.Values;
    public long NextDeadline => _timers.NextDeadline;
    public int TimerEntries => _timers.Count;

    public ListenEndpoint Listen(ushort port, int backlog)
    {
        if (_listeners.ContainsKey(port))
            throw new InvalidOperationException($"Port {port} already has a listener.");
        var listener = new ListenEndpoint(port, backlog);
        _listeners.Add(port, listener);
        return listener;
    }

    public Tcb? Find(in FourTuple tuple) => _connections.GetValueOrDefault(tuple);

    /// <summary>The ephemeral port range (Linux's default ip_local_port_range).</summary>
    public const ushort FirstEphemeralPort = 32768;
    public const ushort LastEphemeralPort = 60999;
    private uint _ephemeralCounter;

    /// <summary>Active OPEN (RFC 9293 §3.10.1): a new TCB in SYN-SENT; its SYN goes out at the next Poll.</summary>
    public Tcb Connect(IpAddress local, IpAddress remote, ushort remotePort, ushort localPort = 0)
    {
        if (remotePort == 0)
            throw new ArgumentOutOfRangeException(nameof(remotePort), "The remote port must not be 0.");
        ushort port = localPort != 0 ? localPort : PickEphemeralPort(local, remote, remotePort);
        var tuple = new FourTuple(local, port, remote, remotePort);
        if (_connections.ContainsKey(tuple))
            throw new InvalidOperationException($"A connection {tuple} exists already (address in use).");
        var tcb = new Tcb(_stack, tuple, null);
        _connections.Add(tuple, tcb);
        _stack.Counters.ActiveOpens++;
        tcb.OpenActive(_isn.Next(tuple, _stack.Now), _isn.TimestampOffset(tuple));
        return tcb;
    }

    /// <summary>
    /// RFC 6056 §3.3.3: try ports from a keyed-hash offset plus a counter; skip any whose 4-tuple is in use (TIME-WAIT
    /// included) or that a listener holds.
    /// </summary>
    private ushort PickEphemeralPort(IpAddress local, IpAddress remote, ushort remotePort)
    {
        const int count = LastEphemeralPort - FirstEphemeralPort + 1;
        uint offset = _isn.EphemeralPortOffset(local, remote, remotePort);
        for (int i = 0; i < count; i++)
        {
            var port = (ushort)(FirstEphemeralPort + (offset + _ephemeralCounter++) % count);
            if (!_listeners.ContainsKey(port) && !_connections.ContainsKey(new FourTuple(local, port, remote, remotePort)))
                return port;
        }
        throw new InvalidOperationException($"No free ephemeral port towards {remote}:{remotePort}.");
    }

    /// <summary>A TCP segment addressed to us. Returns why it was dropped, or None.</summary>
    public DropReason SegmentArrives(IpAddress source, IpAddress destination, ReadOnlySpan<byte> bytes)
    {
        if (!TcpSegment.TryParse(bytes, out var seg, out var reason))
            return reason;
        if (!seg.VerifyChecksum(source, destination))
            return DropReason.BadTcpChecksum;
        if (!TcpOptions.TryParse(seg.Options, out var options))
            return DropReason.BadTcpOption;
        _stack.Counters.SegmentsReceived++;

        var tuple = new FourTuple(destination, seg.DestinationPort, source, seg.SourcePort);
        if (_connections.TryGetValue(tuple, out var tcb) && tcb.State == TcpState.TimeWait
            && (seg.Flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst | TcpFlags.Fin)) == TcpFlags.Syn
            && _listeners.TryGetValue(seg.DestinationPort, out var reopening) && tcb.AcceptsNewIncarnation(seg, options))
        {
            // RFC 9293 §3.6.1 / RFC 6191: a new SYN beyond the old connection's sequence space (or with a newer
            // timestamp) may reopen a connection in TIME-WAIT. The new ISN must lie beyond everything the old
            // incarnation sent (MAY-2); if the listener cannot take the SYN, TIME-WAIT stays as it was.
            if (reopening.HalfOpenCount >= reopening.Backlog)
            {
                reopening.SynsDropped++;
                return DropReason.BacklogFull;
            }
            var oldSndNxt = tcb.SndNxt;
            Remove(tcb, CloseReason.Normal, "new SYN");
            return ListenSegmentArrives(reopening, tuple, seg, options, oldSndNxt);
        }
        if (tcb is not null)
        {
            var before = tcb.State;
            var drop = tcb.SegmentArrives(seg, options);
            if (_stack.Tracer is not null)
                tcb.Trace(TraceDirection.In, new SeqNumber(seg.SequenceNumber), new SeqNumber(seg.AcknowledgmentNumber),
                    seg.Flags, seg.Window, seg.Payload.Length, options, before, drop, tcb.ArrivalNote);
            tcb.AfterSegment();
            return drop;
        }
        if (_listeners.TryGetValue(seg.DestinationPort, out var listener))
            return ListenSegmentArrives(listener, tuple, seg, options);
        return ClosedSegmentArrives(tuple, seg, options);
    }

    /// <summary>RFC 9293 §3.10.7.1: no TCB and no listener — answer with a reset, never a reset to a reset.</summary>
    private DropReason ClosedSegmentArrives(in FourTuple tuple, in TcpSegment seg, in TcpOptions options)
    {
        TraceNoConnection(tuple, seg, options, TcpState.Closed, DropReason.NoListener);
        if (seg.Has(TcpFlags.Rst))
            return DropReason.NoListener;
        if (seg.Has(TcpFlags.Ack))
        {
            // <SEQ=SEG.ACK><CTL=RST>
            SendReset(tuple, new SeqNumber(seg.AcknowledgmentNumber), default, TcpFlags.Rst);
        }
        else
        {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, where SYN and FIN count in SEG.LEN.
            int segLen = seg.Payload.Length + (seg.Has(TcpFlags.Syn) ? 1 : 0) + (seg.Has(TcpFlags.Fin) ? 1 : 0);
            SendReset(tuple, new SeqNumber(0), new SeqNumber(seg.SequenceNumber) + segLen, TcpFlags.Rst | TcpFlags.Ack);
        }
        return DropReason.NoListener;
    }

    /// <summary>RFC 9293 §3.10.7.2: a segment for a port in LISTEN.</summary>
    private DropReason ListenSegmentArrives(ListenEndpoint listener, in FourTuple tuple, in TcpSegment seg, in TcpOptions options,
        SeqNumber? previousSndNxt = null)
    {
        // First: an incoming RST is ignored.
        if (seg.Has(TcpFlags.Rst))
        {
            TraceNoConnection(tuple, seg, options, TcpState.Listen, DropReason.Stale);
            return DropReason.Stale;
        }
        // Second: any ACK is bad in LISTEN: <SEQ=SEG.ACK><CTL=RST>.
        if (seg.Has(TcpFlags.Ack))
        {
            TraceNoConnection(tuple, seg, options, TcpState.Listen, DropReason.Stale);
            SendReset(tuple, new SeqNumber(seg.AcknowledgmentNumber), default, TcpFlags.Rst);
            return DropReason.Stale;
        }
        // Third: a SYN opens a connection. Anything else is dropped.
        if (!seg.Has(TcpFlags.Syn))
        {
            TraceNoConnection(tuple, seg, options, TcpState.Listen, DropReason.Stale);
            return DropReason.Stale;
        }
        if (listener.HalfOpenCount >= listener.Backlog)
        {
            listener.SynsDropped++;
            TraceNoConnection(tuple, seg, options, TcpState.Listen, DropReason.BacklogFull);
            return DropReason.BacklogFull;
        }

        var tcb = new Tcb(_stack, tuple, listener);
        _connections.Add(tuple, tcb);
        listener.HalfOpenCount++;
        _stack.Counters.PassiveOpens++;
        var iss = _isn.Next(tuple, _stack.Now);
        if (previousSndNxt is SeqNumber old && iss - old < MinimumIncarnationGap)
            iss = old + MinimumIncarnationGap; // RFC 6191 §2: above the old incarnation's sequence space
        tcb.OpenFromSyn(seg, options, iss, _isn.TimestampOffset(tuple));
        if (_stack.Tracer is not null)
            tcb.Trace(TraceDirection.In, new SeqNumber(seg.SequenceNumber), default, seg.Flags, seg.Window,
                seg.Payload.Length, options, TcpState.Listen);
        return DropReason.None;
    }

    /// <summary>How far above a TIME-WAIT incarnation's SND.NXT a reopened connection's ISN starts, at least.</summary>
    private const int MinimumIncarnationGap = 65536;

    /// <summary>An ICMP error about a segment of ours (destination unreachable, time exceeded).</summary>
    public DropReason IcmpErrorArrives(in FourTuple tuple, byte type, byte code, ushort nextHopMtu, uint sequence)
    {
        if (!_connections.TryGetValue(tuple, out var tcb))
            return DropReason.IcmpNoConnection;
        return tcb.IcmpErrorArrives(type, code, nextHopMtu, new SeqNumber(sequence));
    }

    private void TraceNoConnection(in FourTuple tuple, in TcpSegment seg, in TcpOptions options, TcpState state, DropReason drop) =>
        TraceWithoutConnection(TraceDirection.In, tuple, seg.SequenceNumber, seg.AcknowledgmentNumber, seg.Flags,
            seg.Window, seg.Payload.Length, options, state, drop);

    /// <summary>Traces a segment that belongs to no TCB (to or from LISTEN or CLOSED): numbers stay absolute.</summary>
    public void TraceWithoutConnection(TraceDirection direction, in FourTuple tuple, uint seq, uint ack, TcpFlags flags,
        ushort window, int payloadLength, in TcpOptions options, TcpState state, DropReason drop = DropReason.None)
    {
        _stack.Tracer?.OnSegment(new SegmentTraceRecord
        {
            TimeMicros = _stack.Now, Direction = direction, Tuple = tuple, Sequence = seq, Acknowledgment = ack,
            Flags = flags, Window = window, PayloadLength = payloadLength, Options = options,
            Before = state, After = state, Drop = drop,
        });
    }

    public void SendReset(in FourTuple tuple, SeqNumber seq, SeqNumber ack, TcpFlags flags) =>
        Sender.Send(null, tuple, seq, ack, flags, 0, default, default, default);

    /// <summary>Deletes a TCB (RFC 9293: "delete the TCB, enter CLOSED") and tells the application.</summary>
    public void Remove(Tcb tcb, CloseReason reason, string cause = "RST")
    {
        if (!_connections.Remove(tcb.Tuple))
            return;
        switch (reason)
        {
            case CloseReason.Normal: _stack.Counters.ConnectionsClosed++; break;
            default: _stack.Counters.ConnectionsAborted++; break;
        }
        tcb.MarkClosed(reason, cause);
    }

    /// <summary>Connections now in TIME-WAIT.</summary>
    public int TimeWaitCount { get; private set; }

    /// <summary>Reserves a TIME-WAIT slot; false when <see cref="NetStackOptions.MaxTimeWait"/> are in use.</summary>
    public bool TryAddTimeWait()
    {
        if (TimeWaitCount >= _stack.Options.MaxTimeWait)
        {
            _stack.Counters.TimeWaitLimitReached++;
            return false;
        }
        TimeWaitCount++;
        return true;
    }

    public void TimeWaitEnded() => TimeWaitCount--;

    public void EnqueueOutput(Tcb tcb) => _outputQueue.Add(tcb);

    public void ScheduleTimer(Tcb tcb, long deadline) => _timers.Schedule(tcb, deadline);

    /// <summary>Fires every timer that is due at <see cref="NetStack.Now"/>.</summary>
    public void RunTimers() => _timers.RunDue(_stack.Now, this);

    /// <summary>Lets every connection that asked for it send what it can.</summary>
    public void FlushOutput()
    {
        while (_outputQueue.Count > 0)
        {
            (_outputQueue, _outputDraining) = (_outputDraining, _outputQueue);
            foreach (var tcb in _outputDraining)
            {
                try
                {
                    tcb.Output();
                }
                catch (Exception e)
                {
                    Fail(tcb, e);
                }
            }
            _outputDraining.Clear();
        }
    }

    /// <summary>Runs one connection's timers; a bug there costs that connection, never the stack.</summary>
    public void FireTimer(Tcb tcb)
    {
        try
        {
            tcb.OnTimer();
        }
        catch (Exception e)
        {
            Fail(tcb, e);
        }
    }

    /// <summary>
    /// An exception escaped a connection's timer or output processing (a bug). Count it, keep it for diagnosis and
    /// abort that connection with a RST, so the rest of the stack and the event loop keep running.
    /// </summary>
    private void Fail(Tcb tcb, Exception e)
    {
        _stack.Counters.LastInternalError = e;
        _stack.Counters.InternalErrors++;
        try
        {
            tcb.Abort();
        }
        catch (Exception)
        {
            Remove(tcb, CloseReason.Aborted, "internal error");
        }
    }
}
