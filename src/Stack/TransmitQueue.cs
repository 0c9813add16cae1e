using System.Buffers;

namespace TunStack;

/// <summary>One packet the stack wants sent: a pooled buffer and the length used.</summary>
public readonly struct OutgoingPacket
{
    public readonly byte[] Buffer;
    public readonly int Length;

    internal OutgoingPacket(byte[] buffer, int length)
    {
        Buffer = buffer;
        Length = length;
    }

    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);
}

/// <summary>
/// Packets produced by the engine, waiting for the runtime to hand them to the device. Buffers come from an
/// <see cref="ArrayPool{T}"/>; the consumer returns each one with <see cref="Return"/> once written.
/// </summary>
public sealed class TransmitQueue
{
    private readonly Queue<OutgoingPacket> _queue = new(256);
    private readonly ArrayPool<byte> _pool = ArrayPool<byte>.Shared;
    private readonly int _bufferSize;
    private readonly StackCounters? _counters;

    /// <param name="bufferSize">The size of each pooled buffer: the largest packet.</param>
    /// <param name="counters">Where the bytes queued are counted (<see cref="StackCounters.BytesSent"/>), or null.</param>
    public TransmitQueue(int bufferSize, StackCounters? counters = null)
    {
        _bufferSize = bufferSize;
        _counters = counters;
    }

    public int Count => _queue.Count;

    internal byte[] Rent() => _pool.Rent(_bufferSize);

    internal void Enqueue(byte[] buffer, int length)
    {
        _queue.Enqueue(new OutgoingPacket(buffer, length));
        if (_counters is not null) _counters.BytesSent += length;
    }

    public bool TryDequeue(out OutgoingPacket packet) => _queue.TryDequeue(out packet);

    public void Return(in OutgoingPacket packet) => _pool.Return(packet.Buffer);
}
