using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// A validated, zero-copy view of an IPv6 packet (RFC 8200 §3). <c>TryParse</c> checks the version and the
/// Payload Length against the buffer, then walks the extension headers (RFC 8200 §4) with every length checked:
/// Hop-by-Hop Options, Routing (Segments Left 0) and Destination Options are skipped, an atomic Fragment header
/// (RFC 6946) is skipped, a real fragment is rejected (no reassembly). Afterwards <see cref="Protocol"/> is the
/// upper-layer Next Header value and <see cref="Payload"/> its bytes, and every accessor is in bounds.
/// </summary>
internal readonly ref struct Ipv6Packet
{
    // Field offsets (RFC 8200 §3), named in one place.
    private const int VersionClassFlowOffset = 0;
    private const int PayloadLengthOffset = 4;
    private const int NextHeaderOffset = 6;
    private const int HopLimitOffset = 7;
    private const int SourceOffset = 8;
    private const int DestinationOffset = 24;
    public const int HeaderLength = 40;

    /// <summary>Every link that carries IPv6 has at least this MTU (RFC 8200 §5).</summary>
    public const int MinimumMtu = 1280;

    // Extension headers the parser walks (RFC 8200 §4.1) and "no next header" (§4.7).
    public const byte HopByHopOptions = 0;
    public const byte RoutingHeader = 43;
    public const byte FragmentHeader = 44;
    public const byte NoNextHeader = 59;
    public const byte DestinationOptions = 60;

    // Options inside Hop-by-Hop and Destination Options headers (RFC 8200 §4.2).
    private const byte Pad1 = 0;
    private const byte PadN = 1;

    private readonly ReadOnlySpan<byte> _packet; // exactly 40 + Payload Length bytes, or fewer for a quoted packet
    private readonly int _upperLayerOffset;
    private readonly byte _protocol;

    private Ipv6Packet(ReadOnlySpan<byte> packet, int upperLayerOffset, byte protocol)
    {
        _packet = packet;
        _upperLayerOffset = upperLayerOffset;
        _protocol = protocol;
    }

    public byte TrafficClass => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_packet) >> 4);
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(_packet) & 0xFFFFF;

    /// <summary>The Payload Length field: bytes after the fixed header, extension headers included.</summary>
    public int PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_packet[PayloadLengthOffset..]);

    /// <summary>The Next Header field of the fixed header (an extension header or the upper-layer protocol).</summary>
    public byte NextHeader => _packet[NextHeaderOffset];
    public byte HopLimit => _packet[HopLimitOffset];
    public IpAddress Source => IpAddress.FromV6(_packet.Slice(SourceOffset, 16));
    public IpAddress Destination => IpAddress.FromV6(_packet.Slice(DestinationOffset, 16));

    /// <summary>The upper-layer protocol: the Next Header value that follows the last extension header.</summary>
    public byte Protocol => _protocol;

    /// <summary>Bytes of extension headers between the fixed header and the upper-layer payload.</summary>
    public int ExtensionHeadersLength => _upperLayerOffset - HeaderLength;

    public int TotalLength => _packet.Length;
    public ReadOnlySpan<byte> Header => _packet[..HeaderLength];

    /// <summary>The upper-layer message (for TCP, the segment; for ICMPv6, the message).</summary>
    public ReadOnlySpan<byte> Payload => _packet[_upperLayerOffset..];

    /// <summary>
    /// Validates <paramref name="buffer"/> as an IPv6 packet addressed to a host. Trailing bytes past the Payload
    /// Length are ignored (link padding); a Payload Length past the buffer is rejected.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, out Ipv6Packet packet, out DropReason reason) =>
        TryParse(buffer, quoted: false, out packet, out reason);

    /// <summary>
    /// Validates the start of a packet quoted in an ICMPv6 error message (RFC 4443 §2.4 (c): "as much of the
    /// invoking packet as possible"): its Payload Length may exceed the bytes present, which are all we walk.
    /// </summary>
    public static bool TryParseQuoted(ReadOnlySpan<byte> buffer, out Ipv6Packet packet, out DropReason reason) =>
        TryParse(buffer, quoted: true, out packet, out reason);

    private static bool TryParse(ReadOnlySpan<byte> buffer, bool quoted, out Ipv6Packet packet, out DropReason reason)
    {
        packet = default;
        if (buffer.Length < HeaderLength) { reason = DropReason.TooShort; return false; }
        if (buffer[VersionClassFlowOffset] >> 4 != 6) { reason = DropReason.BadIpVersion; return false; }

        int end = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(buffer[PayloadLengthOffset..]);
        if (end > buffer.Length)
        {
            if (!quoted) { reason = DropReason.BadIpv6PayloadLength; return false; }
            end = buffer.Length;
        }
        // Jumbograms (RFC 2675) are not supported: their Payload Length is zero, so the Hop-by-Hop header that
        // carries the Jumbo Payload option lies past it and the walk below rejects the packet.

        int offset = HeaderLength;
        byte next = buffer[NextHeaderOffset];
        while (true)
        {
            switch (next)
            {
                case HopByHopOptions when offset != HeaderLength:
                    // RFC 8200 §4.1: Hop-by-Hop Options may only appear immediately after the IPv6 header.
                    reason = DropReason.BadIpv6ExtensionHeader;
                    return false;

                case HopByHopOptions or DestinationOptions:
                {
                    if (!TryExtensionLength(buffer, offset, end, out int length)) { reason = DropReason.BadIpv6ExtensionHeader; return false; }
                    if (!TryWalkOptions(buffer.Slice(offset + 2, length - 2), out reason)) return false;
                    next = buffer[offset];
                    offset += length;
                    break;
                }

                case RoutingHeader:
                {
                    if (!TryExtensionLength(buffer, offset, end, out int length)) { reason = DropReason.BadIpv6ExtensionHeader; return false; }
                    // RFC 8200 §4.4: with Segments Left zero the header is ignored; otherwise the packet is meant to
                    // travel on to the next listed address, which a host does not do.
                    if (buffer[offset + 3] != 0) { reason = DropReason.RoutingHeaderSegmentsLeft; return false; }
                    next = buffer[offset];
                    offset += length;
                    break;
                }

                case FragmentHeader:
                {
                    // RFC 8200 §4.5: 8 bytes; offset (13 bits), 2 reserved bits, M flag; identification.
                    if (end - offset < 8) { reason = DropReason.BadIpv6ExtensionHeader; return false; }
                    ushort offsetAndFlags = BinaryPrimitives.ReadUInt16BigEndian(buffer[(offset + 2)..]);
                    // RFC 6946 §4: an "atomic fragment" (offset 0, M clear) is a whole packet and MUST be processed
                    // as one. Any other fragment would need reassembly, which the stack does not do.
                    if ((offsetAndFlags & 0xFFF9) != 0) { reason = DropReason.IpFragment; return false; }
                    next = buffer[offset];
                    offset += 8;
                    break;
                }

                default:
                    packet = new Ipv6Packet(buffer[..end], offset, next);
                    reason = DropReason.None;
                    return true;
            }
        }
    }

    /// <summary>Length of a Hop-by-Hop, Destination Options or Routing header: (Hdr Ext Len + 1) × 8 (RFC 8200 §4.3).</summary>
    private static bool TryExtensionLength(ReadOnlySpan<byte> buffer, int offset, int end, out int length)
    {
        length = 0;
        if (end - offset < 8)
            return false;
        length = (buffer[offset + 1] + 1) * 8;
        return length <= end - offset;
    }

    /// <summary>
    /// Walks the options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2): every option must lie
    /// inside the header; an option we do not recognise is skipped when the two high-order bits of its type are
    /// 00, and otherwise the packet is discarded (we send no Parameter Problem).
    /// </summary>
    private static bool TryWalkOptions(ReadOnlySpan<byte> options, out DropReason reason)
    {
        int i = 0;
        while (i < options.Length)
        {
            byte type = options[i];
            if (type == Pad1)
            {
                i++;
                continue;
            }
            if (options.Length - i < 2 || options.Length - i - 2 < options[i + 1])
            {
                reason = DropReason.BadIpv6ExtensionHeader;
                return false;
            }
            // PadN and every option whose action bits are 00 (Router Alert, Tunnel Encapsulation Limit, ...) are
            // skipped; nothing else is recognised by a host that neither forwards nor does Mobile IPv6.
            if (type != PadN && (type & 0xC0) != 0)
            {
                reason = DropReason.Ipv6UnrecognizedOption;
                return false;
            }
            i += 2 + options[i + 1];
        }
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// Writes a 40-byte IPv6 header (no extension headers) into <paramref name="destination"/>. A zero flow label
    /// marks the packet as unlabelled (RFC 6437 §2).
    /// </summary>
    public static void WriteHeader(Span<byte> destination, IpAddress source, IpAddress target, byte nextHeader,
        int payloadLength, byte hopLimit = 64, byte trafficClass = 0, uint flowLabel = 0)
    {
        var h = destination[..HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(h, 6u << 28 | (uint)trafficClass << 20 | (flowLabel & 0xFFFFF));
        BinaryPrimitives.WriteUInt16BigEndian(h[PayloadLengthOffset..], (ushort)payloadLength);
        h[NextHeaderOffset] = nextHeader;
        h[HopLimitOffset] = hopLimit;
        WriteV6(h.Slice(SourceOffset, 16), source);
        WriteV6(h.Slice(DestinationOffset, 16), target);
    }

    /// <summary>All 16 bytes, also for an address held in IPv4-mapped form (which an IPv6 header never carries here).</summary>
    private static void WriteV6(Span<byte> destination, IpAddress address)
    {
        if (address.IsV4)
        {
            destination[..10].Clear();
            destination[10] = 0xFF;
            destination[11] = 0xFF;
            address.WriteTo(destination[12..]);
        }
        else
        {
            address.WriteTo(destination);
        }
    }
}
