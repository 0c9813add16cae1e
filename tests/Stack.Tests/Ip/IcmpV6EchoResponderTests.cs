using CsCheck;
using TunStack.Ip;
using TunStack.Tests.Wire;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Ip;

public class IcmpV6EchoResponderTests
{
    private static readonly IpAddress Us = LinuxIpv6Captures.Server;
    private static readonly IpAddress Peer = LinuxIpv6Captures.Client;

    /// <summary>An IPv6 packet from the peer to us carrying one ICMPv6 message, behind optional extension headers.</summary>
    internal static byte[] Request(byte type, byte code, ushort id, ushort seq, ReadOnlySpan<byte> data,
        params (byte, byte[])[] extensions)
    {
        var icmp = new byte[8 + data.Length];
        IcmpV6Packet.WriteEchoHeader(icmp, type, id, seq);
        icmp[1] = code;
        data.CopyTo(icmp.AsSpan(8));
        IcmpV6Packet.WriteChecksum(icmp, Peer, Us);
        return Ipv6PacketTests.Packet(IpProtocol.IcmpV6, icmp, extensions);
    }

    private static bool Reply(byte[] request, Span<byte> reply, out int length, out DropReason reason)
    {
        Assert.True(Ipv6Packet.TryParse(request, out var ip, out reason), reason.ToString());
        Assert.True(IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var echo, out reason), reason.ToString());
        return IcmpV6EchoResponder.TryBuildReply(ip, echo, reply, out length, out reason);
    }

    [Fact]
    public void Answers_the_captured_linux_ping_like_linux_does()
    {
        var reply = new byte[1500];
        Assert.True(Reply(LinuxIpv6Captures.EchoRequest, reply, out int length, out var reason), reason.ToString());
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(104, length);

        // Byte for byte what Linux answered, except the flow label: Linux labels its flows (0xcd6a2), we send
        // unlabelled packets (zero, RFC 6437 §2).
        byte[] expected = LinuxIpv6Captures.EchoReply;
        expected[1] &= 0xF0;
        expected[2] = 0;
        expected[3] = 0;
        Assert.Equal(expected, reply.AsSpan(0, length).ToArray());
    }

    [Fact]
    public void Replies_without_the_request_extension_headers()
    {
        byte[] request = Request(IcmpV6Packet.TypeEchoRequest, 0, 7, 9, "abc"u8,
            Ipv6PacketTests.HopByHop(5, 2, 0, 0), Ipv6PacketTests.DestinationOptions());
        var reply = new byte[200];
        Assert.True(Reply(request, reply, out int length, out var reason), reason.ToString());
        Assert.Equal(40 + 8 + 3, length);
        Assert.True(Ipv6Packet.TryParse(reply.AsSpan(0, length), out var ip, out _));
        Assert.Equal(IpProtocol.IcmpV6, ip.NextHeader);
        Assert.Equal(0, ip.ExtensionHeadersLength);
        Assert.Equal(Us, ip.Source);
        Assert.Equal(Peer, ip.Destination);
        Assert.True(IcmpV6Packet.TryParse(ip.Payload, Us, Peer, out var icmp, out _));
        Assert.Equal(IcmpV6Packet.TypeEchoReply, icmp.Type);
        Assert.Equal(7, icmp.Identifier);
        Assert.Equal(9, icmp.SequenceNumber);
        Assert.Equal("abc"u8.ToArray(), icmp.Payload.ToArray());
    }

    [Fact]
    public void Replies_to_random_requests_with_the_same_id_seq_and_data()
    {
        Gen.Select(Gen.UShort, Gen.UShort, Gen.Byte.Array[0, 1452]).Sample((id, seq, data) =>
        {
            byte[] request = Request(IcmpV6Packet.TypeEchoRequest, 0, id, seq, data);
            var reply = new byte[request.Length];
            Assert.True(Reply(request, reply, out int length, out var reason), reason.ToString());
            Assert.Equal(request.Length, length);
            Assert.True(Ipv6Packet.TryParse(reply, out var ip, out _));
            Assert.Equal(64, ip.HopLimit);
            Assert.True(IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var icmp, out reason), reason.ToString());
            Assert.Equal(IcmpV6Packet.TypeEchoReply, icmp.Type);
            Assert.Equal(id, icmp.Identifier);
            Assert.Equal(seq, icmp.SequenceNumber);
            Assert.Equal(data, icmp.Payload.ToArray());
        }, iter: 500);
    }

    [Theory]
    [InlineData(IcmpV6Packet.TypeEchoReply, 0)]
    [InlineData(IcmpV6Packet.TypeEchoRequest, 1)] // echo has no codes but 0
    [InlineData(IcmpV6Packet.TypeDestinationUnreachable, 4)]
    [InlineData(IcmpV6Packet.TypeNeighborSolicitation, 0)]
    public void Anything_but_an_echo_request_is_not_answered(byte type, byte code)
    {
        var reply = new byte[200];
        Assert.False(Reply(Request(type, code, 1, 1, "x"u8), reply, out _, out var reason));
        Assert.Equal(DropReason.UnsupportedIcmp, reason);
    }

    [Fact]
    public void A_reply_that_does_not_fit_is_refused()
    {
        byte[] request = Request(IcmpV6Packet.TypeEchoRequest, 0, 1, 1, new byte[100]);
        var reply = new byte[request.Length - 1];
        Assert.False(Reply(request, reply, out _, out var reason));
        Assert.Equal(DropReason.BufferTooSmall, reason);
    }
}
