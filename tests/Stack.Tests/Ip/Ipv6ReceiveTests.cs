using System.Buffers.Binary;
using CsCheck;
using TunStack.Ip;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Tests.Wire;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Ip;

/// <summary>What <see cref="NetStack.Receive"/> does with IPv6 packets that are not (or not only) TCP.</summary>
public class Ipv6ReceiveTests
{
    private static readonly IpAddress Us = ScriptedPeer.StackAddress6;
    private static readonly IpAddress Peer = ScriptedPeer.PeerAddress6;

    private static List<byte[]> ReceiveAndDrain(NetStack stack, byte[] packet)
    {
        stack.Receive(packet, 1_000_000);
        stack.Poll(1_000_000);
        var sent = new List<byte[]>();
        while (stack.Transmit.TryDequeue(out var p))
        {
            sent.Add(p.Span.ToArray());
            stack.Transmit.Return(p);
        }
        return sent;
    }

    private static void AssertDropped(NetStack stack, byte[] packet, DropReason reason)
    {
        long before = stack.Counters.Dropped(reason);
        Assert.Empty(ReceiveAndDrain(stack, packet));
        Assert.Equal(before + 1, stack.Counters.Dropped(reason));
    }

    /// <summary>An IPv6 header written field by field, so any source or destination can be put in it.</summary>
    private static byte[] Raw(IpAddress source, IpAddress destination, byte nextHeader, ReadOnlySpan<byte> payload)
    {
        var packet = new byte[40 + payload.Length];
        Ipv6Packet.WriteHeader(packet, source, destination, nextHeader, payload.Length);
        payload.CopyTo(packet.AsSpan(40));
        return packet;
    }

    private static byte[] Syn(IpAddress source, IpAddress destination) =>
        ScriptedPeer.BuildPacket(source, destination, 40000, 80, 1000, 0, TcpFlags.Syn, 65535, new TcpOptions { Mss = 1440 }, default);

