using TunStack.Tcp;

namespace TunStack.Diagnostics;

/// <summary>
/// Measurements the engine reports as it takes them, on the engine's thread, for metrics (<see cref="StackMetrics"/>).
/// Everything the engine merely counts is in <see cref="StackCounters"/> and read from there; this carries only what a
/// counter cannot hold. <see cref="NetStack.Observer"/> is null by default, which costs one null check.
/// </summary>
internal interface IStackObserver
{
    /// <summary>
    /// <paramref name="connection"/> took a round-trip time sample of <paramref name="rttMicros"/> microseconds
    /// (RFC 6298 §2, Karn's rule applied: never from a retransmitted segment).
    /// </summary>
    void OnRttSample(Tcb connection, long rttMicros);
}
