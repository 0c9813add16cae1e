namespace TunStack.Tests.Simulation;

/// <summary>How one direction of a simulated link treats packets. Rates are probabilities per packet.</summary>
public sealed record LinkProfile
{
    public double Loss { get; init; }
    public double Duplicate { get; init; }
    public double Corrupt { get; init; }
    /// <summary>Probability that a packet gets an extra delay of up to <see cref="ReorderDelayMicros"/>, so later ones overtake it.</summary>
    public double Reorder { get; init; }
    public long ReorderDelayMicros { get; init; } = 2_000;
    /// <summary>Propagation delay, one way.</summary>
    public long DelayMicros { get; init; } = 500;
    /// <summary>Bottleneck rate in bytes per second; packets queue behind each other (0: unlimited).</summary>
    public long BytesPerSecond { get; init; }
    /// <summary>Drop-tail: a packet that would wait longer than this in the queue is dropped (congestion loss).</summary>
    public long MaxQueueMicros { get; init; } = 50_000;

    public override string ToString() =>
        $"loss {Loss:P1} dup {Duplicate:P1} corrupt {Corrupt:P1} reorder {Reorder:P1}/{ReorderDelayMicros}us " +
        $"delay {DelayMicros}us rate {(BytesPerSecond == 0 ? "unlimited" : $"{BytesPerSecond * 8 / 1e6:F0} Mbit/s")} queue {MaxQueueMicros}us";
}

/// <summary>
/// One direction of a link between two stacks in a simulation: packets go in with the current time and come out at
/// their delivery time, possibly lost, duplicated, corrupted, delayed or reordered — all decided by a seeded generator,
/// so a run is exactly repeatable.
/// </summary>
public sealed class SimulatedLink
{
    private readonly LinkProfile _profile;
    private readonly Random _random;
    private readonly PriorityQueue<byte[], (long Time, long Order)> _inFlight = new();
    private long _order;
    private long _busyUntil;

    public SimulatedLink(LinkProfile profile, Random random)
    {
        _profile = profile;
        _random = random;
    }

    public long Sent { get; private set; }
    public long Lost { get; private set; }
    public long QueueDrops { get; private set; }

    public long NextDelivery => _inFlight.TryPeek(out _, out var key) ? key.Time : long.MaxValue;

    public void Send(ReadOnlySpan<byte> packet, long now)
    {
        Sent++;
        // The bottleneck: serialization at the link rate behind whatever is queued.
        long start = Math.Max(now, _busyUntil);
        if (start - now > _profile.MaxQueueMicros)
        {
            QueueDrops++;
            return;
        }
        long serialization = _profile.BytesPerSecond == 0 ? 0 : packet.Length * 1_000_000L / _profile.BytesPerSecond;
        _busyUntil = start + serialization;
        if (_random.NextDouble() < _profile.Loss)
        {
            Lost++;
            return;
        }
        int copies = _random.NextDouble() < _profile.Duplicate ? 2 : 1;
        for (int i = 0; i < copies; i++)
        {
            var bytes = packet.ToArray();
            if (_random.NextDouble() < _profile.Corrupt)
                bytes[_random.Next(bytes.Length)] ^= (byte)(1 << _random.Next(8));
            long at = _busyUntil + _profile.DelayMicros;
            if (_random.NextDouble() < _profile.Reorder)
                at += 1 + _random.NextInt64(_profile.ReorderDelayMicros);
            _inFlight.Enqueue(bytes, (at, _order++));
        }
    }

    /// <summary>Takes the next packet due at or before <paramref name="now"/>.</summary>
    public bool TryReceive(long now, out byte[] packet)
    {
        if (_inFlight.TryPeek(out packet!, out var key) && key.Time <= now)
        {
            _inFlight.Dequeue();
            return true;
        }
        packet = null!;
        return false;
    }
}
