using System.Buffers.Binary;

namespace TunStack.Linux;

/// <summary>
/// The 10-byte <c>struct virtio_net_hdr</c> that precedes every packet read from or written to a TUN device opened with
/// IFF_VNET_HDR (linux/virtio_net.h), in the host's byte order (little-endian on x86-64 and arm64): flags, gso_type,
/// hdr_len, gso_size, csum_start, csum_offset. It carries the offload metadata the stack calls <see cref="PacketInfo"/>.
/// </summary>
internal static class VirtioNetHeader
{
    public const int Length = 10;

    public const byte FlagNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
    public const byte FlagDataValid = 2;      // VIRTIO_NET_HDR_F_DATA_VALID
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoTcpV6 = 4;
    public const byte GsoEcn = 0x80;

    /// <summary>The metadata of a packet the kernel handed us. hdr_len and csum_start are not needed (nor trusted).</summary>
    public static PacketInfo Read(ReadOnlySpan<byte> header)
    {
        byte flags = header[0];
        byte gsoType = (byte)(header[1] & ~GsoEcn);
        ushort gsoSize = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        var checksum = (flags & FlagNeedsChecksum) != 0 ? ChecksumStatus.Partial
            : (flags & FlagDataValid) != 0 ? ChecksumStatus.Verified
            : ChecksumStatus.Complete;
        var segmentation = gsoType switch
        {
            GsoTcpV4 => SegmentationKind.TcpV4,
            GsoTcpV6 => SegmentationKind.TcpV6,
            _ => SegmentationKind.None,
        };
        return new PacketInfo
        {
            Checksum = checksum,
            Segmentation = segmentation,
            SegmentSize = segmentation == SegmentationKind.None ? (ushort)0 : gsoSize,
        };
    }

    /// <summary>
    /// The header for a packet we write: for a partial checksum, where the TCP header starts and where its checksum
    /// field is; for a super-packet, the segment size and the length of the IP and TCP headers — computed from the packet
    /// itself. Returns false when the metadata asks for something the packet cannot support (not TCP).
    /// </summary>
    public static bool TryWrite(Span<byte> header, ReadOnlySpan<byte> packet, in PacketInfo info)
    {
        header[..Length].Clear();
        if (info.IsPlain)
            return true;
        if (!TryLocateTcp(packet, out int tcpOffset, out int tcpHeaderLength))
            return false;
        if (info.Checksum == ChecksumStatus.Partial)
        {
            header[0] = FlagNeedsChecksum;
            BinaryPrimitives.WriteUInt16LittleEndian(header[6..], (ushort)tcpOffset); // csum_start
            BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 16);                 // csum_offset: TCP checksum field
        }
        if (info.Segmentation != SegmentationKind.None)
        {
            header[1] = info.Segmentation == SegmentationKind.TcpV4 ? GsoTcpV4 : GsoTcpV6;
            BinaryPrimitives.WriteUInt16LittleEndian(header[2..], (ushort)(tcpOffset + tcpHeaderLength)); // hdr_len
            BinaryPrimitives.WriteUInt16LittleEndian(header[4..], info.SegmentSize);                       // gso_size
        }
        return true;
    }

    private static bool TryLocateTcp(ReadOnlySpan<byte> packet, out int tcpOffset, out int tcpHeaderLength)
    {
        tcpOffset = tcpHeaderLength = 0;
        if (packet.IsEmpty) return false;
        byte protocol;
        if (packet[0] >> 4 == 4 && packet.Length >= 20)
        {
            tcpOffset = (packet[0] & 0x0F) * 4;
            protocol = packet[9];
        }
        else if (packet[0] >> 4 == 6 && packet.Length >= 40)
        {
            tcpOffset = 40;
            protocol = packet[6];
        }
        else
        {
            return false;
        }
        if (protocol != 6 || packet.Length < tcpOffset + 20) return false;
        tcpHeaderLength = (packet[tcpOffset + 12] >> 4) * 4;
        return tcpHeaderLength >= 20 && packet.Length >= tcpOffset + tcpHeaderLength;
    }
}
