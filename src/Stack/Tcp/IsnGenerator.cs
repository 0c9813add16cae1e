using System.Buffers.Binary;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// Initial sequence numbers per RFC 6528 §3 (and RFC 9293 §3.4.1): ISN = M + F(localip, localport, remoteip,
/// remoteport, secretkey), where M is a clock ticking every 4 microseconds and F is a keyed PRF (SipHash-2-4).
/// Off-path attackers cannot predict it, and successive connections on one 4-tuple still get increasing ISNs.
/// </summary>
internal sealed class IsnGenerator
{
    private readonly ulong _k0;
    private readonly ulong _k1;

    /// <param name="secret">At least 16 random bytes, chosen once per boot (the runtime draws them).</param>
    public IsnGenerator(ReadOnlySpan<byte> secret)
    {
        if (secret.Length < 16)
            throw new ArgumentException("The ISN secret must be at least 16 bytes.", nameof(secret));
        _k0 = BinaryPrimitives.ReadUInt64LittleEndian(secret);
        _k1 = BinaryPrimitives.ReadUInt64LittleEndian(secret[8..]);
    }

    public SeqNumber Next(in FourTuple tuple, long nowMicros)
    {
        Span<byte> input = stackalloc byte[36];
        tuple.LocalAddress.WriteTo(input); // 16 bytes for IPv6; IPv4 uses the first 4 and leaves zeros
        tuple.RemoteAddress.WriteTo(input[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[32..], tuple.LocalPort);
        BinaryPrimitives.WriteUInt16BigEndian(input[34..], tuple.RemotePort);
        uint f = (uint)SipHash.Hash(_k0, _k1, input);
        uint m = (uint)(nowMicros / 4); // RFC 6528 §3: M is a 4-microsecond timer
        return new SeqNumber(unchecked(m + f));
    }

    /// <summary>
    /// RFC 6056 §3.3.3 (Algorithm 3, "simple hash-based"): where the search for a free ephemeral port starts, keyed by
    /// the local and remote address and the remote port, so that ports are hard to guess off-path yet successive
    /// connections to one peer walk through the range.
    /// </summary>
    public uint EphemeralPortOffset(IpAddress local, IpAddress remote, ushort remotePort)
    {
        Span<byte> input = stackalloc byte[35];
        local.WriteTo(input);
        remote.WriteTo(input[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[32..], remotePort);
        input[34] = 0x70; // domain separation from the ISN and timestamp functions
        return (uint)SipHash.Hash(_k0, _k1, input);
    }

    /// <summary>
    /// A per-connection offset for the timestamp clock (RFC 7323 §5.4 and Appendix A: a random offset per connection
    /// keeps the host's uptime private). Keyed like the ISN, with the key halves swapped so the two are unrelated.
    /// </summary>
    public uint TimestampOffset(in FourTuple tuple)
    {
        Span<byte> input = stackalloc byte[36];
        tuple.LocalAddress.WriteTo(input);
        tuple.RemoteAddress.WriteTo(input[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[32..], tuple.LocalPort);
        BinaryPrimitives.WriteUInt16BigEndian(input[34..], tuple.RemotePort);
        return (uint)SipHash.Hash(_k1, _k0, input);
    }
}
