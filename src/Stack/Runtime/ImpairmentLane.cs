using System.Runtime.InteropServices;

namespace TunStack.Runtime;

/// <summary>A packet an <see cref="ImpairedDevice"/> holds: a pooled buffer and the length used.</summary>
internal readonly record struct HeldPacket(byte[] Buffer, int Length, int ReorderDistance, PacketInfo Info = default)
{
    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);
}

/// <summary>
/// The impairments of one direction of an <see cref="ImpairedDevice"/>, without I/O: packets are admitted with the
/// time, released when due, and taken from the ready queue in delivery order. Only the owning device's thread uses it.
/// </summary>
/// <remarks>
/// Every admitted packet draws the same numbers from the direction's own generator, whatever happens to it, so what
/// happens to the n-th packet of a direction depends only on the seed and n: not on the other direction, not on
/// timing, and not on which other impairments are switched on.
/// </remarks>
internal sealed class ImpairmentLane
{
    private readonly PacketBufferPool _pool;
    private readonly double _loss;
    private readonly double _reorder;
    private readonly double _duplicate;
    private readonly double _corrupt;
    private readonly long _delayMicros;
    private readonly long _jitterMicros;
    private readonly long _holdMicros;
    private readonly ulong _maxDistance;
    private readonly PriorityQueue<HeldPacket, DueKey> _scheduled = new();
    private readonly List<HeldBack> _heldBack = [];
    private readonly Queue<HeldPacket> _ready = new();
    private Xoshiro256StarStar _random;
    private long _order;
    private long _latestDue = long.MinValue;
    private long _packets;
    private long _dropped;
    private long _duplicated;
    private long _corrupted;
    private long _reordered;
    private long _delayed;

    public ImpairmentLane(ImpairmentOptions options, ulong seed, ulong stream, PacketBufferPool pool)
    {
        _pool = pool;
        _random = new Xoshiro256StarStar(seed, stream);
        _loss = options.LossPercent / 100;
        _reorder = options.ReorderPercent / 100;
        _duplicate = options.DuplicatePercent / 100;
        _corrupt = options.CorruptPercent / 100;
        _delayMicros = (long)options.Delay.TotalMicroseconds;
        _jitterMicros = (long)options.Jitter.TotalMicroseconds;
        _holdMicros = Math.Max(0, (long)options.ReorderHoldLimit.TotalMicroseconds);
        _maxDistance = (ulong)Math.Max(1, options.MaxReorderDistance);
    }

    public ImpairmentCounts Counts => new(
        Volatile.Read(ref _packets),
        Volatile.Read(ref _dropped),
        Volatile.Read(ref _duplicated),
        Volatile.Read(ref _corrupted),
        Volatile.Read(ref _reordered),
        Volatile.Read(ref _delayed));

    /// <summary>Packets held: scheduled for later, held back by reordering, or ready to be taken.</summary>
    public int Pending => _scheduled.Count + _heldBack.Count + _ready.Count;

    public bool HasReady => _ready.Count > 0;

    /// <summary>When the next held packet becomes due (in microseconds), or <see cref="long.MaxValue"/> when none is waiting for time.</summary>
    public long NextDue
    {
        get
        {
            long next = _scheduled.TryPeek(out _, out DueKey key) ? key.Due : long.MaxValue;
            foreach (HeldBack held in _heldBack)
            {
                next = Math.Min(next, held.Deadline);
            }

            return next;
        }
    }

    /// <summary>Takes in a packet in <paramref name="buffer"/> (rented from the pool; the lane owns it from now on).</summary>
    public void Admit(byte[] buffer, int length, long nowMicros, PacketInfo info = default)
    {
        if (_corrupt > 0 && info.Checksum != ChecksumStatus.Complete)
        {
            // Corruption must be caught by the checksum, so none may be left to trust: complete a partial one (what the
            // device would do) and have the engine verify every packet. A super-packet we send must keep its partial
            // checksum for the device to segment it: it is not corrupted (counted in neither way).
            if (CompleteChecksum(buffer.AsSpan(0, length), info))
                info = info with { Checksum = ChecksumStatus.Complete };
        }
        _packets++;
        double loss = _random.NextDouble();
        double corrupt = _random.NextDouble();
        double duplicate = _random.NextDouble();
        double reorder = _random.NextDouble();
        ulong bit = _random.NextBelow((ulong)Math.Max(length, 1) * 8);
        int distance = 1 + (int)_random.NextBelow(_maxDistance);
        long jitter = (long)_random.NextBelow((ulong)((2 * _jitterMicros) + 1)) - _jitterMicros;

        if (loss < _loss)
        {
            _dropped++;
            _pool.Return(buffer);
            return;
        }

        if (corrupt < _corrupt && length > 0 && info.Checksum == ChecksumStatus.Complete)
        {
            buffer[bit >> 3] ^= (byte)(1 << (int)(bit & 7));
            _corrupted++;
        }

        long due = Math.Max(nowMicros, nowMicros + _delayMicros + jitter);
        if (due > nowMicros)
        {
            _delayed++;
        }

        if (due < _latestDue)
        {
            _reordered++; // jitter lets it overtake a packet still scheduled
        }
        else
        {
            _latestDue = due;
        }

        Schedule(new HeldPacket(buffer, length, reorder < _reorder ? distance : 0, info), due);
        if (duplicate < _duplicate)
        {
            // The copy follows the original at once; it is not impaired again.
            byte[] copy = _pool.Rent();
            buffer.AsSpan(0, length).CopyTo(copy);
            Schedule(new HeldPacket(copy, length, 0, info), due);
            _duplicated++;
        }
    }

