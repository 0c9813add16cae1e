using System.Buffers.Binary;
using TunStack.Ip;
using TunStack.Wire;
using static TunStack.Fuzz.HarnessViolation;

namespace TunStack.Fuzz;

/// <summary>
/// Feeds one input to every parser in <c>src/Stack/Wire</c> (IPv4, IPv6 with its extension headers, TCP, TCP options,
/// ICMPv4, ICMPv6), both echo responders and <see cref="NetStack.Receive"/> of a dual-stack NetStack, and checks what
/// each parser promises: a view that parsed has all its lengths within the input, accessors stay in bounds, the
/// checksum agrees with a plain RFC 1071 sum, options survive a write/parse round trip, an echo reply is a valid
/// packet, every packet sent is valid in its family. Throws on any broken promise.
/// </summary>
internal static class WireHarness
{
    private static readonly IpAddress Us = IpAddress.Parse("198.18.0.2");
    private static readonly IpAddress Peer = IpAddress.Parse("198.18.0.1");
    private static readonly IpAddress Us6 = IpAddress.Parse("2001:2::2");

    public static void Run(ReadOnlySpan<byte> input)
    {
        CheckChecksum(input);

        bool ipParsed = Ipv4Packet.TryParse(input, out var ip, out var ipReason);
        Check(ipParsed == (ipReason == DropReason.None), $"Ipv4Packet.TryParse returned {ipParsed} with reason {ipReason}");
        if (ipParsed)
        {
            CheckIpv4(input, ip);
            CheckTcp(ip.Payload, ip.Source, ip.Destination);
            CheckIcmp(ip.Payload);
            CheckEchoReply(ip);
        }
        bool ip6Parsed = Ipv6Packet.TryParse(input, out var ip6, out var ip6Reason);
        Check(ip6Parsed == (ip6Reason == DropReason.None), $"Ipv6Packet.TryParse returned {ip6Parsed} with reason {ip6Reason}");
        if (ip6Parsed)
        {
            CheckIpv6(input, ip6);
            CheckTcp(ip6.Payload, ip6.Source, ip6.Destination);
            CheckIcmpV6(ip6);
        }
        if (Ipv6Packet.TryParseQuoted(input, out var quoted, out _))
            Check(quoted.Payload.Length <= input.Length - Ipv6Packet.HeaderLength, "a quoted IPv6 packet's payload past the input");
        // The raw input as a TCP segment, an options area and an ICMP message too: no IP header has to be found first.
        CheckTcp(input, Peer, Us);
        CheckOptions(input[..Math.Min(input.Length, TcpPacketBuilder.MaxOptionsLength)]);
        CheckIcmp(input);

        var stack = new NetStack(new NetStackOptions { Addresses = [Us, Us6], IsnSecret = new byte[16] });
        stack.Listen(80);
        stack.Receive(input, 1_000_000);
        stack.Poll(1_000_000);
        if (stack.Counters.LastInternalError is { } error)
            throw new HarnessViolation("NetStack.Receive recorded an internal error", error);
        while (stack.Transmit.TryDequeue(out var packet))
        {
            CheckOutgoing(packet.Span);
            stack.Transmit.Return(packet);
        }
    }