    [Fact]
    public void Answers_the_captured_ping()
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        var reply = Assert.Single(ReceiveAndDrain(stack, LinuxIpv6Captures.EchoRequest));
        Assert.Equal(LinuxIpv6Captures.EchoReply.AsSpan(40).ToArray(), reply.AsSpan(40).ToArray());
        Assert.True(Ipv6Packet.TryParse(reply, out var ip, out _));
        Assert.Equal(Us, ip.Source);
        Assert.Equal(Peer, ip.Destination);
        Assert.Equal(1, stack.Counters.EchoRepliesSent);
        Assert.Equal(1, stack.Counters.PacketsSent);
        Assert.Equal(0, stack.Counters.TotalDropped);
    }

    [Fact]
    public void What_the_kernel_sends_to_multicast_groups_on_link_up_is_counted_on_its_own()
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        AssertDropped(stack, LinuxIpv6Captures.RouterSolicitation, DropReason.MulticastDestination);
        AssertDropped(stack, LinuxIpv6Captures.MldReport, DropReason.MulticastDestination);
        var echoToAllNodes = IcmpV6EchoResponderTests.Request(IcmpV6Packet.TypeEchoRequest, 0, 1, 1, "x"u8);
        Ipv6Packet.WriteHeader(echoToAllNodes, Peer, IpAddress.Parse("ff02::1"), IpProtocol.IcmpV6, echoToAllNodes.Length - 40);
        AssertDropped(stack, echoToAllNodes, DropReason.MulticastDestination);
        Assert.Equal(3, stack.Counters.TotalDropped);
    }

    [Theory]
    [InlineData("::")]
    [InlineData("::1")]
    [InlineData("ff02::1")]
    [InlineData("ff0e::1234")]
    [InlineData("::ffff:198.18.0.1")] // IPv4-mapped
    [InlineData("2001:2::2")]         // our own address
    public void Martian_sources_are_dropped(string source)
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        stack.Listen(80);
        var from = IpAddress.Parse(source);
        var syn = ScriptedPeer.BuildPacket(Peer, Us, 40000, 80, 1000, 0, TcpFlags.Syn, 65535, default, default);
        var echo = IcmpV6EchoResponderTests.Request(IcmpV6Packet.TypeEchoRequest, 0, 1, 1, "x"u8);
        foreach (var packet in new[] { syn, echo })
        {
            Ipv6Packet.WriteHeader(packet, from, Us, packet[6], packet.Length - 40);
            AssertDropped(stack, packet, DropReason.BadSourceAddress);
        }
        Assert.Empty(stack.Connections);
    }

    [Theory]
    [InlineData("2001:2::3")]
    [InlineData("2001:2::1")]
    [InlineData("::ffff:198.18.0.2")] // IPv4-mapped form of our IPv4 address: not ours over IPv6
    [InlineData("fe80::2")]
    public void Packets_to_other_unicast_addresses_are_not_for_us(string destination)
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        stack.Listen(80);
        var syn = Syn(Peer, Us);
        Ipv6Packet.WriteHeader(syn, Peer, IpAddress.Parse(destination), IpProtocol.Tcp, syn.Length - 40);
        AssertDropped(stack, syn, DropReason.NotForUs);
    }

    [Fact]
    public void Each_family_is_answered_only_for_the_addresses_configured()
    {
        var v4Only = new NetStack(new NetStackOptions { Address = ScriptedPeer.StackAddress });
        v4Only.Listen(80);
        AssertDropped(v4Only, Syn(Peer, Us), DropReason.NotForUs);
        AssertDropped(v4Only, LinuxIpv6Captures.EchoRequest, DropReason.NotForUs);

        var v6Only = new NetStack(new NetStackOptions { Address = Us });
        v6Only.Listen(80);
        AssertDropped(v6Only, Syn(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress), DropReason.NotForUs);
        Assert.Single(ReceiveAndDrain(v6Only, Syn(Peer, Us)));
    }

    [Theory]
    [InlineData(IpProtocol.Udp)]
    [InlineData(Ipv6Packet.NoNextHeader)]
    [InlineData(50)]  // ESP
    [InlineData(253)]
    public void Unknown_next_headers_are_dropped_and_counted(byte nextHeader)
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        AssertDropped(stack, Raw(Peer, Us, nextHeader, new byte[12]), DropReason.UnknownNextHeader);
        AssertDropped(stack, Ipv6PacketTests.Packet(nextHeader, new byte[12], Ipv6PacketTests.DestinationOptions()), DropReason.UnknownNextHeader);
    }

    [Fact]
    public void Malformed_packets_are_dropped_with_their_reasons()
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        AssertDropped(stack, LinuxIpv6Captures.SecondFragment, DropReason.IpFragment);
        AssertDropped(stack, LinuxIpv6Captures.EchoRequest[..39], DropReason.TooShort);
        AssertDropped(stack, LinuxIpv6Captures.EchoRequest[..^1], DropReason.BadIpv6PayloadLength);
        var badLength = Ipv6PacketTests.Packet(IpProtocol.Tcp, [], Ipv6PacketTests.HopByHop());
        badLength[41] = 3;
        AssertDropped(stack, badLength, DropReason.BadIpv6ExtensionHeader);
        AssertDropped(stack, Ipv6PacketTests.Packet(IpProtocol.Tcp, new byte[20], Ipv6PacketTests.Routing(2)), DropReason.RoutingHeaderSegmentsLeft);
        AssertDropped(stack, Ipv6PacketTests.Packet(IpProtocol.Tcp, new byte[20], Ipv6PacketTests.HopByHop(0xC2, 4, 0, 1, 0, 0)), DropReason.Ipv6UnrecognizedOption);

        byte[] badChecksum = LinuxIpv6Captures.EchoRequest;
        badChecksum[^1] ^= 1;
        AssertDropped(stack, badChecksum, DropReason.BadIcmpChecksum);
        Assert.Equal(0, stack.Counters.Dropped(DropReason.InternalError));
    }

    [Fact]
    public void Icmpv6_messages_other_than_echo_and_errors_are_not_handled()
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        AssertDropped(stack, IcmpV6EchoResponderTests.Request(IcmpV6Packet.TypeNeighborSolicitation, 0, 0, 0, new byte[16]), DropReason.UnsupportedIcmp);
        // An error is acted on only when it quotes a TCP segment of ours; zeros are no IPv6 header.
        AssertDropped(stack, IcmpV6EchoResponderTests.Request(IcmpV6Packet.TypeDestinationUnreachable, 4, 0, 0, new byte[48]), DropReason.BadQuotedPacket);
        AssertDropped(stack, IcmpV6EchoResponderTests.Request(IcmpV6Packet.TypeEchoReply, 0, 1, 1, default), DropReason.UnsupportedIcmp);
    }

    [Fact]
    public void An_ipv6_address_needs_an_mtu_of_1280()
    {
        var e = Assert.Throws<ArgumentException>(() => new NetStack(new NetStackOptions { Mtu = 1279 }));
        Assert.Contains("1280", e.Message);
        _ = new NetStack(new NetStackOptions { Mtu = 1280 });
        _ = new NetStack(new NetStackOptions { Mtu = 576, Address = ScriptedPeer.StackAddress });
        Assert.Throws<ArgumentException>(() => new NetStack(new NetStackOptions { Addresses = [] }));
    }

    // ---- Packet Too Big (RFC 4443 §3.2), reported, not acted on ----

    private static readonly IpAddress Router = IpAddress.Parse("2001:2:ff::1");

    /// <summary>A Packet Too Big from <paramref name="from"/> quoting the first bytes of <paramref name="invoking"/>.</summary>
    private static byte[] PacketTooBig(IpAddress from, uint mtu, byte[] invoking, int quoted = 1232)
    {
        var icmp = new byte[8 + Math.Min(quoted, invoking.Length)];
        IcmpV6Packet.WriteHeader(icmp, IcmpV6Packet.TypePacketTooBig, 0, mtu);
        invoking.AsSpan(0, icmp.Length - 8).CopyTo(icmp.AsSpan(8));
        IcmpV6Packet.WriteChecksum(icmp, from, Us);
        return Raw(from, Us, IpProtocol.IcmpV6, icmp);
    }

    /// <summary>An IPv6 connection with 4000 bytes sent by the stack; returns the first segment as it went out.</summary>
    private static (ScriptedPeer peer, Tcb tcb, byte[] firstSegment, List<PacketTooBigMessage> reports) ConnectionWithDataInFlight()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var reports = new List<PacketTooBigMessage>();
        peer.Stack.PacketTooBig += reports.Add;
        var c = new ScriptedConnection(peer, clientAddress: Peer);
        var tcb = c.Establish();
        tcb.Send(new byte[4000]);
        peer.Stack.Poll(peer.Now);
        Assert.True(peer.Stack.Transmit.TryDequeue(out var first));
        byte[] bytes = first.Span.ToArray();
        peer.Stack.Transmit.Return(first);
        peer.Drain();
        Assert.Equal(1500, bytes.Length); // 40 + 20 + 1440
        return (peer, tcb, bytes, reports);
    }

    [Fact]
    public void Packet_too_big_about_our_segment_is_reported_and_lowers_the_connections_mss()
    {
        var (peer, tcb, segment, reports) = ConnectionWithDataInFlight();

        peer.Stack.Receive(PacketTooBig(Router, 1400, segment), peer.Now);
        // RFC 8201 §4: what is in flight goes again in segments that fit 1400 bytes: 1400 - 40 - 20 = 1340.
        var resent = peer.Poll();
        Assert.NotEmpty(resent);
        Assert.All(resent, s => Assert.True(s.Payload.Length <= 1340, $"{s.Payload.Length} bytes do not fit"));
        Assert.Equal(tcb.SndUna.Value, resent[0].Seq);

        var report = Assert.Single(reports);
        Assert.Equal(Router, report.ReportedBy);
        Assert.Equal(1400u, report.ReportedMtu);
        Assert.Equal(1400, report.Mtu);
        Assert.Equal(tcb.Tuple, report.Connection);
        Assert.Equal(tcb.SndUna.Value, report.SequenceNumber);
        Assert.Equal(1, peer.Stack.Counters.PacketTooBigReceived);
        Assert.Equal(0, peer.Stack.Counters.TotalDropped);
        Assert.Equal(1340, tcb.SendMss);
        Assert.Equal(1, peer.Stack.Counters.PathMtuReductions);
    }

    [Fact]
    public void A_reported_mtu_below_1280_is_raised_to_1280()
    {
        var (peer, _, segment, reports) = ConnectionWithDataInFlight();
        peer.Stack.Receive(PacketTooBig(Router, 576, segment), peer.Now);
        var report = Assert.Single(reports);
        Assert.Equal(576u, report.ReportedMtu);
        Assert.Equal(1280, report.Mtu); // RFC 8201 §4
    }

    [Fact]
    public void Packet_too_big_quoting_what_we_cannot_have_sent_is_dropped()
    {
        var (peer, _, segment, reports) = ConnectionWithDataInFlight();

        // Quoted source is not ours.
        byte[] notOurs = segment.ToArray();
        Ipv6Packet.WriteHeader(notOurs, IpAddress.Parse("2001:2::9"), Peer, IpProtocol.Tcp, notOurs.Length - 40);
        AssertDropped(peer.Stack, PacketTooBig(Router, 1400, notOurs), DropReason.BadQuotedPacket);

        // Too little quoted to show the ports and sequence number; a quote that is not even an IPv6 header.
        AssertDropped(peer.Stack, PacketTooBig(Router, 1400, segment, quoted: 40 + 7), DropReason.BadQuotedPacket);
        AssertDropped(peer.Stack, PacketTooBig(Router, 1400, segment, quoted: 39), DropReason.BadQuotedPacket);

        // Linux's own Packet Too Big quotes an echo request, not TCP: nothing to report.
        var linux = new NetStack(new NetStackOptions { Address = LinuxIpv6Captures.Client });
        AssertDropped(linux, LinuxIpv6Captures.PacketTooBig, DropReason.UnsupportedIcmp);

        Assert.Empty(reports);
        Assert.Equal(0, peer.Stack.Counters.PacketTooBigReceived);
    }

    // ---- Robustness ----

    [Fact]
    public void Random_extension_header_chains_and_random_tcp_content_never_reach_an_internal_error()
    {
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        stack.Listen(80);
        var extension = Gen.OneOf(
            Gen.Byte.Array[0, 12].Select(o => Ipv6PacketTests.HopByHop(o)),
            Gen.Byte.Array[0, 12].Select(o => Ipv6PacketTests.DestinationOptions(o)),
            Gen.Select(Gen.Byte[0, 1], Gen.Int[1, 3]).Select((left, units) => Ipv6PacketTests.Routing(left, units)),
            Gen.Select(Gen.Int[0, 3], Gen.Bool).Select((offset, more) => Ipv6PacketTests.Fragment(offset, more)));
        var gen = Gen.Select(extension.Array[0, 4], Gen.Byte.Array[20, 80], Gen.UShort, Gen.Byte);
        gen.Sample((extensions, tcp, port, flags) =>
        {
            tcp[12] = 0x50; // data offset 5: a plain header, the rest is payload
            tcp[13] = flags;
            BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), (ushort)(port % 2 == 0 ? 80 : port));
            TcpSegment.WriteChecksum(tcp, Peer, Us);
            var packet = Ipv6PacketTests.Packet(IpProtocol.Tcp, tcp, extensions);
            stack.Receive(packet, 1_000_000);
            stack.Poll(1_000_000);
            while (stack.Transmit.TryDequeue(out var p)) stack.Transmit.Return(p);
        }, iter: 3000, threads: 1); // one stack: the engine is single-threaded
        Assert.Equal(0, stack.Counters.Dropped(DropReason.InternalError));
        Assert.True(stack.Counters.SegmentsReceived > 0, "no random segment reached TCP");
    }
}
