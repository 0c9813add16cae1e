using System.Buffers.Binary;
using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class Ipv6PacketTests
{
    private static readonly IpAddress Client = LinuxIpv6Captures.Client;
    private static readonly IpAddress Server = LinuxIpv6Captures.Server;

    public static TheoryData<string> CaptureNames => new()
    {
        "MldReport", "RouterSolicitation", "Syn", "SynAck", "HttpGet", "Fin", "EchoRequest", "EchoReply", "PacketTooBig",
    };

    internal static byte[] Capture(string name) => name switch
    {
        "MldReport" => LinuxIpv6Captures.MldReport,
        "RouterSolicitation" => LinuxIpv6Captures.RouterSolicitation,
        "Syn" => LinuxIpv6Captures.Syn,
        "SynAck" => LinuxIpv6Captures.SynAck,
        "HttpGet" => LinuxIpv6Captures.HttpGet,
        "Fin" => LinuxIpv6Captures.Fin,
        "EchoRequest" => LinuxIpv6Captures.EchoRequest,
        "EchoReply" => LinuxIpv6Captures.EchoReply,
        "PacketTooBig" => LinuxIpv6Captures.PacketTooBig,
        _ => throw new ArgumentException(name),
    };

    [Fact]
    public void Parses_the_captured_syn()
    {
        Assert.True(Ipv6Packet.TryParse(LinuxIpv6Captures.Syn, out var ip, out var reason));
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(0, ip.TrafficClass);
        Assert.Equal(0x5dba9u, ip.FlowLabel);
        Assert.Equal(40, ip.PayloadLength);
        Assert.Equal(IpProtocol.Tcp, ip.NextHeader);
        Assert.Equal(64, ip.HopLimit);
        Assert.Equal(Client, ip.Source);
        Assert.Equal(Server, ip.Destination);
        Assert.False(ip.Source.IsV4);
        Assert.Equal(IpProtocol.Tcp, ip.Protocol);
        Assert.Equal(0, ip.ExtensionHeadersLength);
        Assert.Equal(80, ip.TotalLength);
        Assert.Equal(40, ip.Payload.Length);
        Assert.Equal(LinuxIpv6Captures.Syn.AsSpan(40).ToArray(), ip.Payload.ToArray());
    }

    [Fact]
    public void Walks_the_hop_by_hop_header_of_the_captured_mld_report()
    {
        Assert.True(Ipv6Packet.TryParse(LinuxIpv6Captures.MldReport, out var ip, out var reason), reason.ToString());
        Assert.Equal(Ipv6Packet.HopByHopOptions, ip.NextHeader);
        Assert.Equal(1, ip.HopLimit);
        Assert.True(ip.Source.IsV6Unspecified);
        Assert.True(ip.Destination.IsV6Multicast);
        Assert.Equal(IpAddress.Parse("ff02::16"), ip.Destination);
        Assert.Equal(8, ip.ExtensionHeadersLength); // Router Alert (5, len 2, value 0) + PadN (1, len 0)
        Assert.Equal(IpProtocol.IcmpV6, ip.Protocol);
        Assert.Equal(48, ip.Payload.Length);
        Assert.Equal(143, ip.Payload[0]); // MLDv2 report
    }

    [Fact]
    public void The_captured_fragment_is_rejected_as_a_fragment()
    {
        Assert.False(Ipv6Packet.TryParse(LinuxIpv6Captures.SecondFragment, out _, out var reason));
        Assert.Equal(DropReason.IpFragment, reason);
    }

    [Theory]
    [MemberData(nameof(CaptureNames))]
    public void Every_capture_parses_to_its_full_length(string name)
    {
        byte[] packet = Capture(name);
        Assert.True(Ipv6Packet.TryParse(packet, out var ip, out var reason), reason.ToString());
        Assert.Equal(packet.Length, ip.TotalLength);
        Assert.Equal(packet.Length - 40, ip.PayloadLength);
        Assert.Equal(packet.Length - 40 - ip.ExtensionHeadersLength, ip.Payload.Length);
    }

    [Theory]
    [MemberData(nameof(CaptureNames))]
    public void WriteHeader_reproduces_the_captured_header_byte_for_byte(string name)
    {
        byte[] packet = Capture(name);
        Assert.True(Ipv6Packet.TryParse(packet, out var ip, out _));
        var rebuilt = new byte[40];
        Ipv6Packet.WriteHeader(rebuilt, ip.Source, ip.Destination, ip.NextHeader, ip.PayloadLength, ip.HopLimit,
            ip.TrafficClass, ip.FlowLabel);
        Assert.Equal(packet.AsSpan(0, 40).ToArray(), rebuilt);
    }

    [Fact]
    public void Link_padding_after_the_payload_length_is_ignored()
    {
        byte[] padded = [.. LinuxIpv6Captures.Fin, 0, 0, 0, 0, 0, 0];
        Assert.True(Ipv6Packet.TryParse(padded, out var ip, out _));
        Assert.Equal(72, ip.TotalLength);
        Assert.Equal(32, ip.Payload.Length);
    }

    [Fact]
    public void Round_trips_random_headers()
    {
        var address = Gen.Byte.Array[16].Select(b => IpAddress.FromV6(b)).Where(a => !a.IsV4);
        var gen = Gen.Select(address, address, Gen.Byte, Gen.Int[0, 300], Gen.Byte, Gen.Byte, Gen.UInt[0, 0xFFFFF]);
        gen.Sample((src, dst, protocol, payloadLength, hopLimit, trafficClass, flowLabel) =>
        {
            if (protocol is 0 or 43 or 44 or 60) protocol = IpProtocol.Tcp; // extension headers need bodies
            var buffer = new byte[40 + payloadLength];
            Ipv6Packet.WriteHeader(buffer, src, dst, protocol, payloadLength, hopLimit, trafficClass, flowLabel);
            Assert.True(Ipv6Packet.TryParse(buffer, out var ip, out var reason), reason.ToString());
            Assert.Equal(src, ip.Source);
            Assert.Equal(dst, ip.Destination);
            Assert.Equal(protocol, ip.NextHeader);
            Assert.Equal(protocol, ip.Protocol);
            Assert.Equal(payloadLength, ip.PayloadLength);
            Assert.Equal(hopLimit, ip.HopLimit);
            Assert.Equal(trafficClass, ip.TrafficClass);
            Assert.Equal(flowLabel, ip.FlowLabel);
            Assert.Equal(payloadLength, ip.Payload.Length);
        }, iter: 2000);
    }

    // ---- Extension headers ----

    /// <summary>
    /// An IPv6 packet from the client to the server: the fixed header, then <paramref name="extensions"/> in order
    /// (each given whole; its Next Header byte is filled in here), then <paramref name="upper"/> as protocol
    /// <paramref name="protocol"/>.
    /// </summary>
    internal static byte[] Packet(byte protocol, byte[] upper, params (byte Type, byte[] Bytes)[] extensions)
    {
        int length = 40 + extensions.Sum(e => e.Bytes.Length) + upper.Length;
        var packet = new byte[length];
        byte first = extensions.Length > 0 ? extensions[0].Type : protocol;
        Ipv6Packet.WriteHeader(packet, Client, Server, first, length - 40);
        int offset = 40;
        for (int i = 0; i < extensions.Length; i++)
        {
            extensions[i].Bytes.CopyTo(packet, offset);
            packet[offset] = i + 1 < extensions.Length ? extensions[i + 1].Type : protocol;
            offset += extensions[i].Bytes.Length;
        }
        upper.CopyTo(packet, offset);
        return packet;
    }

    /// <summary>A Hop-by-Hop or Destination Options header holding <paramref name="options"/>, padded with Pad1 to 8n bytes.</summary>
    internal static byte[] OptionsHeader(params byte[] options)
    {
        int length = (2 + options.Length + 7) / 8 * 8;
        var header = new byte[length]; // zero bytes are Pad1
        header[1] = (byte)(length / 8 - 1);
        options.CopyTo(header, 2);
        return header;
    }

    internal static (byte, byte[]) HopByHop(params byte[] options) => (Ipv6Packet.HopByHopOptions, OptionsHeader(options));
    internal static (byte, byte[]) DestinationOptions(params byte[] options) => (Ipv6Packet.DestinationOptions, OptionsHeader(options));

    internal static (byte, byte[]) Routing(byte segmentsLeft, int eightByteUnits = 1)
    {
        var header = new byte[8 * eightByteUnits];
        header[1] = (byte)(eightByteUnits - 1);
        header[2] = 4; // routing type: segment routing (RFC 8754); only Segments Left matters to a host
        header[3] = segmentsLeft;
        return (Ipv6Packet.RoutingHeader, header);
    }

    internal static (byte, byte[]) Fragment(int offsetUnits, bool more, uint identification = 0x12345678)
    {
        var header = new byte[8];
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)(offsetUnits << 3 | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), identification);
        return (Ipv6Packet.FragmentHeader, header);
    }

    private static readonly byte[] Upper = [0xAA, 0xBB, 0xCC, 0xDD, 0xEE];

    private static void AssertAccepted(byte[] packet, int extensionLength, byte protocol = IpProtocol.Tcp)
    {
        Assert.True(Ipv6Packet.TryParse(packet, out var ip, out var reason), reason.ToString());
        Assert.Equal(extensionLength, ip.ExtensionHeadersLength);
        Assert.Equal(protocol, ip.Protocol);
        Assert.Equal(Upper, ip.Payload.ToArray());
    }

    private static void AssertRejected(byte[] packet, DropReason expected)
    {
        Assert.False(Ipv6Packet.TryParse(packet, out _, out var reason));
        Assert.Equal(expected, reason);
    }

    [Fact]
    public void Skips_hop_by_hop_routing_and_destination_options_in_a_chain()
    {
        byte[] packet = Packet(IpProtocol.Tcp, Upper,
            HopByHop(5, 2, 0, 0),                      // Router Alert (RFC 2711), padded to 8
            DestinationOptions([1, 12, .. new byte[12]]), // PadN of 14 bytes: 16 in all
            Routing(segmentsLeft: 0, eightByteUnits: 3),
            DestinationOptions());
        AssertAccepted(packet, 8 + 16 + 24 + 8);
    }

    [Fact]
    public void An_unrecognised_option_whose_type_says_skip_is_skipped()
    {
        // Type 0x1E: action bits 00, "skip over this option and continue processing the header" (RFC 8200 §4.2).
        AssertAccepted(Packet(IpProtocol.Tcp, Upper, DestinationOptions(0x1E, 3, 1, 2, 3)), 8);
    }

    [Theory]
    [InlineData(0x5E)] // 01: discard
    [InlineData(0x9E)] // 10: discard, send Parameter Problem
    [InlineData(0xC2)] // 11: Jumbo Payload (RFC 2675), which we do not support
    public void An_unrecognised_option_whose_type_says_discard_drops_the_packet(byte type)
    {
        AssertRejected(Packet(IpProtocol.Tcp, Upper, HopByHop(type, 4, 0, 0, 0, 0)), DropReason.Ipv6UnrecognizedOption);
        AssertRejected(Packet(IpProtocol.Tcp, Upper, DestinationOptions(1, 0, type, 2, 0, 0)), DropReason.Ipv6UnrecognizedOption);
    }

    [Fact]
    public void An_atomic_fragment_is_processed_as_a_whole_packet()
    {
        AssertAccepted(Packet(IpProtocol.Tcp, Upper, Fragment(0, more: false)), 8);
        // The reserved bits between the offset and M do not make it a fragment.
        var packet = Packet(IpProtocol.Tcp, Upper, Fragment(0, more: false));
        packet[43] |= 0x06;
        AssertAccepted(packet, 8);
    }

    [Theory]
    [InlineData(0, true)]     // first fragment
    [InlineData(181, true)]   // a middle one
    [InlineData(181, false)]  // the last one
    public void A_real_fragment_is_rejected(int offsetUnits, bool more)
    {
        AssertRejected(Packet(IpProtocol.Tcp, Upper, Fragment(offsetUnits, more)), DropReason.IpFragment);
        AssertRejected(Packet(IpProtocol.Tcp, Upper, DestinationOptions(), Fragment(offsetUnits, more)), DropReason.IpFragment);
    }

    [Fact]
    public void A_routing_header_with_segments_left_is_rejected()
    {
        AssertRejected(Packet(IpProtocol.Tcp, Upper, Routing(segmentsLeft: 1, eightByteUnits: 3)), DropReason.RoutingHeaderSegmentsLeft);
    }

    [Theory]
    [InlineData(IpProtocol.Udp)]
    [InlineData(Ipv6Packet.NoNextHeader)]
    [InlineData(50)]  // ESP
    [InlineData(51)]  // AH
    [InlineData(253)] // experimental (RFC 3692)
    public void Another_next_header_ends_the_walk_and_is_reported_as_the_protocol(byte protocol)
    {
        // The view reports what follows; NetStack drops what it does not serve as UnknownNextHeader.
        AssertAccepted(Packet(protocol, Upper), 0, protocol);
        AssertAccepted(Packet(protocol, Upper, HopByHop()), 8, protocol);
    }

    // ---- Malformed input: each rejected with its reason, never an exception ----

    [Fact]
    public void Shorter_than_40_bytes_is_TooShort()
    {
        for (int length = 0; length < 40; length++)
            AssertRejected(LinuxIpv6Captures.Syn.AsSpan(0, length).ToArray(), DropReason.TooShort);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(0)]
    [InlineData(7)]
    public void Another_version_is_BadIpVersion(int version)
    {
        byte[] packet = LinuxIpv6Captures.Syn;
        packet[0] = (byte)(version << 4 | packet[0] & 0x0F);
        AssertRejected(packet, DropReason.BadIpVersion);
    }

    [Fact]
    public void Payload_length_past_the_buffer_is_rejected()
    {
        byte[] packet = LinuxIpv6Captures.Syn;
        AssertRejected(packet[..^1], DropReason.BadIpv6PayloadLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 0xFFFF);
        AssertRejected(packet, DropReason.BadIpv6PayloadLength);
    }

    [Fact]
    public void Payload_length_shorter_than_the_tcp_header_cuts_the_payload()
    {
        // The view trusts Payload Length once it fits: the TCP layer then finds the segment too short.
        byte[] packet = LinuxIpv6Captures.Syn;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 12);
        Assert.True(Ipv6Packet.TryParse(packet, out var ip, out _));
        Assert.Equal(12, ip.Payload.Length);
    }

    [Fact]
    public void Extension_header_lengths_past_the_payload_are_rejected()
    {
        // Hdr Ext Len says 16 bytes, only 8 present (and nothing after).
        var packet = Packet(IpProtocol.Tcp, [], HopByHop());
        packet[41] = 1;
        AssertRejected(packet, DropReason.BadIpv6ExtensionHeader);

        // Hdr Ext Len 255 (2048 bytes) in a short packet.
        packet = Packet(IpProtocol.Tcp, Upper, DestinationOptions());
        packet[41] = 255;
        AssertRejected(packet, DropReason.BadIpv6ExtensionHeader);

        // Routing header longer than what is left.
        packet = Packet(IpProtocol.Tcp, [], Routing(0, 2));
        packet[41] = 2;
        AssertRejected(packet, DropReason.BadIpv6ExtensionHeader);
    }

    [Fact]
    public void A_jumbogram_is_rejected()
    {
        // RFC 2675: Payload Length 0, the real length in a Jumbo Payload option (0xC2) of the Hop-by-Hop header.
        var packet = Packet(IpProtocol.Tcp, new byte[20], HopByHop(0xC2, 4, 0, 0, 0, 68));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 0);
        AssertRejected(packet, DropReason.BadIpv6ExtensionHeader);
    }

    [Theory]
    [InlineData(Ipv6Packet.HopByHopOptions)]
    [InlineData(Ipv6Packet.DestinationOptions)]
    [InlineData(Ipv6Packet.RoutingHeader)]
    [InlineData(Ipv6Packet.FragmentHeader)]
    public void Fewer_than_8_bytes_left_for_an_extension_header_is_rejected(byte nextHeader)
    {
        for (int left = 0; left < 8; left++)
        {
            var packet = new byte[40 + left];
            Ipv6Packet.WriteHeader(packet, Client, Server, nextHeader, left);
            AssertRejected(packet, DropReason.BadIpv6ExtensionHeader);
        }
    }

    [Fact]
    public void An_option_running_past_its_header_is_rejected()
    {
        // PadN claiming 6 bytes where 3 remain in the 8-byte header.
        AssertRejected(Packet(IpProtocol.Tcp, Upper, DestinationOptions(0, 1, 6)), DropReason.BadIpv6ExtensionHeader);
        // A type byte in the header's last position with no room for its length byte.
        var header = OptionsHeader(1, 3, 0, 0, 0, 0x1E);
        AssertRejected(Packet(IpProtocol.Tcp, Upper, (Ipv6Packet.HopByHopOptions, header)), DropReason.BadIpv6ExtensionHeader);
    }

    [Fact]
    public void Hop_by_hop_anywhere_but_first_is_rejected()
    {
        AssertRejected(Packet(IpProtocol.Tcp, Upper, DestinationOptions(), HopByHop()), DropReason.BadIpv6ExtensionHeader);
        AssertRejected(Packet(IpProtocol.Tcp, Upper, HopByHop(), HopByHop()), DropReason.BadIpv6ExtensionHeader);
    }

    [Fact]
    public void A_quoted_packet_may_be_cut_short_but_a_received_one_may_not()
    {
        // The invoking packet inside the captured Packet Too Big: 1232 of its 1448 bytes.
        var quoted = LinuxIpv6Captures.PacketTooBig.AsSpan(48);
        Assert.Equal(1232, quoted.Length);
        Assert.False(Ipv6Packet.TryParse(quoted, out _, out var reason));
        Assert.Equal(DropReason.BadIpv6PayloadLength, reason);

        Assert.True(Ipv6Packet.TryParseQuoted(quoted, out var ip, out reason), reason.ToString());
        Assert.Equal(1408, ip.PayloadLength);
        Assert.Equal(1192, ip.Payload.Length);
        Assert.Equal(Client, ip.Source);
        Assert.Equal(IpAddress.Parse("2001:2:0:1::2"), ip.Destination);
        Assert.Equal(IpProtocol.IcmpV6, ip.Protocol);

        // A quoted packet still has a whole fixed header, and its extension headers are still checked.
        Assert.False(Ipv6Packet.TryParseQuoted(quoted[..39], out _, out reason));
        Assert.Equal(DropReason.TooShort, reason);
        var cut = Packet(IpProtocol.Tcp, Upper, Routing(0, 2));
        Assert.False(Ipv6Packet.TryParseQuoted(cut.AsSpan(0, 50), out _, out reason));
        Assert.Equal(DropReason.BadIpv6ExtensionHeader, reason);
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            if (bytes.Length > 0) bytes[0] = (byte)(0x60 | bytes[0] & 0x0F);
            Ipv6Packet.TryParse(bytes, out _, out _);
            Ipv6Packet.TryParseQuoted(bytes, out _, out _);
        }, iter: 20000);
    }

    [Fact]
    public void Random_corruption_of_an_extension_header_chain_never_throws_and_never_reads_past_the_payload()
    {
        byte[] valid = Packet(IpProtocol.Tcp, Upper, HopByHop(5, 2, 0, 0), DestinationOptions(0x1E, 3, 1, 2, 3),
            Routing(0, 2), Fragment(0, false), DestinationOptions());
        Gen.Select(Gen.Int[40, valid.Length - 1], Gen.Byte, Gen.Int[40, valid.Length]).Sample((position, value, cut) =>
        {
            var packet = valid.ToArray();
            packet[position] = value;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(cut - 40));
            if (Ipv6Packet.TryParse(packet, out var ip, out _))
            {
                Assert.True(ip.ExtensionHeadersLength + ip.Payload.Length == cut - 40);
                Assert.True(ip.ExtensionHeadersLength % 8 == 0);
            }
        }, iter: 20000);
    }
}
