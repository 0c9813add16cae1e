using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// A validated, zero-copy view of an ICMPv4 message (RFC 792). <see cref="TryParse"/> checks the length and the
/// checksum once; afterwards every accessor is in bounds. <see cref="Identifier"/> and <see cref="SequenceNumber"/>
/// are the echo fields (bytes 4–7, "rest of header"); for other types they are whatever those bytes hold.
/// </summary>
internal readonly ref struct IcmpV4Packet
{
    // Field offsets (RFC 792, "Echo or Echo Reply Message").
    private const int TypeOffset = 0;
    private const int CodeOffset = 1;
    private const int ChecksumOffset = 2;
    private const int IdentifierOffset = 4;
    private const int SequenceOffset = 6;
    public const int HeaderLength = 8;

    public const byte TypeEchoReply = 0;
    public const byte TypeDestinationUnreachable = 3;
    public const byte TypeEchoRequest = 8;
    public const byte TypeTimeExceeded = 11;
    public const byte TypeParameterProblem = 12;

    private readonly ReadOnlySpan<byte> _message; // the whole ICMP message: header + data

    private IcmpV4Packet(ReadOnlySpan<byte> message) => _message = message;

    public byte Type => _message[TypeOffset];
    public byte Code => _message[CodeOffset];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_message[ChecksumOffset..]);
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_message[IdentifierOffset..]);
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_message[SequenceOffset..]);
    public ReadOnlySpan<byte> Payload => _message[HeaderLength..];
    public int Length => _message.Length;
    public ReadOnlySpan<byte> Bytes => _message;

    public bool IsEchoRequest => Type == TypeEchoRequest && Code == 0;

    public const byte CodeProtocolUnreachable = 2;
    public const byte CodePortUnreachable = 3;
    public const byte CodeFragmentationNeeded = 4;

    /// <summary>Destination unreachable, code 4: the MTU of the next hop (RFC 1191 §4), or 0 from an old router.</summary>
    public ushort NextHopMtu => BinaryPrimitives.ReadUInt16BigEndian(_message[SequenceOffset..]);

    /// <summary>
    /// An error message (destination unreachable, time exceeded) quotes the IP header and at least 8 bytes of the
    /// datagram that caused it (RFC 792). For a quoted TCP segment, reads its addresses, ports and sequence number;
    /// false when the quote is not a well-formed IPv4 header followed by 8 bytes of TCP.
    /// </summary>
    public bool TryGetQuotedTcp(out IpAddress source, out IpAddress destination, out ushort sourcePort,
        out ushort destinationPort, out uint sequence)
    {
        source = destination = default;
        sourcePort = destinationPort = 0;
        sequence = 0;
        var quote = Payload;
        if (quote.Length < Ipv4Packet.MinHeaderLength || quote[0] >> 4 != 4)
            return false;
        int headerLength = (quote[0] & 0x0F) * 4;
        if (headerLength < Ipv4Packet.MinHeaderLength || quote.Length < headerLength + 8 || quote[9] != IpProtocol.Tcp)
            return false;
        source = IpAddress.FromV4(quote.Slice(12, 4));
        destination = IpAddress.FromV4(quote.Slice(16, 4));
        var tcp = quote[headerLength..];
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(tcp);
        destinationPort = BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]);
        sequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        return true;
    }

    /// <summary>
    /// Validates <paramref name="buffer"/> (the IPv4 payload, exactly) as an ICMP message: at least 8 bytes and a
    /// checksum over the whole message that verifies (RFC 792: the one's complement sum including the checksum is 0).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, out IcmpV4Packet packet, out DropReason reason)
    {
        packet = default;
        if (buffer.Length < HeaderLength) { reason = DropReason.TooShort; return false; }
        if (Wire.Checksum.Compute(buffer) != 0) { reason = DropReason.BadIcmpChecksum; return false; }
        packet = new IcmpV4Packet(buffer);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// Writes an 8-byte echo header (type, code 0, identifier, sequence) with a zero checksum. Put the payload at
    /// offset 8, then call <see cref="WriteChecksum"/> over the whole message.
    /// </summary>
    public static void WriteEchoHeader(Span<byte> destination, byte type, ushort identifier, ushort sequence)
    {
        var h = destination[..HeaderLength];
        h[TypeOffset] = type;
        h[CodeOffset] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(h[IdentifierOffset..], identifier);
        BinaryPrimitives.WriteUInt16BigEndian(h[SequenceOffset..], sequence);
    }

    /// <summary>Computes and stores the checksum of a complete ICMP message (header + data) in place.</summary>
    public static void WriteChecksum(Span<byte> message)
    {
        BinaryPrimitives.WriteUInt16BigEndian(message[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(message[ChecksumOffset..], Wire.Checksum.Compute(message));
    }
}
