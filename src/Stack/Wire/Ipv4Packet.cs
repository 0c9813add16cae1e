using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// A validated, zero-copy view of an IPv4 packet (RFC 791 §3.1).
/// <see cref="TryParse"/> checks version, header length, total length and header checksum once;
/// afterwards every accessor is in bounds.
/// </summary>
internal readonly ref struct Ipv4Packet
{
    // Field offsets (RFC 791 §3.1), named in one place.
    private const int VersionIhlOffset = 0;
    private const int TotalLengthOffset = 2;
    private const int IdentificationOffset = 4;
    private const int FlagsFragmentOffset = 6;
    private const int TtlOffset = 8;
    private const int ProtocolOffset = 9;
    private const int ChecksumOffset = 10;
    private const int SourceOffset = 12;
    private const int DestinationOffset = 16;
    public const int MinHeaderLength = 20;

    private const ushort MoreFragmentsFlag = 0x2000;
    private const ushort FragmentOffsetMask = 0x1FFF;

    private readonly ReadOnlySpan<byte> _packet; // exactly TotalLength bytes

    private Ipv4Packet(ReadOnlySpan<byte> packet) => _packet = packet;

    public int HeaderLength => (_packet[VersionIhlOffset] & 0x0F) * 4;
    public int TotalLength => _packet.Length;
    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_packet[IdentificationOffset..]);
    public byte Ttl => _packet[TtlOffset];
    public byte Protocol => _packet[ProtocolOffset];
    public ushort HeaderChecksum => BinaryPrimitives.ReadUInt16BigEndian(_packet[ChecksumOffset..]);
    public IpAddress Source => IpAddress.FromV4(_packet.Slice(SourceOffset, 4));
    public IpAddress Destination => IpAddress.FromV4(_packet.Slice(DestinationOffset, 4));
    public bool DontFragment => (BinaryPrimitives.ReadUInt16BigEndian(_packet[FlagsFragmentOffset..]) & 0x4000) != 0;

    /// <summary>True when this is one piece of a fragmented datagram (MF set or a non-zero offset).</summary>
    public bool IsFragment => (BinaryPrimitives.ReadUInt16BigEndian(_packet[FlagsFragmentOffset..]) & (MoreFragmentsFlag | FragmentOffsetMask)) != 0;

    public ReadOnlySpan<byte> Header => _packet[..HeaderLength];
    public ReadOnlySpan<byte> Payload => _packet[HeaderLength..];

    /// <summary>
    /// Validates <paramref name="buffer"/> as an IPv4 packet. Trailing bytes past Total Length (link padding) are
    /// ignored; a Total Length larger than the buffer is rejected.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, out Ipv4Packet packet, out DropReason reason)
    {
        packet = default;
        if (buffer.Length < MinHeaderLength) { reason = DropReason.TooShort; return false; }
        if (buffer[VersionIhlOffset] >> 4 != 4) { reason = DropReason.BadIpVersion; return false; }

        int headerLength = (buffer[VersionIhlOffset] & 0x0F) * 4;
        if (headerLength < MinHeaderLength) { reason = DropReason.BadIpHeaderLength; return false; }

        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(buffer[TotalLengthOffset..]);
        if (totalLength < headerLength || totalLength > buffer.Length) { reason = DropReason.BadIpTotalLength; return false; }

        // The header checksum over a correct header (checksum field included) sums to 0xFFFF (RFC 791 §3.1).
        if (Checksum.Compute(buffer[..headerLength]) != 0) { reason = DropReason.BadIpChecksum; return false; }

        packet = new Ipv4Packet(buffer[..totalLength]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// Writes a 20-byte IPv4 header (no options) into <paramref name="destination"/> with its checksum.
    /// </summary>
    public static void WriteHeader(Span<byte> destination, IpAddress source, IpAddress target, byte protocol,
        int payloadLength, ushort identification, byte ttl = 64, bool dontFragment = true)
    {
        var h = destination[..MinHeaderLength];
        h[VersionIhlOffset] = 0x45;
        h[1] = 0; // DSCP/ECN
        BinaryPrimitives.WriteUInt16BigEndian(h[TotalLengthOffset..], (ushort)(MinHeaderLength + payloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(h[IdentificationOffset..], identification);
        BinaryPrimitives.WriteUInt16BigEndian(h[FlagsFragmentOffset..], dontFragment ? (ushort)0x4000 : (ushort)0);
        h[TtlOffset] = ttl;
        h[ProtocolOffset] = protocol;
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], 0);
        source.WriteTo(h[SourceOffset..]);
        target.WriteTo(h[DestinationOffset..]);
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], Checksum.Compute(h));
    }
}
