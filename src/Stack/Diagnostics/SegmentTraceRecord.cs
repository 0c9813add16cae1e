using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

internal enum TraceDirection : byte { In, Out }

/// <summary>What a segment was, beyond its header: marks the trace prints after the state.</summary>
[Flags]
internal enum TraceNote : byte
{
    None = 0,
    /// <summary>Out: data (or a SYN, FIN) sent again.</summary>
    Retransmission = 1,
    /// <summary>Out: a tail loss probe (RFC 8985 §7).</summary>
    LossProbe = 2,
    /// <summary>Out: a zero-window probe (RFC 9293 §3.8.6.1).</summary>
    WindowProbe = 4,
    /// <summary>Out: a keep-alive (RFC 9293 §3.8.4).</summary>
    KeepAlive = 64,
    /// <summary>A SYN answered with a cookie instead of a TCB, or the ACK that returned one (RFC 4987).</summary>
    SynCookie = 128,
    /// <summary>In: a duplicate ACK (RFC 5681 §2).</summary>
    DuplicateAck = 8,
    /// <summary>In: data beyond a gap, held for reassembly.</summary>
    OutOfOrder = 16,
    /// <summary>In: data we already had (reported with D-SACK, RFC 2883).</summary>
    Duplicate = 32,
}

/// <summary>
/// Everything the trace says about one TCP segment, in or out, plus the state transition it caused.
/// Sequence numbers are absolute; <see cref="LocalIsn"/>/<see cref="PeerIsn"/> let a formatter make them
/// relative, as tcpdump does.
/// </summary>
internal readonly struct SegmentTraceRecord
{
    public long TimeMicros { get; init; }
    public TraceDirection Direction { get; init; }
    public FourTuple Tuple { get; init; }
    public uint Sequence { get; init; }
    public uint Acknowledgment { get; init; }
    public TcpFlags Flags { get; init; }
    public ushort Window { get; init; }
    public int PayloadLength { get; init; }
    public TcpOptions Options { get; init; }
    /// <summary>True when a connection (TCB) exists, so the ISNs are meaningful.</summary>
    public bool HasConnection { get; init; }
    public uint LocalIsn { get; init; }
    public uint PeerIsn { get; init; }
    public TcpState Before { get; init; }
    public TcpState After { get; init; }
    /// <summary>For incoming segments: why it was dropped, or None.</summary>
    public DropReason Drop { get; init; }
    public TraceNote Note { get; init; }
}

/// <summary>Receives trace events from the engine (on the engine's thread). Null means tracing is off and costs nothing.</summary>
internal interface IStackTracer
{
    void OnSegment(in SegmentTraceRecord record);

    /// <summary>A transition not caused by a segment: an application call or a timer.</summary>
    void OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause);

    /// <summary>A packet dropped before it reached a connection (bad header, checksum, ...).</summary>
    void OnPacketDropped(long timeMicros, DropReason reason);
}
