using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

/// <summary>
/// A tracer shared by the engine shards of a multi-queue stack, each on its own thread: they take turns, so lines stay
/// whole and a tracer's own state (the trace's time origin, the narrator's per-connection notes) sees one caller at a
/// time. Tracing is for watching, not for speed.
/// </summary>
internal sealed class SynchronizedTracer(IStackTracer inner) : IStackTracer
{
    private readonly Lock _lock = new();

    public void OnSegment(in SegmentTraceRecord record)
    {
        lock (_lock) inner.OnSegment(record);
    }

    public void OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause)
    {
        lock (_lock) inner.OnStateChange(timeMicros, tuple, from, to, cause);
    }

    public void OnPacketDropped(long timeMicros, DropReason reason)
    {
        lock (_lock) inner.OnPacketDropped(timeMicros, reason);
    }
}