    /// <summary>
    /// Completes the TCP checksum of a packet whose checksum the device left partial (or verified); false for a
    /// super-packet the device still has to segment, or anything that is not a well-formed TCP packet.
    /// </summary>
    private static bool CompleteChecksum(Span<byte> packet, in PacketInfo info)
    {
        if (info.Checksum == ChecksumStatus.Verified)
            return true; // the field already holds the full checksum
        if (packet.IsEmpty)
            return false;
        int version = packet[0] >> 4;
        int headerLength;
        byte protocol;
        if (version == 4 && packet.Length >= Wire.Ipv4Packet.MinHeaderLength)
        {
            headerLength = (packet[0] & 0x0F) * 4;
            protocol = packet[9];
        }
        else if (version == 6 && packet.Length >= 40)
        {
            headerLength = 40;
            protocol = packet[6];
        }
        else
        {
            return false;
        }
        if (protocol != Wire.IpProtocol.Tcp || packet.Length < headerLength + Wire.TcpSegment.MinHeaderLength)
            return false;
        if (info.Segmentation != SegmentationKind.None && packet.Length - headerLength > ushort.MaxValue)
            return false;
        Wire.TcpSegment.CompletePartialChecksum(packet[headerLength..]);
        return true;
    }

    /// <summary>Moves what is due at <paramref name="nowMicros"/> to the ready queue, in delivery order.</summary>
    public void Release(long nowMicros)
    {
        while (_scheduled.TryPeek(out HeldPacket packet, out DueKey key) && key.Due <= nowMicros)
        {
            _scheduled.Dequeue();
            Pass(packet, nowMicros);
        }

        // Held back long enough: they go now, in the order they were held, so nothing waits forever.
        for (int i = 0; i < _heldBack.Count;)
        {
            if (_heldBack[i].Deadline <= nowMicros)
            {
                _ready.Enqueue(_heldBack[i].Packet);
                _heldBack.RemoveAt(i);
            }
            else
            {
                i++;
            }
        }
    }

    public bool TryTake(out HeldPacket packet) => _ready.TryDequeue(out packet);

    /// <summary>Gives every held buffer back to the pool and forgets the packets.</summary>
    public void Clear()
    {
        while (_scheduled.TryDequeue(out HeldPacket packet, out _))
        {
            _pool.Return(packet.Buffer);
        }

        foreach (HeldBack held in _heldBack)
        {
            _pool.Return(held.Packet.Buffer);
        }

        _heldBack.Clear();
        while (_ready.TryDequeue(out HeldPacket packet))
        {
            _pool.Return(packet.Buffer);
        }
    }

    private void Schedule(HeldPacket packet, long due) => _scheduled.Enqueue(packet, new DueKey(due, _order++));

    private void Pass(HeldPacket packet, long nowMicros)
    {
        if (packet.ReorderDistance > 0)
        {
            _reordered++;
            _heldBack.Add(new HeldBack(packet with { ReorderDistance = 0 }, packet.ReorderDistance, nowMicros + _holdMicros));
            return;
        }

        _ready.Enqueue(packet);

        // Each packet that goes brings the held-back ones a step closer; those that have been passed often enough follow it.
        Span<HeldBack> held = CollectionsMarshal.AsSpan(_heldBack);
        bool any = false;
        for (int i = 0; i < held.Length; i++)
        {
            any |= --held[i].Remaining == 0;
        }

        if (any)
        {
            for (int i = 0; i < _heldBack.Count;)
            {
                if (_heldBack[i].Remaining == 0)
                {
                    _ready.Enqueue(_heldBack[i].Packet);
                    _heldBack.RemoveAt(i);
                }
                else
                {
                    i++;
                }
            }
        }
    }

    /// <summary>Orders scheduled packets by due time, then by admission.</summary>
    private readonly record struct DueKey(long Due, long Order) : IComparable<DueKey>
    {
        public int CompareTo(DueKey other) => Due != other.Due ? Due.CompareTo(other.Due) : Order.CompareTo(other.Order);
    }

    private record struct HeldBack(HeldPacket Packet, int Remaining, long Deadline);
}

/// <summary>A free list of equal-sized packet buffers: after warm-up, holding a packet allocates nothing.</summary>
internal sealed class PacketBufferPool(int bufferSize)
{
    private readonly Stack<byte[]> _free = new();

    public int BufferSize => bufferSize;

    /// <summary>Buffers made so far (they are reused, never dropped).</summary>
    public int Created { get; private set; }

    public byte[] Rent()
    {
        if (_free.TryPop(out byte[]? buffer))
        {
            return buffer;
        }

        Created++;
        return new byte[bufferSize];
    }

    public void Return(byte[] buffer) => _free.Push(buffer);
}
