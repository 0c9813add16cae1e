using System.Net;
using TunStack.Tcp;

namespace TunStack;

/// <summary>
/// A snapshot of the stack taken on its event loop (<see cref="TunStackHost.GetDiagnosticsAsync"/>): every live
/// connection with its sequence-space and congestion state, and copies of the counters. Nothing in it changes later.
/// </summary>
public sealed class TunStackDiagnostics
{
    /// <summary>Every connection the engine holds (all states but CLOSED; TIME-WAIT ones are only counted).</summary>
    public required IReadOnlyList<TcpConnectionStatistics> Connections { get; init; }

    /// <summary>Connections in TIME-WAIT.</summary>
    public int TimeWaitCount { get; init; }

    /// <summary>Connections the application holds (accepted or connected and not yet finished).</summary>
    public int ApplicationConnectionCount { get; init; }

    /// <summary>The stack's counters (packets, segments, retransmissions, drops by reason), copied at the snapshot.</summary>
    public required StackCounters Counters { get; init; }

    /// <summary>
    /// With a multi-queue device, each engine shard's own counters, in queue order (what each queue's shard received,
    /// sent and handed to another shard); with one queue, just <see cref="Counters"/>.
    /// </summary>
    public IReadOnlyList<StackCounters> ShardCounters { get; init; } = [];

    /// <summary>The snapshots of a stack's shards as one: connections side by side, counts and counters summed.</summary>
    internal static TunStackDiagnostics Combine(IReadOnlyList<TunStackDiagnostics> shards) => shards.Count == 1 ? shards[0] : new()
    {
        Connections = shards.SelectMany(d => d.Connections).ToArray(),
        TimeWaitCount = shards.Sum(d => d.TimeWaitCount),
        ApplicationConnectionCount = shards.Sum(d => d.ApplicationConnectionCount),
        Counters = StackCounters.Sum(shards.Select(d => d.Counters)),
        ShardCounters = shards.Select(d => d.Counters).ToArray(),
    };

    /// <summary>A snapshot of <paramref name="stack"/>; call it on the thread that drives the stack.</summary>
    internal static TunStackDiagnostics Of(NetStack stack, int applicationConnectionCount)
    {
        var counters = stack.Counters.Snapshot();
        return new()
        {
            Connections = stack.Connections.Select(TcpConnectionStatistics.From).ToArray(),
            TimeWaitCount = stack.TimeWaitCount,
            ApplicationConnectionCount = applicationConnectionCount,
            Counters = counters,
            ShardCounters = [counters],
        };
    }
}

/// <summary>One connection in a <see cref="TunStackDiagnostics"/> snapshot.</summary>
public sealed record TcpConnectionStatistics
{
    /// <summary>Our end.</summary>
    public required IPEndPoint LocalEndPoint { get; init; }

    /// <summary>The peer's end.</summary>
    public required IPEndPoint RemoteEndPoint { get; init; }

    /// <summary>The state (RFC 9293 §3.3.2).</summary>
    public TcpState State { get; init; }

    /// <summary>Bytes in the send buffer: written by the application, not yet acknowledged.</summary>
    public long SendQueued { get; init; }

    /// <summary>Bytes received in order and not yet taken by the application.</summary>
    public long ReceiveQueued { get; init; }

    /// <summary>Bytes received beyond a gap, held for reassembly.</summary>
    public long OutOfOrderBytes { get; init; }

    /// <summary>Bytes sent and not yet acknowledged.</summary>
    public long BytesInFlight { get; init; }

    /// <summary>The send window the peer offers (SND.WND), in bytes.</summary>
    public long SendWindow { get; init; }

    /// <summary>Smoothed round-trip time (RFC 6298), zero before the first sample.</summary>
    public TimeSpan SmoothedRtt { get; init; }

    /// <summary>The current retransmission timeout.</summary>
    public TimeSpan RetransmissionTimeout { get; init; }

    /// <summary>Congestion window, in bytes.</summary>
    public long CongestionWindow { get; init; }

    /// <summary>Slow-start threshold, in bytes.</summary>
    public long SlowStartThreshold { get; init; }

    /// <summary>The segment size we send with (the smaller MSS, less options), zero before the handshake.</summary>
    public int SendMss { get; init; }

    /// <summary>Segments retransmitted on this connection.</summary>
    public long Retransmissions { get; init; }

    /// <summary>The congestion control in use ("cubic", "newreno").</summary>
    public string CongestionControl { get; init; } = "";

    /// <summary>Selective acknowledgments agreed.</summary>
    public bool Sack { get; init; }

    /// <summary>Timestamps agreed.</summary>
    public bool Timestamps { get; init; }

    internal static TcpConnectionStatistics From(Tcb tcb)
    {
        var t = tcb.Tuple;
        return new TcpConnectionStatistics
        {
            LocalEndPoint = new IPEndPoint(t.LocalAddress.ToIPAddress(), t.LocalPort),
            RemoteEndPoint = new IPEndPoint(t.RemoteAddress.ToIPAddress(), t.RemotePort),
            State = tcb.State,
            SendQueued = tcb.BytesQueued,
            ReceiveQueued = tcb.BytesAvailable,
            OutOfOrderBytes = tcb.BytesOutOfOrder,
            BytesInFlight = tcb.BytesInFlight,
            SendWindow = tcb.SndWnd,
            SmoothedRtt = TimeSpan.FromMicroseconds(tcb.SmoothedRttMicros),
            RetransmissionTimeout = TimeSpan.FromMicroseconds(tcb.CurrentRtoMicros),
            CongestionWindow = tcb.CongestionWindow,
            SlowStartThreshold = tcb.SlowStartThreshold,
            Retransmissions = tcb.Retransmissions,
            SendMss = tcb.SendMss,
            CongestionControl = tcb.CongestionControlName,
            Sack = tcb.SackEnabled,
            Timestamps = tcb.TimestampsEnabled,
        };
    }
}