    /// <summary>RFC 1071 computed the slow way, 16 bits at a time, against the stack's 32-bit-word version.</summary>
    private static void CheckChecksum(ReadOnlySpan<byte> input)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < input.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(input[i..]);
        if (input.Length % 2 == 1)
            sum += (uint)input[^1] << 8;
        while (sum >> 16 != 0)
            sum = (sum & 0xFFFF) + (sum >> 16);
        ushort expected = (ushort)~sum;
        ushort actual = Checksum.Compute(input);
        // 0x0000 and 0xFFFF are the same number in one's complement; the sums may differ only in that.
        Check(actual == expected || (actual ^ expected) == 0xFFFF && (actual == 0 || expected == 0),
            $"Checksum.Compute = 0x{actual:x4}, RFC 1071 sum = 0x{expected:x4}");
    }

    private static void CheckIpv4(ReadOnlySpan<byte> input, Ipv4Packet ip)
    {
        Check(ip.HeaderLength >= Ipv4Packet.MinHeaderLength && ip.HeaderLength <= 60, $"IPv4 header length {ip.HeaderLength}");
        Check(ip.HeaderLength <= ip.TotalLength, "IPv4 header longer than the packet");
        Check(ip.TotalLength <= input.Length, "IPv4 total length past the input");
        Check(ip.TotalLength == BinaryPrimitives.ReadUInt16BigEndian(input[2..]), "IPv4 view length is not Total Length");
        Check(ip.Header.Length + ip.Payload.Length == ip.TotalLength, "IPv4 header + payload != total length");
        Check(Checksum.Compute(ip.Header) == 0, "an IPv4 header with a bad checksum parsed");
        Check(input[0] >> 4 == 4, "a packet of another IP version parsed as IPv4");
        _ = (ip.Identification, ip.Ttl, ip.Protocol, ip.HeaderChecksum, ip.Source, ip.Destination, ip.DontFragment, ip.IsFragment);
        _ = ip.Source.ToString() + ip.Destination.ToString();
    }

    private static void CheckTcp(ReadOnlySpan<byte> bytes, IpAddress source, IpAddress destination)
    {
        bool parsed = TcpSegment.TryParse(bytes, out var seg, out var reason);
        Check(parsed == (reason == DropReason.None), $"TcpSegment.TryParse returned {parsed} with reason {reason}");
        if (!parsed)
            return;
        Check(seg.HeaderLength >= TcpSegment.MinHeaderLength && seg.HeaderLength <= TcpSegment.MaxHeaderLength,
            $"TCP header length {seg.HeaderLength}");
        Check(seg.HeaderLength <= seg.Length && seg.Length == bytes.Length, "TCP header past the segment");
        Check(seg.Options.Length == seg.HeaderLength - TcpSegment.MinHeaderLength, "TCP options area length");
        Check(seg.HeaderLength + seg.Payload.Length == seg.Length, "TCP header + payload != segment length");
        _ = (seg.SourcePort, seg.DestinationPort, seg.SequenceNumber, seg.AcknowledgmentNumber, seg.Flags, seg.Window,
            seg.Checksum, seg.UrgentPointer, seg.Has(TcpFlags.Syn), seg.VerifyChecksum(source, destination));
        _ = seg.Flags.ToShortString();
        CheckOptions(seg.Options);
    }

    private static void CheckOptions(ReadOnlySpan<byte> area)
    {
        if (!TcpOptions.TryParse(area, out var options))
            return;
        Check(options.SackBlockCount is >= 0 and <= 4, $"SACK block count {options.SackBlockCount} in a 40-byte area");
        Check(options.UnknownCount >= 0 && options.UnknownCount <= area.Length / 2, $"unknown option count {options.UnknownCount}");
        _ = options.ToString();

        // What was understood survives a write and a second parse.
        Span<byte> written = stackalloc byte[TcpPacketBuilder.MaxOptionsLength];
        int n = options.WriteTo(written);
        Check(n % 4 == 0 && n <= TcpPacketBuilder.MaxOptionsLength, $"TcpOptions.WriteTo wrote {n} bytes");
        Check(TcpOptions.TryParse(written[..n], out var again), "TcpOptions.WriteTo wrote an area that does not parse");
        Check(again.Mss == options.Mss && again.WindowScale == options.WindowScale
              && again.SackPermitted == options.SackPermitted && again.HasTimestamps == options.HasTimestamps
              && again.TimestampValue == (options.HasTimestamps ? options.TimestampValue : 0)
              && again.TimestampEcho == (options.HasTimestamps ? options.TimestampEcho : 0),
            $"options changed in a round trip: {options} -> {again}");
    }

    private static void CheckIcmp(ReadOnlySpan<byte> bytes)
    {
        bool parsed = IcmpV4Packet.TryParse(bytes, out var icmp, out var reason);
        Check(parsed == (reason == DropReason.None), $"IcmpV4Packet.TryParse returned {parsed} with reason {reason}");
        if (!parsed)
            return;
        Check(icmp.Length == bytes.Length && icmp.Payload.Length == icmp.Length - IcmpV4Packet.HeaderLength, "ICMP lengths");
        Check(Checksum.Compute(icmp.Bytes) == 0, "an ICMP message with a bad checksum parsed");
        _ = (icmp.Type, icmp.Code, icmp.Checksum, icmp.Identifier, icmp.SequenceNumber, icmp.IsEchoRequest);
    }

    private static void CheckEchoReply(Ipv4Packet request)
    {
        Span<byte> reply = stackalloc byte[1600];
        if (!IcmpEchoResponder.TryBuildReply(request, request.Destination, reply, out int length, out var reason))
        {
            Check(reason != DropReason.None, "TryBuildReply failed without a reason");
            return;
        }
        Check(Ipv4Packet.TryParse(reply[..length], out var ip, out var ipReason), $"the echo reply is not valid IPv4: {ipReason}");
        Check(ip.Source == request.Destination && ip.Destination == request.Source, "echo reply addresses not swapped");
        Check(IcmpV4Packet.TryParse(ip.Payload, out var echo, out var icmpReason), $"the echo reply is not valid ICMP: {icmpReason}");
        IcmpV4Packet.TryParse(request.Payload, out var asked, out _);
        Check(echo.Type == IcmpV4Packet.TypeEchoReply && echo.Identifier == asked.Identifier
              && echo.SequenceNumber == asked.SequenceNumber && echo.Payload.SequenceEqual(asked.Payload),
            "the echo reply does not mirror the request");
    }

    private static void CheckIpv6(ReadOnlySpan<byte> input, Ipv6Packet ip)
    {
        Check(input[0] >> 4 == 6, "a packet of another IP version parsed as IPv6");
        Check(ip.TotalLength == Ipv6Packet.HeaderLength + ip.PayloadLength, "IPv6 view length is not 40 + Payload Length");
        Check(ip.TotalLength <= input.Length, "IPv6 payload length past the input");
        Check(ip.ExtensionHeadersLength >= 0 && ip.ExtensionHeadersLength % 8 == 0,
            $"IPv6 extension headers of {ip.ExtensionHeadersLength} bytes (they come in units of 8)");
        Check(Ipv6Packet.HeaderLength + ip.ExtensionHeadersLength + ip.Payload.Length == ip.TotalLength,
            "IPv6 header + extension headers + upper-layer payload != total length");
        // RFC 8200 §4.5: fragments are not reassembled, so none may parse (an atomic fragment has no fragment left).
        Check(ip.Protocol is not (Ipv6Packet.HopByHopOptions or Ipv6Packet.RoutingHeader or Ipv6Packet.FragmentHeader
            or Ipv6Packet.DestinationOptions), $"the extension header walk stopped at extension header {ip.Protocol}");
        _ = (ip.TrafficClass, ip.FlowLabel, ip.NextHeader, ip.HopLimit, ip.Header.Length);
        _ = ip.Source.ToString() + ip.Destination.ToString();
    }

    private static void CheckIcmpV6(Ipv6Packet ip)
    {
        if (ip.Protocol != IpProtocol.IcmpV6)
            return;
        bool parsed = IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var icmp, out var reason);
        Check(parsed == (reason == DropReason.None), $"IcmpV6Packet.TryParse returned {parsed} with reason {reason}");
        if (!parsed)
            return;
        Check(icmp.Length == ip.Payload.Length && icmp.Payload.Length == icmp.Length - IcmpV6Packet.HeaderLength, "ICMPv6 lengths");
        _ = (icmp.Type, icmp.Code, icmp.Checksum, icmp.Identifier, icmp.SequenceNumber, icmp.Mtu, icmp.IsError);
        if (icmp.TryGetQuotedTcp(out var qs, out var qd, out _, out _, out _))
            _ = qs.ToString() + qd.ToString();

        Span<byte> reply = stackalloc byte[Ipv6Packet.HeaderLength + 1600];
        if (!IcmpV6EchoResponder.TryBuildReply(ip, icmp, reply, out int length, out reason))
        {
            Check(reason != DropReason.None, "the ICMPv6 echo responder failed without a reason");
            return;
        }
        Check(Ipv6Packet.TryParse(reply[..length], out var answer, out var answerReason), $"the echo reply is not valid IPv6: {answerReason}");
        Check(answer.Source == ip.Destination && answer.Destination == ip.Source, "ICMPv6 echo reply addresses not swapped");
        Check(IcmpV6Packet.TryParse(answer.Payload, answer.Source, answer.Destination, out var echo, out var echoReason),
            $"the ICMPv6 echo reply does not verify: {echoReason}");
        Check(echo.Type == IcmpV6Packet.TypeEchoReply && echo.Identifier == icmp.Identifier
              && echo.SequenceNumber == icmp.SequenceNumber && echo.Payload.SequenceEqual(icmp.Payload),
            "the ICMPv6 echo reply does not mirror the request");
    }

    /// <summary>
    /// Every packet the stack sends is a valid IPv4 or IPv6 packet from our address with a valid TCP or ICMP message;
    /// <paramref name="mtu"/> is the stack's, which bounds the MSS it offers over IPv6.
    /// </summary>
    public static void CheckOutgoing(ReadOnlySpan<byte> packet, int mtu = 1500)
    {
        if (packet.Length > 0 && packet[0] >> 4 == 6)
        {
            CheckOutgoingIpv6(packet, mtu);
            return;
        }
        Check(Ipv4Packet.TryParse(packet, out var ip, out var reason), $"the stack sent an invalid IPv4 packet: {reason}");
        Check(ip.TotalLength == packet.Length, "the stack sent bytes past the IPv4 total length");
        Check(ip.Source == Us, $"the stack sent a packet from {ip.Source}");
        if (ip.Protocol == IpProtocol.Icmp)
        {
            Check(IcmpV4Packet.TryParse(ip.Payload, out _, out reason), $"the stack sent an invalid ICMP message: {reason}");
            return;
        }
        Check(ip.Protocol == IpProtocol.Tcp, $"the stack sent protocol {ip.Protocol}");
        Check(TcpSegment.TryParse(ip.Payload, out var seg, out reason), $"the stack sent an invalid TCP segment: {reason}");
        Check(seg.VerifyChecksum(ip.Source, ip.Destination), "the stack sent a TCP segment with a bad checksum");
        Check(TcpOptions.TryParse(seg.Options, out _), "the stack sent malformed TCP options");
        Check(seg.SourcePort != 0 && seg.DestinationPort != 0, "the stack sent a segment with port 0");
        var flags = seg.Flags;
        Check((flags & (TcpFlags.Syn | TcpFlags.Rst)) != (TcpFlags.Syn | TcpFlags.Rst), "the stack sent SYN+RST");
        Check((flags & TcpFlags.Rst) == 0 || seg.Payload.IsEmpty, "the stack sent a RST with data");
    }

    private static void CheckOutgoingIpv6(ReadOnlySpan<byte> packet, int mtu)
    {
        Check(Ipv6Packet.TryParse(packet, out var ip, out var reason), $"the stack sent an invalid IPv6 packet: {reason}");
        Check(ip.TotalLength == packet.Length, "the stack sent bytes past the IPv6 payload length");
        Check(ip.Source == Us6 || ip.Source == EngineHarness.StackAddress6, $"the stack sent a packet from {ip.Source}");
        Check(ip.ExtensionHeadersLength == 0, "the stack sent extension headers");
        if (ip.Protocol == IpProtocol.IcmpV6)
        {
            Check(IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out _, out reason), $"the stack sent an invalid ICMPv6 message: {reason}");
            return;
        }
        Check(ip.Protocol == IpProtocol.Tcp, $"the stack sent IPv6 next header {ip.Protocol}");
        Check(TcpSegment.TryParse(ip.Payload, out var seg, out reason), $"the stack sent an invalid TCP segment over IPv6: {reason}");
        Check(seg.VerifyChecksum(ip.Source, ip.Destination), "the stack sent a TCP segment over IPv6 with a bad checksum");
        Check(TcpOptions.TryParse(seg.Options, out var options), "the stack sent malformed TCP options over IPv6");
        // RFC 9293 §3.7.1: over IPv6 our MSS is at most the MTU less 60.
        Check(options.Mss is null || options.Mss <= mtu - 60, $"the stack offered MSS {options.Mss} over IPv6 at MTU {mtu}");
        Check(seg.SourcePort != 0 && seg.DestinationPort != 0, "the stack sent a segment with port 0");
        Check((seg.Flags & (TcpFlags.Syn | TcpFlags.Rst)) != (TcpFlags.Syn | TcpFlags.Rst), "the stack sent SYN+RST");
        Check((seg.Flags & TcpFlags.Rst) == 0 || seg.Payload.IsEmpty, "the stack sent a RST with data");
    }
}
