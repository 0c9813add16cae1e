using System.Buffers.Binary;
using TunStack.Wire;

namespace TunStack.Fuzz;

/// <summary>
/// Hand-built IPv6 wire seeds that the captures do not have: a SYN to the harness's listener (so the fuzzer starts
/// from a packet the stack answers), the same SYN behind hop-by-hop, destination-options, atomic-fragment and routing
/// headers (RFC 8200 §4), a real fragment, a Packet Too Big quoting one of our segments (RFC 8201) and an echo request
/// behind destination options. Checksums are valid, so each reaches past the parsers.
/// </summary>
internal static class Ipv6Seeds
{
    private static readonly IpAddress Peer = IpAddress.Parse("2001:2::1");
    private static readonly IpAddress Us = IpAddress.Parse("2001:2::2");

    public static IEnumerable<(string Name, byte[] Packet)> All()
    {
        byte[] syn = Syn();
        yield return ("syn80", Packet(IpProtocol.Tcp, syn));
        yield return ("syn80-hopbyhop", Packet(Ipv6Packet.HopByHopOptions, [.. Options(IpProtocol.Tcp), .. syn]));
        yield return ("syn80-hbh-dstopts", Packet(Ipv6Packet.HopByHopOptions,
            [.. Options(Ipv6Packet.DestinationOptions), .. Options(IpProtocol.Tcp), .. syn]));
        yield return ("syn80-atomic-fragment", Packet(Ipv6Packet.FragmentHeader, [.. Fragment(IpProtocol.Tcp, 0, false), .. syn]));
        yield return ("syn80-fragment", Packet(Ipv6Packet.FragmentHeader, [.. Fragment(IpProtocol.Tcp, 0, true), .. syn]));
        yield return ("syn80-routing-left1", Packet(Ipv6Packet.RoutingHeader, [.. Routing(IpProtocol.Tcp, 1), .. syn]));
        yield return ("syn80-routing-left0", Packet(Ipv6Packet.RoutingHeader, [.. Routing(IpProtocol.Tcp, 0), .. syn]));
        yield return ("ptb-quoting-ours", PacketTooBig());
        yield return ("echo-dstopts", Packet(Ipv6Packet.DestinationOptions, [.. Options(IpProtocol.IcmpV6), .. Echo()]));
    }

    private static byte[] Syn()
    {
        var options = new TcpOptions { Mss = 1440, WindowScale = 7, SackPermitted = true, HasTimestamps = true, TimestampValue = 1 };
        var segment = new byte[60];
        int optionsLength = options.WriteTo(segment.AsSpan(TcpSegment.MinHeaderLength));
        TcpSegment.WriteHeader(segment, 40000, 80, 1000, 0, TcpFlags.Syn, 64800, optionsLength);
        var tcp = segment.AsSpan(0, TcpSegment.MinHeaderLength + optionsLength);
        TcpSegment.WriteChecksum(tcp, Peer, Us);
        return tcp.ToArray();
    }

    private static byte[] Echo()
    {
        var icmp = new byte[IcmpV6Packet.HeaderLength + 16];
        IcmpV6Packet.WriteEchoHeader(icmp, IcmpV6Packet.TypeEchoRequest, 0x1234, 1);
        for (int i = IcmpV6Packet.HeaderLength; i < icmp.Length; i++)
            icmp[i] = (byte)i;
        IcmpV6Packet.WriteChecksum(icmp, Peer, Us);
        return icmp;
    }

    /// <summary>A Packet Too Big (MTU 1280) from a router, quoting a segment 2001:2::2:80 -> 2001:2::1:40000.</summary>
    private static byte[] PacketTooBig()
    {
        var quotedTcp = new byte[TcpSegment.MinHeaderLength + 32];
        TcpSegment.WriteHeader(quotedTcp, 80, 40000, 5000, 1001, TcpFlags.Ack, 512, 0);
        var quoted = new byte[Ipv6Packet.HeaderLength + quotedTcp.Length];
        Ipv6Packet.WriteHeader(quoted, Us, Peer, IpProtocol.Tcp, quotedTcp.Length);
        quotedTcp.CopyTo(quoted, Ipv6Packet.HeaderLength);
        var icmp = new byte[IcmpV6Packet.HeaderLength + quoted.Length];
        IcmpV6Packet.WriteHeader(icmp, IcmpV6Packet.TypePacketTooBig, 0, 1280);
        quoted.CopyTo(icmp, IcmpV6Packet.HeaderLength);
        var router = IpAddress.Parse("2001:2::ff");
        IcmpV6Packet.WriteChecksum(icmp, router, Us);
        var packet = new byte[Ipv6Packet.HeaderLength + icmp.Length];
        Ipv6Packet.WriteHeader(packet, router, Us, IpProtocol.IcmpV6, icmp.Length);
        icmp.CopyTo(packet, Ipv6Packet.HeaderLength);
        return packet;
    }

    private static byte[] Packet(byte nextHeader, byte[] payload)
    {
        var packet = new byte[Ipv6Packet.HeaderLength + payload.Length];
        Ipv6Packet.WriteHeader(packet, Peer, Us, nextHeader, payload.Length);
        payload.CopyTo(packet, Ipv6Packet.HeaderLength);
        return packet;
    }

    /// <summary>An 8-byte hop-by-hop or destination options header holding one PadN option (RFC 8200 §4.2).</summary>
    private static byte[] Options(byte next) => [next, 0, 1, 4, 0, 0, 0, 0];

    /// <summary>A fragment header (RFC 8200 §4.5); offset in 8-byte units.</summary>
    private static byte[] Fragment(byte next, int offsetUnits, bool more)
    {
        var header = new byte[8];
        header[0] = next;
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)(offsetUnits << 3 | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), 0xca86be41);
        return header;
    }

    /// <summary>A routing header of type 4 (segment routing) with no addresses and <paramref name="segmentsLeft"/>.</summary>
    private static byte[] Routing(byte next, byte segmentsLeft) => [next, 0, 4, segmentsLeft, 0, 0, 0, 0];
}
