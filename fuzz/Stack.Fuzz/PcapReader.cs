using System.Buffers.Binary;

namespace TunStack.Fuzz;

/// <summary>
/// Reads the IPv4 packets of a classic pcap file (the tcpdump -w format) with their timestamps. Understands the
/// link types tcpdump writes for a TUN device (raw IP), an Ethernet or veth device, and "any" (Linux cooked v1/v2).
/// </summary>
internal static class PcapReader
{
    private const uint MagicMicros = 0xA1B2C3D4;
    private const uint MagicNanos = 0xA1B23C4D;

    /// <summary>One captured IPv4 packet and its capture time in microseconds.</summary>
    public readonly record struct CapturedPacket(long TimeMicros, byte[] Packet);

    public static List<CapturedPacket> ReadIpv4Packets(string path)
    {
        var file = File.ReadAllBytes(path);
        if (file.Length < 24)
            throw new InvalidDataException($"{path}: not a pcap file (too short)");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        bool bigEndian = magic is not (MagicMicros or MagicNanos);
        if (bigEndian) magic = BinaryPrimitives.ReverseEndianness(magic);
        if (magic is not (MagicMicros or MagicNanos))
            throw new InvalidDataException($"{path}: not a classic pcap file (pcapng is not supported: use tcpdump -w)");
        bool nanos = magic == MagicNanos;
        uint U32(int offset) => bigEndian
            ? BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(offset))
            : BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(offset));
        uint linkType = U32(20) & 0x0FFF_FFFF;

        var packets = new List<CapturedPacket>();
        int offset = 24;
        while (offset + 16 <= file.Length)
        {
            long seconds = U32(offset);
            long fraction = U32(offset + 4);
            int captured = (int)U32(offset + 8);
            offset += 16;
            if (captured < 0 || offset + captured > file.Length)
                break; // a truncated last record
            var frame = file.AsSpan(offset, captured);
            offset += captured;
            if (TryGetIpv4(frame, linkType, out var ip))
                packets.Add(new CapturedPacket(seconds * 1_000_000 + (nanos ? fraction / 1000 : fraction), ip.ToArray()));
        }
        return packets;
    }

    private static bool TryGetIpv4(ReadOnlySpan<byte> frame, uint linkType, out ReadOnlySpan<byte> ip)
    {
        ip = default;
        int headerLength;
        switch (linkType)
        {
            case 1: // Ethernet
                if (frame.Length < 14 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800) return false;
                headerLength = 14;
                break;
            case 12 or 101 or 228: // raw IP, raw IPv4
                headerLength = 0;
                break;
            case 113: // Linux cooked capture v1
                if (frame.Length < 16 || BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) != 0x0800) return false;
                headerLength = 16;
                break;
            case 276: // Linux cooked capture v2
                if (frame.Length < 20 || BinaryPrimitives.ReadUInt16BigEndian(frame) != 0x0800) return false;
                headerLength = 20;
                break;
            default:
                return false;
        }
        ip = frame[headerLength..];
        return !ip.IsEmpty && ip[0] >> 4 == 4;
    }
}
