using TunStack.Diagnostics;
using TunStack.Tcp.Listen;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// TCP demultiplexing and the connection table: finds the TCB for a segment by its 4-tuple, handles segments
/// for LISTEN and CLOSED (RFC 9293 §3.10.7.1-2), runs due timers and flushes pending output.
/// </summary>
internal sealed partial class TcpLayer
{
    private readonly NetStack _stack;
    private readonly Dictionary<FourTuple, Tcb> _connections = new();
    private readonly Dictionary<ushort, ListenEndpoint> _listeners = new();
    private List<Tcb> _outputQueue = new();
    private List<Tcb> _outputDraining = new();
    private readonly IsnGenerator _isn;
    private readonly SynCookies _cookies;
    private readonly TimerQueue _timers = new();
    private readonly TimeWaitTable _timeWait = new();

    public TcpLayer(NetStack stack, IsnGenerator isn, SynCookies cookies)
    {
        _stack = stack;
        _isn = isn;
        _cookies = cookies;
        Sender = new SegmentSender(stack);
    }

    public SegmentSender Sender { get; }
    public IReadOnlyCollection<Tcb> Connections => _connections.Values;
    public long NextDeadline => Math.Min(_timers.NextDeadline, _timeWait.NextDeadline);
    public int TimerEntries => _timers.Count;

    public Tcb? Find(in FourTuple tuple) => _connections.GetValueOrDefault(tuple);

    /// <summary>Connections held against <see cref="NetStackOptions.MaxConnections"/>: all shards' when sharded.</summary>
    private int ConnectionCount => _stack.Shards?.Connections ?? _connections.Count;

    private void AddConnection(in FourTuple tuple, Tcb tcb)
    {
        _connections.Add(tuple, tcb);
        _stack.Shards?.ConnectionAdded();
    }

