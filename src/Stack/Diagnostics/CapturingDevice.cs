using TunStack.Runtime;

namespace TunStack.Diagnostics;

/// <summary>
/// A packet device that records every packet read from and written to the device it wraps, through a
/// <see cref="PcapWriter"/>. Where it sits in a chain of wrapping devices decides what it records: it sees incoming
/// packets as the wrapped device returns them and outgoing packets before the wrapped device gets them. Placed
/// outermost, right under the event loop, it records exactly what the stack received and sent.
/// Recording is a copy into a queue (see <see cref="PcapWriter.TryCapture"/>): it never blocks the loop.
/// Disposing it disposes the wrapped device, not the writer.
/// </summary>
public sealed class CapturingDevice : IPacketDevice
{
    private readonly IPacketDevice _inner;
    private readonly PcapWriter _writer;
    private readonly TimeProvider _time;

    /// <summary>Captures what passes between the event loop and <paramref name="inner"/> into <paramref name="writer"/>.</summary>
    /// <param name="inner">The device below (the impairment, or the TUN device).</param>
    /// <param name="writer">The capture file writer.</param>
    /// <param name="time">Source of the records' timestamps (wall clock, UTC); the system clock by default.</param>
    public CapturingDevice(IPacketDevice inner, PcapWriter writer, TimeProvider? time = null)
    {
        _inner = inner;
        _writer = writer;
        _time = time ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public string Name => _inner.Name;
    /// <inheritdoc />
    public int Mtu => _inner.Mtu;
    /// <inheritdoc />
    public DeviceOffloads Offloads => _inner.Offloads;
    /// <inheritdoc />
    public int MaxPacketSize => _inner.MaxPacketSize;

    /// <summary>Super-packets are recorded whole, with their checksums as the device carries them (partial ones too).</summary>
    public int TryRead(Span<byte> buffer, out PacketInfo info)
    {
        int length = _inner.TryRead(buffer, out info);
        if (length > 0)
            _writer.TryCapture(buffer[..length], UnixMicros());
        return length;
    }

    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> packet, in PacketInfo info)
    {
        _writer.TryCapture(packet, UnixMicros());
        _inner.Write(packet, info);
    }

    /// <inheritdoc />
    public int TryRead(Span<byte> buffer)
    {
        int length = _inner.TryRead(buffer);
        if (length > 0)
            _writer.TryCapture(buffer[..length], UnixMicros());
        return length;
    }

    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> packet)
    {
        _writer.TryCapture(packet, UnixMicros());
        _inner.Write(packet);
    }

    /// <inheritdoc />
    public void WaitReadable(TimeSpan timeout) => _inner.WaitReadable(timeout);

    /// <inheritdoc />
    public void Wake() => _inner.Wake();

    /// <inheritdoc />
    public void Dispose() => _inner.Dispose();

    private long UnixMicros() => (_time.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond;
}
