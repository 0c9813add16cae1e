using System.Buffers;

namespace TunStack;

/// <summary>One packet the stack wants sent: a pooled buffer and the length used.</summary>
internal readonly struct OutgoingPacket
{
    public readonly byte[] Buffer;
    public readonly int Length;
    /// <summary>Offload metadata for the device (a super-packet to segment, a checksum to complete); plain by default.</summary>
    public readonly PacketInfo Info;

    internal OutgoingPacket(byte[] buffer, int length, PacketInfo info = default)
    {
        Buffer = buffer;
        Length = length;
        Info = info;
    }

    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);
}

/// <summary>
/// Packets produced by the engine, waiting for the runtime to hand them to the device. Buffers come from an
/// <see cref="ArrayPool{T}"/>; the consumer returns each one with <see cref="Return"/> once written.
/// </summary>
internal sealed class TransmitQueue
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

    /// <summary>The size of the buffers <see cref="Rent()"/> hands out (the MTU).</summary>
    public int BufferSize => _bufferSize;

    internal byte[] Rent() => _pool.Rent(_bufferSize);

    /// <summary>A buffer for a packet of up to <paramref name="length"/> bytes (a segmentation-offload super-packet).</summary>
    internal byte[] Rent(int length) => _pool.Rent(Math.Max(length, _bufferSize));

    internal void Enqueue(byte[] buffer, int length, in PacketInfo info)
    {
        _queue.Enqueue(new OutgoingPacket(buffer, length, info));
        if (_counters is not null) _counters.BytesSent += length;
    }

    internal void Enqueue(byte[] buffer, int length) => Enqueue(buffer, length, PacketInfo.Plain);

    public bool TryDequeue(out OutgoingPacket packet) => _queue.TryDequeue(out packet);

    public void Return(in OutgoingPacket packet) => _pool.Return(packet.Buffer);
}
