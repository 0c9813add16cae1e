namespace TunStack.Runtime;

/// <summary>
/// A layer-3 packet device: every read or write is one whole IP datagram (IPv4 or IPv6).
/// The event loop owns the device; only <see cref="Wake"/> may be called from other threads.
/// Linux TUN is one implementation; an in-memory link is another (tests).
/// </summary>
public interface IPacketDevice : IDisposable
{
    /// <summary>Interface name, for messages (e.g. "tun0").</summary>
    string Name { get; }

    /// <summary>Largest IP datagram the device carries.</summary>
    int Mtu { get; }

    /// <summary>Reads one waiting packet into <paramref name="buffer"/> without blocking; returns its length, or 0 when none is waiting.</summary>
    int TryRead(Span<byte> buffer);

    /// <summary>Writes one packet. A packet the device cannot take right now may be dropped (as a link would); it never blocks for long.</summary>
    void Write(ReadOnlySpan<byte> packet);

    /// <summary>
    /// The offloads the device performs for packets written to it; what it reports on packets read depends on them
    /// too. None by default.
    /// </summary>
    DeviceOffloads Offloads => DeviceOffloads.None;

    /// <summary>The largest packet a read may return or a write may take: the MTU, or 64 KiB with segmentation offload.</summary>
    int MaxPacketSize => Mtu;

    /// <summary>
    /// Reads one waiting packet and its offload metadata (a super-packet, a checksum left partial). Devices without
    /// offloads return plain packets.
    /// </summary>
    int TryRead(Span<byte> buffer, out PacketInfo info)
    {
        info = PacketInfo.Plain;
        return TryRead(buffer);
    }

    /// <summary>Writes one packet with its offload metadata; only a device with the matching <see cref="Offloads"/> takes other than plain packets.</summary>
    void Write(ReadOnlySpan<byte> packet, in PacketInfo info)
    {
        if (!info.IsPlain)
            throw new NotSupportedException($"{Name} does not offload; the stack must send plain packets to it.");
        Write(packet);
    }

    /// <summary>Blocks until a packet may be readable, <see cref="Wake"/> was called, or <paramref name="timeout"/> passed.</summary>
    void WaitReadable(TimeSpan timeout);

    /// <summary>Makes a current or the next <see cref="WaitReadable"/> return at once. Thread-safe.</summary>
    void Wake();
}
