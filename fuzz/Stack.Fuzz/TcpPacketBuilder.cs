using System.Buffers.Binary;
using TunStack.Wire;

namespace TunStack.Fuzz;

/// <summary>
/// Describes one IPv4 (or IPv6) packet carrying a TCP segment, field by field, and builds it with correct lengths and
/// checksums. Unlike the stack's own writers it takes the options area as raw bytes and lets every header field be
/// set, so that a test or a harness can put arbitrary content inside a header that still passes the checksums and
/// reaches the state machine. Malformed packets are made by building a valid one and then changing bytes (see
/// <see cref="RecomputeIpChecksum"/> and <see cref="RecomputeTcpChecksum"/> to keep the checksums valid).
/// </summary>
internal sealed class TcpPacketBuilder
{
    public const int IpHeaderLength = 20;
    public const int TcpHeaderLength = 20;
    public const int MaxOptionsLength = 40;

    public IpAddress Source { get; set; } = IpAddress.Parse("198.18.0.1");
    public IpAddress Destination { get; set; } = IpAddress.Parse("198.18.0.2");
    public ushort SourcePort { get; set; } = 40000;
    public ushort DestinationPort { get; set; } = 80;
    public uint Seq { get; set; }
    public uint Ack { get; set; }
    public TcpFlags Flags { get; set; }
    public ushort Window { get; set; } = 65535;
    public ushort UrgentPointer { get; set; }

    /// <summary>The raw options area; padded with zeros (end of option list) to a multiple of 4, at most 40 bytes.</summary>
    public byte[] Options { get; set; } = [];
    public byte[] Payload { get; set; } = [];

    /// <summary>The IP protocol field (6 for TCP).</summary>
    public byte Protocol { get; set; } = IpProtocol.Tcp;
    public byte Ttl { get; set; } = 64;
    public ushort Identification { get; set; } = 1;
    /// <summary>The 16-bit flags and fragment offset word of the IP header; 0x4000 is DF alone.</summary>
    public ushort FlagsAndFragmentOffset { get; set; } = 0x4000;
    /// <summary>IP options (padded with zeros to a multiple of 4, at most 40 bytes).</summary>
    public byte[] IpOptions { get; set; } = [];

    /// <summary>
    /// Builds the packet: IPv4 header, TCP header, options, payload, both checksums correct; with IPv6 addresses, a
    /// 40-byte IPv6 header instead (<see cref="Ttl"/> as the hop limit, <see cref="Protocol"/> as the next header; the
    /// IPv4-only fields are not used) and the TCP checksum over the IPv6 pseudo-header (RFC 8200 §8.1).
    /// </summary>
    public byte[] Build()
    {
        if (!Source.IsV4)
            return BuildIpv6();
        int ipHeaderLength = IpHeaderLength + Pad4(Math.Min(IpOptions.Length, MaxOptionsLength));
        int optionsLength = Pad4(Math.Min(Options.Length, MaxOptionsLength));
        int tcpLength = TcpHeaderLength + optionsLength + Payload.Length;
        var packet = new byte[ipHeaderLength + tcpLength];

        var ip = packet.AsSpan(0, ipHeaderLength);
        ip[0] = (byte)(0x40 | ipHeaderLength / 4);
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)Math.Min(packet.Length, ushort.MaxValue));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], Identification);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], FlagsAndFragmentOffset);
        ip[8] = Ttl;
        ip[9] = Protocol;
        Source.WriteTo(ip[12..]);
        Destination.WriteTo(ip[16..]);
        IpOptions.AsSpan(0, Math.Min(IpOptions.Length, MaxOptionsLength)).CopyTo(ip[IpHeaderLength..]);

        var tcp = packet.AsSpan(ipHeaderLength);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], Ack);
        tcp[12] = (byte)((TcpHeaderLength + optionsLength) / 4 << 4);
        tcp[13] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], Window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[18..], UrgentPointer);
        Options.AsSpan(0, Math.Min(Options.Length, MaxOptionsLength)).CopyTo(tcp[TcpHeaderLength..]);
        Payload.CopyTo(tcp[(TcpHeaderLength + optionsLength)..]);

        RecomputeTcpChecksum(packet);
        RecomputeIpChecksum(packet);
        return packet;
    }

    private byte[] BuildIpv6()
    {
        int optionsLength = Pad4(Math.Min(Options.Length, MaxOptionsLength));
        int tcpLength = TcpHeaderLength + optionsLength + Payload.Length;
        var packet = new byte[Ipv6Packet.HeaderLength + tcpLength];
        Ipv6Packet.WriteHeader(packet, Source, Destination, Protocol, tcpLength, Ttl);

        var tcp = packet.AsSpan(Ipv6Packet.HeaderLength);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], Ack);
        tcp[12] = (byte)((TcpHeaderLength + optionsLength) / 4 << 4);
        tcp[13] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], Window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[18..], UrgentPointer);
        Options.AsSpan(0, Math.Min(Options.Length, MaxOptionsLength)).CopyTo(tcp[TcpHeaderLength..]);
        Payload.CopyTo(tcp[(TcpHeaderLength + optionsLength)..]);
        uint sum = Checksum.PseudoHeader(Source, Destination, IpProtocol.Tcp, tcp.Length);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Finish(Checksum.Add(sum, tcp)));
        return packet;
    }

    /// <summary>Rewrites the IPv4 header checksum of <paramref name="packet"/> for its current header length.</summary>
    public static void RecomputeIpChecksum(Span<byte> packet)
    {
        int headerLength = Math.Clamp((packet[0] & 0x0F) * 4, IpHeaderLength, packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], Checksum.Compute(packet[..headerLength]));
    }

    /// <summary>
    /// Rewrites the TCP checksum of the segment that follows the IPv4 header of <paramref name="packet"/>, over the
    /// bytes up to the IP total length (or the end of the buffer, whichever comes first).
    /// </summary>
    public static void RecomputeTcpChecksum(Span<byte> packet)
    {
        int headerLength = (packet[0] & 0x0F) * 4;
        int totalLength = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(packet[2..]), packet.Length);
        var segment = packet[headerLength..totalLength];
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], 0);
        uint sum = Checksum.PseudoHeader(IpAddress.FromV4(packet[12..]), IpAddress.FromV4(packet[16..]), IpProtocol.Tcp,
            segment.Length);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Finish(Checksum.Add(sum, segment)));
    }

    private static int Pad4(int length) => (length + 3) & ~3;
}
