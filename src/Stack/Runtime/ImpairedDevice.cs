using System.Security.Cryptography;

namespace TunStack.Runtime;

/// <summary>What an <see cref="ImpairedDevice"/> did to the packets of one direction.</summary>
/// <param name="Packets">Packets that entered this direction.</param>
/// <param name="Dropped">Lost on purpose.</param>
/// <param name="Duplicated">Delivered twice.</param>
/// <param name="Corrupted">Delivered with one bit flipped.</param>
/// <param name="Reordered">Held back so that later packets overtook them, or overtaking earlier ones because of jitter.</param>
/// <param name="Delayed">Held until a due time after their arrival (delay and jitter).</param>
public readonly record struct ImpairmentCounts(long Packets, long Dropped, long Duplicated, long Corrupted, long Reordered, long Delayed)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Packets} packets, {Dropped} dropped, {Duplicated} duplicated, {Corrupted} corrupted, {Reordered} reordered, {Delayed} delayed";
}

/// <summary>
/// Fault injection between a device and the engine, in both directions: loss, duplication, single-bit corruption,
/// reordering, delay and jitter (<see cref="ImpairmentOptions"/>), for kernels without netem and for tests.
/// </summary>
/// <remarks>
/// <para>Each direction has its own seeded generator (<see cref="ImpairmentLane"/>), so a run's decisions are the same
/// for a seed whatever the interleaving of the two directions. Time comes from a <see cref="TimeProvider"/>.</para>
/// <para>Packets travelling to the engine (<see cref="TryRead"/>) are held until due; <see cref="WaitReadable"/> never
/// sleeps past the due time of a held packet in either direction, and packets travelling to the wire are written to the
/// inner device from whichever of <see cref="TryRead"/>, <see cref="Write"/> and <see cref="WaitReadable"/> runs first
/// once they are due. Held packets live in pooled buffers: the steady path allocates nothing.</para>
/// <para>Like every device, it is used by the event loop's thread only, except for <see cref="Wake"/>.</para>
/// </remarks>
public sealed class ImpairedDevice : IPacketDevice
{
    /// <summary>Packets read from the inner device in one <see cref="TryRead"/> while none is ready to hand out.</summary>
    private const int MaxInnerReadsPerCall = 64;

    private readonly IPacketDevice _inner;
    private readonly TimeProvider _time;
    private readonly PacketBufferPool _pool;
    private readonly ImpairmentLane _inbound;
    private readonly ImpairmentLane _outbound;
    private readonly long _origin;
    private int _disposed;

    /// <param name="inner">The device whose packets are impaired; disposed with this one.</param>
    /// <param name="options">What to do; without a seed a random one is chosen (see <see cref="Options"/>).</param>
    /// <param name="time">The clock for delays and hold times; the system clock by default.</param>
    public ImpairedDevice(IPacketDevice inner, ImpairmentOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(options);
        _inner = inner;
        _time = time ?? TimeProvider.System;
        _origin = _time.GetTimestamp();
        ulong seed = options.Seed ?? BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        Options = options with { Seed = seed };
        _pool = new PacketBufferPool(Math.Max(inner.MaxPacketSize, 1500) + 256);
        _inbound = new ImpairmentLane(Options, seed, stream: 0, _pool);
        _outbound = new ImpairmentLane(Options, seed, stream: 1, _pool);
    }

    /// <summary>The options in force, with the seed in use (so that the run can be repeated).</summary>
    public ImpairmentOptions Options { get; }

    /// <summary>The wrapped device.</summary>
    public IPacketDevice Inner => _inner;

    /// <inheritdoc />
    public string Name => _inner.Name;

    /// <inheritdoc />
    public int Mtu => _inner.Mtu;

    /// <inheritdoc />
    public DeviceOffloads Offloads => _inner.Offloads;

    /// <inheritdoc />
    public int MaxPacketSize => _inner.MaxPacketSize;

    /// <summary>What was done to packets travelling from the device to the engine.</summary>
    public ImpairmentCounts Inbound => _inbound.Counts;

