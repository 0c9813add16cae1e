using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// A validated, zero-copy view of a TCP segment (RFC 9293 §3.1). <see cref="TryParse"/> checks the data offset
/// once; accessors never read out of bounds. The checksum needs the IP pseudo-header, so it is verified by
/// <see cref="VerifyChecksum"/>.
/// </summary>
internal readonly ref struct TcpSegment
{
    // Field offsets (RFC 9293 §3.1 Figure 1).
    private const int SourcePortOffset = 0;
    private const int DestinationPortOffset = 2;
    private const int SequenceOffset = 4;
    private const int AcknowledgmentOffset = 8;
    private const int DataOffsetOffset = 12;
    private const int FlagsOffset = 13;
    private const int WindowOffset = 14;
    private const int ChecksumOffset = 16;
    private const int UrgentPointerOffset = 18;
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;

    private readonly ReadOnlySpan<byte> _segment;

    private TcpSegment(ReadOnlySpan<byte> segment) => _segment = segment;

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_segment[SourcePortOffset..]);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_segment[DestinationPortOffset..]);
    public uint SequenceNumber => BinaryPrimitives.ReadUInt32BigEndian(_segment[SequenceOffset..]);
    public uint AcknowledgmentNumber => BinaryPrimitives.ReadUInt32BigEndian(_segment[AcknowledgmentOffset..]);
    public int HeaderLength => (_segment[DataOffsetOffset] >> 4) * 4;
    public TcpFlags Flags => (TcpFlags)_segment[FlagsOffset];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_segment[WindowOffset..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_segment[ChecksumOffset..]);
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_segment[UrgentPointerOffset..]);
    public ReadOnlySpan<byte> Options => _segment[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Payload => _segment[HeaderLength..];
    public int Length => _segment.Length;
    public ReadOnlySpan<byte> Bytes => _segment;

    public bool Has(TcpFlags flag) => (Flags & flag) == flag;

    /// <summary>
    /// Validates the fixed header and the data offset (RFC 9293 §3.1: 5 ≤ offset, header within segment), and that
    /// neither port is 0: port 0 is reserved (RFC 6335 §6), no connection can have it, and answering such a segment
    /// (with a RST to port 0, say) would only serve a scanner or a spoofer.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> buffer, out TcpSegment segment, out DropReason reason)
    {
        segment = default;
        if (buffer.Length < MinHeaderLength) { reason = DropReason.TooShort; return false; }
        int headerLength = (buffer[DataOffsetOffset] >> 4) * 4;
        if (headerLength < MinHeaderLength || headerLength > buffer.Length) { reason = DropReason.BadTcpDataOffset; return false; }
        if (BinaryPrimitives.ReadUInt16BigEndian(buffer[SourcePortOffset..]) == 0
            || BinaryPrimitives.ReadUInt16BigEndian(buffer[DestinationPortOffset..]) == 0)
        {
            reason = DropReason.BadTcpPort;
            return false;
        }
        segment = new TcpSegment(buffer);
        reason = DropReason.None;
        return true;
    }

    /// <summary>True when the checksum over pseudo-header, header and payload is correct (RFC 9293 §3.1).</summary>
    public bool VerifyChecksum(IpAddress source, IpAddress destination)
    {
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.Tcp, _segment.Length);
        return Wire.Checksum.Finish(Wire.Checksum.Add(sum, _segment)) == 0;
    }

    /// <summary>
    /// Writes a TCP header with <paramref name="optionsLength"/> bytes of options already placed at offset 20
    /// (the length must be a multiple of 4). The checksum is left zero: call <see cref="WriteChecksum"/> once the
    /// payload is in place.
    /// </summary>
    public static void WriteHeader(Span<byte> destination, ushort sourcePort, ushort destinationPort, uint sequence,
        uint acknowledgment, TcpFlags flags, ushort window, int optionsLength)
    {
        var h = destination[..(MinHeaderLength + optionsLength)];
        BinaryPrimitives.WriteUInt16BigEndian(h[SourcePortOffset..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(h[DestinationPortOffset..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(h[SequenceOffset..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(h[AcknowledgmentOffset..], acknowledgment);
        h[DataOffsetOffset] = (byte)(((MinHeaderLength + optionsLength) / 4) << 4);
        h[FlagsOffset] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(h[WindowOffset..], window);
        BinaryPrimitives.WriteUInt16BigEndian(h[ChecksumOffset..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(h[UrgentPointerOffset..], 0);
    }

    /// <summary>
    /// For checksum offload: stores only the pseudo-header sum, folded and not complemented, for the device to
    /// complete over the segment (virtio-net NEEDS_CSUM; Linux's CHECKSUM_PARTIAL).
    /// </summary>
    public static void WritePartialChecksum(Span<byte> segment, IpAddress source, IpAddress destination)
    {
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.Tcp, segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], (ushort)~Wire.Checksum.Finish(sum));
    }

    /// <summary>Completes a partial checksum (see <see cref="WritePartialChecksum"/>) as the device would.</summary>
    public static void CompletePartialChecksum(Span<byte> segment)
    {
        ushort checksum = Wire.Checksum.Compute(segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], checksum);
    }

    /// <summary>Computes and stores the checksum of a complete segment (header + payload) in place.</summary>
    public static void WriteChecksum(Span<byte> segment, IpAddress source, IpAddress destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], 0);
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.Tcp, segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], Wire.Checksum.Finish(Wire.Checksum.Add(sum, segment)));
    }

    /// <summary>
    /// Computes and stores the checksum of a complete segment whose payload has been summed already (by
    /// <see cref="Wire.Checksum.CopyAndAdd(ReadOnlySpan{byte}, Span{byte}, uint)"/> while it was copied in): only the
    /// pseudo-header and the <paramref name="headerLength"/> header bytes are read here.
    /// </summary>
    /// <param name="segment">Header and payload, exactly the segment's length.</param>
    /// <param name="headerLength">The header's length, a multiple of 4 (so the payload's words start at an even offset).</param>
    /// <param name="payloadSum">The partial sum of the payload bytes <c>segment[headerLength..]</c>, starting from 0.</param>
    /// <param name="source">The IP source address, for the pseudo-header.</param>
    /// <param name="destination">The IP destination address, for the pseudo-header.</param>
    public static void WriteChecksum(Span<byte> segment, int headerLength, uint payloadSum, IpAddress source, IpAddress destination)
    {
        if ((headerLength & 3) != 0 || headerLength < MinHeaderLength || headerLength > segment.Length)
            throw new ArgumentOutOfRangeException(nameof(headerLength), headerLength, "A TCP header is 20 to 60 bytes in 32-bit words.");
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], 0);
        uint sum = Wire.Checksum.PseudoHeader(source, destination, IpProtocol.Tcp, segment.Length);
        sum = Wire.Checksum.Add(sum + payloadSum, segment[..headerLength]);
        BinaryPrimitives.WriteUInt16BigEndian(segment[ChecksumOffset..], Wire.Checksum.Finish(sum));
    }
}
