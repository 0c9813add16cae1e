namespace TunStack.Host;

/// <summary>
/// Gives memory back to the operating system when the stack goes quiet. A burst of work (thousands of connections
/// opened, a load test) leaves the managed heap full of garbage and free space that the collector keeps for the next
/// burst; resident memory stays at the burst's level. Once no packet has come in or gone out for
/// <see cref="QuietPeriod"/>, and at least <see cref="AllocationThreshold"/> bytes were allocated since the last trim,
/// the trimmer runs one full, compacting, aggressive collection (<see cref="GCCollectionMode.Aggressive"/>: free
/// regions are decommitted), so resident memory falls back to what is alive. It never runs while packets flow, and a
/// quiet host that allocates nothing is never woken for it twice.
/// </summary>
public sealed class QuietTimeTrimmer : IDisposable
{
    private readonly Func<long> _activity;
    private readonly Action _collect;
    private readonly Func<long> _allocatedBytes;
    private readonly ITimer _timer;
    private long _lastActivity = -1;
    private long _allocatedAtTrim;
    private long _trims;

    /// <param name="activity">A count that grows with every packet in or out (read from the timer's thread).</param>
    /// <param name="time">The clock of the quiet period.</param>
    /// <param name="collect">The collection to run; by default a blocking, compacting, aggressive full GC.</param>
    /// <param name="allocatedBytes">Bytes allocated so far; by default <see cref="GC.GetTotalAllocatedBytes"/>.</param>
    public QuietTimeTrimmer(Func<long> activity, TimeProvider? time = null, Action? collect = null, Func<long>? allocatedBytes = null)
    {
        _activity = activity;
        _collect = collect ?? Collect;
        _allocatedBytes = allocatedBytes ?? (() => GC.GetTotalAllocatedBytes());
        _allocatedAtTrim = _allocatedBytes();
        _timer = (time ?? TimeProvider.System).CreateTimer(static state => ((QuietTimeTrimmer)state!).Tick(), this,
            QuietPeriod, QuietPeriod);
    }

    /// <summary>How long the stack must see no packet before the trim.</summary>
    public static readonly TimeSpan QuietPeriod = TimeSpan.FromSeconds(1);

    /// <summary>Allocation since the last trim below which a trim would not gain enough to be worth it.</summary>
    public const long AllocationThreshold = 8 * 1024 * 1024;

    /// <summary>Trims so far.</summary>
    public long Trims => Interlocked.Read(ref _trims);

    private void Tick()
    {
        long activity = _activity();
        if (activity != _lastActivity)
        {
            _lastActivity = activity; // packets flowed in the last period: not quiet
            return;
        }
        long allocated = _allocatedBytes();
        if (allocated - _allocatedAtTrim < AllocationThreshold)
            return;
        _collect();
        _allocatedAtTrim = _allocatedBytes();
        Interlocked.Increment(ref _trims);
    }

    /// <summary>
    /// A full blocking collection that compacts and decommits what is free. A plain forced collection keeps the free
    /// space committed (and resident) for the next burst, which is what this class exists to undo.
    /// </summary>
    private static void Collect() =>
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    public void Dispose() => _timer.Dispose();
}
