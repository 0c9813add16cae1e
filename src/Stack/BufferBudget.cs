namespace TunStack;

/// <summary>
/// Pooled buffer memory the connections hold right now, over the whole stack (Linux's tcp_mem, as one number). Rings
/// take memory on their first write and give it back when empty, so this follows the busy connections only.
/// </summary>
/// <remarks>Thread-safe, so that the shards of a sharded stack (<see cref="Sharding.StackShards"/>) can share one.</remarks>
internal sealed class BufferBudget
{
    private long _inUse;
    private long _peak;

    /// <summary>Bytes held now.</summary>
    public long InUse => Volatile.Read(ref _inUse);

    /// <summary>The most ever held at once.</summary>
    public long Peak => Volatile.Read(ref _peak);

    internal void Rented(int bytes)
    {
        long inUse = Interlocked.Add(ref _inUse, bytes);
        long peak = Volatile.Read(ref _peak);
        while (inUse > peak)
        {
            long seen = Interlocked.CompareExchange(ref _peak, inUse, peak);
            if (seen == peak) break;
            peak = seen;
        }
    }

    internal void Returned(int bytes) => Interlocked.Add(ref _inUse, -bytes);
}
