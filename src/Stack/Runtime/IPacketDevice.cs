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

    /// <summary>Blocks until a packet may be readable, <see cref="Wake"/> was called, or <paramref name="timeout"/> passed.</summary>
    void WaitReadable(TimeSpan timeout);

    /// <summary>Makes a current or the next <see cref="WaitReadable"/> return at once. Thread-safe.</summary>
    void Wake();
}
