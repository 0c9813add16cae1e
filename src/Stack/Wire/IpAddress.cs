using System.Buffers.Binary;
using System.Net;

namespace TunStack.Wire;

/// <summary>
/// An IPv4 or IPv6 address as a 16-byte value type, so 4-tuples hash and compare without allocation.
/// IPv4 addresses are held in their IPv4-mapped IPv6 form (::ffff:a.b.c.d, RFC 4291 §2.5.5.2).
/// </summary>
internal readonly struct IpAddress : IEquatable<IpAddress>
{
    private const ulong V4MappedPrefix = 0x0000_FFFF_0000_0000UL;
    private readonly ulong _high;
    private readonly ulong _low;

    private IpAddress(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    public bool IsV4 => _high == 0 && (_low & 0xFFFF_FFFF_0000_0000UL) == V4MappedPrefix;

    /// <summary>The IPv6 unspecified address :: (RFC 4291 §2.5.2).</summary>
    public bool IsV6Unspecified => _high == 0 && _low == 0;

    /// <summary>The IPv6 loopback address ::1 (RFC 4291 §2.5.3).</summary>
    public bool IsV6Loopback => _high == 0 && _low == 1;

    /// <summary>An IPv6 multicast address, ff00::/8 (RFC 4291 §2.7).</summary>
    public bool IsV6Multicast => _high >> 56 == 0xFF;

    /// <summary>The IPv4 address as a host-order 32-bit number (only meaningful when <see cref="IsV4"/>).</summary>
    public uint V4Value => (uint)_low;

    public static IpAddress FromV4(uint hostOrder) => new(0, V4MappedPrefix | hostOrder);

    public static IpAddress FromV4(ReadOnlySpan<byte> fourBytes) => FromV4(BinaryPrimitives.ReadUInt32BigEndian(fourBytes));

    public static IpAddress FromV6(ReadOnlySpan<byte> sixteenBytes) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes), BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes[8..]));

    /// <summary>Writes 4 bytes for IPv4 or 16 bytes for IPv6; returns the count written.</summary>
    public int WriteTo(Span<byte> destination)
    {
        if (IsV4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, V4Value);
            return 4;
        }
        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _low);
        return 16;
    }

    /// <summary>
    /// The bytes <see cref="WriteTo"/> writes, as a sum congruent modulo 0xFFFF to the sum of their 16-bit big-endian
    /// words (a 32-bit half counts as its two words, since 2^16 ≡ 1): the address's share of a pseudo-header checksum.
    /// </summary>
    internal ulong SumOfWords() => IsV4 ? V4Value : (_high >> 32) + (uint)_high + (_low >> 32) + (uint)_low;

    public static IpAddress FromIPAddress(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written))
            throw new ArgumentException("Unsupported address", nameof(address));
        return written == 4 ? FromV4(bytes) : FromV6(bytes);
    }

    public IPAddress ToIPAddress()
    {
        Span<byte> bytes = stackalloc byte[16];
        int n = WriteTo(bytes);
        return new IPAddress(bytes[..n]);
    }

    public static IpAddress Parse(string text) => FromIPAddress(IPAddress.Parse(text));

    public bool Equals(IpAddress other) => _high == other._high && _low == other._low;
    public override bool Equals(object? obj) => obj is IpAddress other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_high, _low);
    public static bool operator ==(IpAddress a, IpAddress b) => a.Equals(b);
    public static bool operator !=(IpAddress a, IpAddress b) => !a.Equals(b);

    public override string ToString()
    {
        if (IsV4)
        {
            uint v = V4Value;
            return $"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}";
        }
        return ToIPAddress().ToString();
    }
}
