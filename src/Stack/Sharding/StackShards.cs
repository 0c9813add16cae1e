using TunStack.Tcp;

namespace TunStack.Sharding;

/// <summary>
/// Several <see cref="NetStack"/> shards serving one set of addresses, one per device queue and thread. Each shard owns
/// the connections whose 4-tuple hashes to it (<see cref="OwnerOf(in FourTuple)"/>); a packet that arrives on another
/// shard's queue is handed to the owner (<see cref="FlowSteering"/>), and a shard opening a connection picks an
/// ephemeral port whose 4-tuple it owns. What is stack-wide is accounted here, across the shards: the connection count
/// (against <see cref="NetStackOptions.MaxConnections"/>) and buffer memory (against
/// <see cref="NetStackOptions.BufferMemoryLimit"/>). Thread-safe.
/// </summary>
internal sealed class StackShards
{
    private int _connections;

    public StackShards(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, 256);
        Count = count;
    }

    /// <summary>How many shards there are.</summary>
    public int Count { get; }

    /// <summary>Buffer memory the connections of all shards hold.</summary>
    public BufferBudget Buffers { get; } = new();

    /// <summary>Connections (TIME-WAIT records aside) the shards hold together.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>
    /// The shard that owns the connection <paramref name="tuple"/> (seen from our side). The hash is the tuple's own,
    /// which is keyed per process: stable for the life of the stack, not predictable from outside.
    /// </summary>
    public int OwnerOf(in FourTuple tuple) => Count == 1 ? 0 : (int)(((ulong)(uint)tuple.GetHashCode() * (uint)Count) >> 32);

    /// <summary>The shard that should handle <paramref name="packet"/>, or -1 when any shard may (not TCP, or malformed).</summary>
    public int OwnerOf(ReadOnlySpan<byte> packet) =>
        Count > 1 && FlowSteering.TryGetFlow(packet, out var tuple) ? OwnerOf(tuple) : -1;

    internal void ConnectionAdded() => Interlocked.Increment(ref _connections);
    internal void ConnectionRemoved() => Interlocked.Decrement(ref _connections);

    /// <summary>A per-shard share of a per-listener limit (backlog, half-open): the limit split evenly, at least 1.</summary>
    internal int ShareOf(int limit) => Math.Max(1, (limit + Count - 1) / Count);
}