    /// <summary>What was done to packets travelling from the engine to the device.</summary>
    public ImpairmentCounts Outbound => _outbound.Counts;

    /// <summary>Packets held right now, both directions (loop thread only).</summary>
    public int HeldPackets => _inbound.Pending + _outbound.Pending;

    /// <summary>Packet buffers created so far; constant once the pool has warmed up (loop thread only).</summary>
    public int BuffersCreated => _pool.Created;

    /// <summary>Microseconds since this device was made: small numbers, exact for clocks that count whole fractions of a microsecond.</summary>
    private long NowMicros
    {
        get
        {
            long elapsed = _time.GetTimestamp() - _origin;
            long frequency = _time.TimestampFrequency;
            return frequency % 1_000_000 == 0
                ? elapsed / (frequency / 1_000_000)
                : (long)(elapsed * (1_000_000.0 / frequency));
        }
    }

    /// <inheritdoc />
    public int TryRead(Span<byte> buffer) => TryRead(buffer, out _);

    /// <inheritdoc />
    public int TryRead(Span<byte> buffer, out PacketInfo info)
    {
        info = PacketInfo.Plain;
        long now = NowMicros;
        FlushOutbound(now);
        _inbound.Release(now);
        for (int i = 0; i < MaxInnerReadsPerCall && !_inbound.HasReady; i++)
        {
            byte[] received = _pool.Rent();
            int length;
            PacketInfo receivedInfo;
            try
            {
                length = _inner.TryRead(received, out receivedInfo);
            }
            catch
            {
                _pool.Return(received);
                throw;
            }

            if (length <= 0)
            {
                _pool.Return(received);
                break;
            }

            _inbound.Admit(received, length, now, receivedInfo);
            _inbound.Release(now);
        }

        if (!_inbound.TryTake(out HeldPacket packet))
        {
            return 0;
        }

        // A shorter buffer than a packet truncates it, as a read from the device itself would.
        info = packet.Info;
        int copied = Math.Min(packet.Length, buffer.Length);
        packet.Buffer.AsSpan(0, copied).CopyTo(buffer);
        _pool.Return(packet.Buffer);
        return copied;
    }

    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> packet) => Write(packet, PacketInfo.Plain);

    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> packet, in PacketInfo info)
    {
        long now = NowMicros;
        if (packet.Length > _pool.BufferSize)
        {
            // Larger than the device allows: nothing to impair that the device would carry.
            _inner.Write(packet, info);
            return;
        }

        byte[] held = _pool.Rent();
        packet.CopyTo(held);
        _outbound.Admit(held, packet.Length, now, info);
        FlushOutbound(now);
    }

    /// <inheritdoc />
    public void WaitReadable(TimeSpan timeout)
    {
        long now = NowMicros;
        FlushOutbound(now);
        _inbound.Release(now);
        if (_inbound.HasReady)
        {
            return;
        }

        long next = Math.Min(_inbound.NextDue, _outbound.NextDue);
        if (next != long.MaxValue)
        {
            // Wake up in time for the next held packet (a negative timeout means no limit).
            var untilDue = TimeSpan.FromMicroseconds(Math.Max(0, next - now));
            if (timeout < TimeSpan.Zero || untilDue < timeout)
            {
                timeout = untilDue;
            }
        }

        if (timeout != TimeSpan.Zero)
        {
            _inner.WaitReadable(timeout);
        }

        FlushOutbound(NowMicros);
    }

    /// <inheritdoc />
    public void Wake() => _inner.Wake();

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _inbound.Clear();
        _outbound.Clear();
        _inner.Dispose();
    }

    private void FlushOutbound(long now)
    {
        _outbound.Release(now);
        while (_outbound.TryTake(out HeldPacket packet))
        {
            try
            {
                _inner.Write(packet.Span, packet.Info);
            }
            finally
            {
                _pool.Return(packet.Buffer);
            }
        }
    }
}
