using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

/// <summary>
/// Hands every trace event to several tracers in order — <c>--trace</c> and <c>--explain</c> together, so that each
/// narration follows the trace line it explains. Use <see cref="Combine"/>, which returns null when no tracer is on, so
/// that the engine keeps its "no tracer, no cost" path.
/// </summary>
internal sealed class CompositeTracer : IStackTracer
{
    private readonly IStackTracer[] _tracers;

    private CompositeTracer(IStackTracer[] tracers) => _tracers = tracers;

    /// <summary>The tracers given, skipping nulls: null for none, the tracer itself for one, a composite for more.</summary>
    public static IStackTracer? Combine(params IStackTracer?[] tracers)
    {
        var present = tracers.OfType<IStackTracer>().ToArray();
        return present.Length switch
        {
            0 => null,
            1 => present[0],
            _ => new CompositeTracer(present),
        };
    }

    public void OnSegment(in SegmentTraceRecord record)
    {
        foreach (var tracer in _tracers)
            tracer.OnSegment(record);
    }

    public void OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause)
    {
        foreach (var tracer in _tracers)
            tracer.OnStateChange(timeMicros, tuple, from, to, cause);
    }

    public void OnPacketDropped(long timeMicros, DropReason reason)
    {
        foreach (var tracer in _tracers)
            tracer.OnPacketDropped(timeMicros, reason);
    }
}
