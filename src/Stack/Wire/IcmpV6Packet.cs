using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// A validated, zero-copy view of an ICMPv6 message (RFC 4443 §2.1). <see cref="TryParse"/> checks the length and
/// the checksum, which covers an IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1); afterwards every accessor is
/// in bounds. Every ICMPv6 message has at least the 4-byte type/code/checksum header and a 4-byte field after it:
/// identifier and sequence number for echo (§4.1), the MTU for Packet Too Big (§3.2), unused or a pointer otherwise.
/// </summary>
internal readonly ref struct IcmpV6Packet
{
    // Field offsets (RFC 4443 §2.1, §3.2, §4.1).
    private const int TypeOffset = 0;
    private const int CodeOffset = 1;
    private const int ChecksumOffset = 2;
    private const int IdentifierOffset = 4;
    private const int SequenceOffset = 6;
    private const int MtuOffset = 4;
    public const int HeaderLength = 8;

    // Error messages have types 0-127, informational messages 128-255 (RFC 4443 §2.1).
    public const byte TypeDestinationUnreachable = 1;
    public const byte TypePacketTooBig = 2;
    public const byte TypeTimeExceeded = 3;
    public const byte TypeParameterProblem = 4;
    public const byte TypeEchoRequest = 128;
    public const byte TypeEchoReply = 129;
    public const byte TypeRouterSolicitation = 133;
    public const byte TypeNeighborSolicitation = 135;

    private readonly ReadOnlySpan<byte> _message; // the whole ICMPv6 message

    private IcmpV6Packet(ReadOnlySpan<byte> message) => _message = message;

    public byte Type => _message[TypeOffset];
    public byte Code => _message[CodeOffset];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_message[ChecksumOffset..]);

    /// <summary>Echo identifier (bytes 4-5; meaningful for echo request and reply).</summary>
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_message[IdentifierOffset..]);

    /// <summary>Echo sequence number (bytes 6-7; meaningful for echo request and reply).</summary>
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_message[SequenceOffset..]);

    /// <summary>The next-hop MTU of a Packet Too Big message (bytes 4-7, RFC 4443 §3.2).</summary>
    public uint Mtu => BinaryPrimitives.ReadUInt32BigEndian(_message[MtuOffset..]);

    /// <summary>
    /// What follows the first 8 bytes: the echo data, or for an error message the invoking packet, "as much of
    /// it as possible without the ICMPv6 packet exceeding the minimum IPv6 MTU" (RFC 4443 §3).
    /// </summary>
    public ReadOnlySpan<byte> Payload => _message[HeaderLength..];

    public int Length => _message.Length;
    public ReadOnlySpan<byte> Bytes => _message;

    public bool IsError => Type < 128;

    /// <summary>
    /// An error message quotes as much of the offending packet as fits (RFC 4443 §2.4 (c)). For a quoted TCP segment
    /// (directly after the IPv6 header), reads its addresses, ports and sequence number; false otherwise.
    /// </summary>
    public bool TryGetQuotedTcp(out IpAddress source, out IpAddress destination, out ushort sourcePort,
        out ushort destinationPort, out uint sequence)
    {
        source = destination = default;
        sourcePort = destinationPort = 0;
        sequence = 0;
        if (!IsError || !Ipv6Packet.TryParseQuoted(Payload, out var quoted, out _) || quoted.Protocol != IpProtocol.Tcp)
            return false;
        var tcp = quoted.Payload;
        if (tcp.Length < 8)
            return false;
        source = quoted.Source;
        destination = quoted.Destination;
        sourcePort = BinaryPrimitives.ReadUInt16BigEndian(tcp);
        destinationPort = BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]);
        sequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        return true;
    }
    public bool IsEchoRequest => Type == TypeEchoRequest && Code == 0;

    /// <summary>
    /// Validates <paramref name="buffer"/> (the upper-layer payload of an IPv6 packet from <paramref name="source"/>
    /// to <paramref name="destination"/>, exactly) as an ICMPv6 message: at least 8 bytes, and a checksum over the
    /// pseudo-header and the message that verifies (RFC 4443 §2.3).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, IpAddress source, IpAddress destination,
        out IcmpV6Packet packet, out DropReason reason)
    {
        packet = default;
        if (buffer.Length < HeaderLength) { reason = DropReason.TooShort; return false; }
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.IcmpV6, buffer.Length);
        if (Wire.Checksum.Finish(Wire.Checksum.Add(sum, buffer)) != 0) { reason = DropReason.BadIcmpChecksum; return false; }
        packet = new IcmpV6Packet(buffer);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// Writes an 8-byte echo header (type, code 0, identifier, sequence) with a zero checksum. Put the data at
    /// offset 8, then call <see cref="WriteChecksum"/> over the whole message.
    /// </summary>
    public static void WriteEchoHeader(Span<byte> destination, byte type, ushort identifier, ushort sequence)
    {
        WriteHeader(destination, type, 0, 0);
        BinaryPrimitives.WriteUInt16BigEndian(destination[IdentifierOffset..], identifier);
        BinaryPrimitives.WriteUInt16BigEndian(destination[SequenceOffset..], sequence);
    }

    /// <summary>
    /// Writes an 8-byte header: type, code, zero checksum, and the 32-bit field that follows (the MTU of a
    /// Packet Too Big, the pointer of a Parameter Problem, zero for the other errors).
    /// </summary>
    public static void WriteHeader(Span<byte> destination, byte type, byte code, uint field)
    {
        var h = destination[..HeaderLength];
        h[TypeOffset] = type;
        h[CodeOffset] = code;
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(h[MtuOffset..], field);
    }

    /// <summary>Computes and stores the checksum of a complete message (pseudo-header included, RFC 4443 §2.3) in place.</summary>
    public static void WriteChecksum(Span<byte> message, IpAddress source, IpAddress destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(message[ChecksumOffset..], 0);
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.IcmpV6, message.Length);
        BinaryPrimitives.WriteUInt16BigEndian(message[ChecksumOffset..], Wire.Checksum.Finish(Wire.Checksum.Add(sum, message)));
    }
}