    private bool RemoveConnection(in FourTuple tuple)
    {
        if (!_connections.Remove(tuple))
            return false;
        _stack.Shards?.ConnectionRemoved();
        return true;
    }

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
        if (!_stack.Owns(tuple))
            throw new ArgumentException($"{tuple} belongs to shard {_stack.Shards!.OwnerOf(tuple)}, not to this one ({_stack.ShardIndex}).", nameof(localPort));
        if (_connections.ContainsKey(tuple))
            throw new InvalidOperationException($"A connection {tuple} exists already (address in use).");
        var tcb = new Tcb(_stack, tuple, null);
        AddConnection(tuple, tcb);
        _stack.Counters.ActiveOpens++;
        tcb.OpenActive(_isn.Next(tuple, _stack.Now), _isn.TimestampOffset(tuple));
        return tcb;
    }

    /// <summary>
    /// RFC 6056 §3.3.3: try ports from a keyed-hash offset plus a counter; skip any whose 4-tuple is in use (TIME-WAIT
    /// included), that a listener holds, or (sharded) that another shard would own.
    /// </summary>
    private ushort PickEphemeralPort(IpAddress local, IpAddress remote, ushort remotePort)
    {
        const int count = LastEphemeralPort - FirstEphemeralPort + 1;
        uint offset = _isn.EphemeralPortOffset(local, remote, remotePort);
        for (int i = 0; i < count; i++)
        {
            var port = (ushort)(FirstEphemeralPort + (offset + _ephemeralCounter++) % count);
            var tuple = new FourTuple(local, port, remote, remotePort);
            if (!_listeners.ContainsKey(port) && !_connections.ContainsKey(tuple) && _stack.Owns(tuple))
                return port;
        }
        throw new InvalidOperationException($"No free ephemeral port towards {remote}:{remotePort}.");
    }

    /// <summary>A TCP segment addressed to us. Returns why it was dropped, or None.</summary>
    public DropReason SegmentArrives(IpAddress source, IpAddress destination, ReadOnlySpan<byte> bytes)
    {
        if (!TcpSegment.TryParse(bytes, out var seg, out var reason))
            return reason;
        // A checksum the device left partial (it never crossed a wire) or verified is not checked again.
        if (!_stack.ArrivalInfo.ChecksumTrusted && !seg.VerifyChecksum(source, destination))
            return DropReason.BadTcpChecksum;
        if (!TcpOptions.TryParse(seg.Options, out var options))
            return DropReason.BadTcpOption;
        _stack.Counters.SegmentsReceived++;

        var tuple = new FourTuple(destination, seg.DestinationPort, source, seg.SourcePort);
        if (_connections.TryGetValue(tuple, out var tcb))
        {
            var before = tcb.State;
            var drop = tcb.SegmentArrives(seg, options);
            if (_stack.Tracer is not null)
                tcb.Trace(TraceDirection.In, new SeqNumber(seg.SequenceNumber), new SeqNumber(seg.AcknowledgmentNumber),
                    seg.Flags, seg.Window, seg.Payload.Length, options, before, drop, tcb.ArrivalNote);
            tcb.AfterSegment();
            return drop;
        }
        if (_timeWait.TryGet(tuple, out var record))
            return TimeWaitSegmentArrives(tuple, ref record, seg, options);
        if (FindListener(tuple) is { } listener)
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

    /// <summary>An ICMP error about a segment of ours (destination unreachable, time exceeded).</summary>
    public DropReason IcmpErrorArrives(in FourTuple tuple, byte type, byte code, ushort nextHopMtu, uint sequence)
    {
        if (!_connections.TryGetValue(tuple, out var tcb))
            return DropReason.IcmpNoConnection;
        return tcb.IcmpErrorArrives(type, code, nextHopMtu, new SeqNumber(sequence));
    }

    /// <summary>An ICMPv6 Packet Too Big about a segment of ours (RFC 8201).</summary>
    public DropReason PacketTooBigArrives(in FourTuple tuple, uint mtu, uint sequence)
    {
        if (!_connections.TryGetValue(tuple, out var tcb))
            return DropReason.IcmpNoConnection;
        return tcb.PacketTooBigArrives((ushort)Math.Min(mtu, ushort.MaxValue), new SeqNumber(sequence));
    }

    private void TraceNoConnection(in FourTuple tuple, in TcpSegment seg, in TcpOptions options, TcpState state, DropReason drop) =>
        TraceWithoutConnection(TraceDirection.In, tuple, seg.SequenceNumber, seg.AcknowledgmentNumber, seg.Flags,
            seg.Window, seg.Payload.Length, options, new DetachedTrace(state), drop);

    /// <summary>
    /// Traces a segment that belongs to no TCB: to or from LISTEN or CLOSED (numbers stay absolute), or a TIME-WAIT
    /// record (relative to its ISNs, like a connection's).
    /// </summary>
    public void TraceWithoutConnection(TraceDirection direction, in FourTuple tuple, uint seq, uint ack, TcpFlags flags,
        ushort window, int payloadLength, in TcpOptions options, in DetachedTrace detached, DropReason drop = DropReason.None,
        TcpState? after = null)
    {
        _stack.Tracer?.OnSegment(new SegmentTraceRecord
        {
            TimeMicros = _stack.Now, Direction = direction, Tuple = tuple, Sequence = seq, Acknowledgment = ack,
            Flags = flags, Window = window, PayloadLength = payloadLength, Options = options,
            HasConnection = detached.HasIsns, LocalIsn = detached.LocalIsn, PeerIsn = detached.PeerIsn,
            Before = detached.State, After = after ?? detached.State, Drop = drop,
        });
    }

    public void SendReset(in FourTuple tuple, SeqNumber seq, SeqNumber ack, TcpFlags flags) =>
        Sender.Send(null, tuple, seq, ack, flags, 0, default, default, default);

    /// <summary>Deletes a TCB (RFC 9293: "delete the TCB, enter CLOSED") and tells the application.</summary>
    public void Remove(Tcb tcb, CloseReason reason, string cause = "RST")
    {
        if (!RemoveConnection(tcb.Tuple))
            return;
        switch (reason)
        {
            case CloseReason.Normal: _stack.Counters.ConnectionsClosed++; break;
            default: _stack.Counters.ConnectionsAborted++; break;
        }
        tcb.MarkClosed(reason, cause);
    }


    public void EnqueueOutput(Tcb tcb) => _outputQueue.Add(tcb);

    public void ScheduleTimer(Tcb tcb, long deadline) => _timers.Schedule(tcb, deadline);

    /// <summary>Fires every timer that is due at <see cref="NetStack.Now"/>, TIME-WAIT expiries included.</summary>
    public void RunTimers()
    {
        _timers.RunDue(_stack.Now, this);
        if (_timeWait.NextDeadline <= _stack.Now)
            _timeWait.Expire(_stack.Now, _timeWaitExpired ??= TimeWaitExpired);
    }

    private Action<FourTuple, TimeWaitRecord>? _timeWaitExpired;

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
