using System.Buffers.Binary;
using CsCheck;
using TunStack.Ip;
using TunStack.Tests.Wire;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Ip;

public class IcmpEchoResponderTests
{
    private static readonly IpAddress Us = IpAddress.Parse("198.18.0.2");
    private static readonly IpAddress Peer = IpAddress.Parse("198.18.0.1");

    /// <summary>An IPv4 packet carrying an ICMP message, built with our writers.</summary>
    private static byte[] Request(byte type, byte code, ushort id, ushort seq, ReadOnlySpan<byte> data,
        IpAddress? source = null, IpAddress? destination = null)
    {
        var packet = new byte[20 + 8 + data.Length];
        var icmp = packet.AsSpan(20);
        IcmpV4Packet.WriteEchoHeader(icmp, type, id, seq);
        icmp[1] = code;
        data.CopyTo(icmp[8..]);
        IcmpV4Packet.WriteChecksum(icmp);
        Ipv4Packet.WriteHeader(packet, source ?? Peer, destination ?? Us, IpProtocol.Icmp, icmp.Length, 0x1234);
        return packet;
    }

    private static bool Reply(byte[] request, Span<byte> reply, out int length, out DropReason reason)
    {
        Assert.True(Ipv4Packet.TryParse(request, out var ip, out var ipReason), ipReason.ToString());
        return IcmpEchoResponder.TryBuildReply(ip, Us, reply, out length, out reason);
    }

    [Fact]
    public void Answers_the_captured_linux_ping_like_linux_does()
    {
        var reply = new byte[1500];
        Assert.True(Reply(LinuxCaptures.EchoRequest, reply, out int length, out var reason), reason.ToString());
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(84, length);

        // The ICMP message is byte-for-byte what Linux answered (type 0, checksum 0xd732, same id/seq/data).
        Assert.Equal(LinuxCaptures.EchoReply.AsSpan(20).ToArray(), reply.AsSpan(20, 64).ToArray());

        // The IP header differs only where the choice is ours: Linux uses id 2376 and no DF; we send an atomic
        // datagram (DF, id 0, RFC 6864).
        Assert.True(Ipv4Packet.TryParse(reply.AsSpan(0, length), out var ip, out _));
        Assert.Equal(Us, ip.Source);
        Assert.Equal(Peer, ip.Destination);
        Assert.Equal(64, ip.Ttl);
        Assert.Equal(IpProtocol.Icmp, ip.Protocol);
        Assert.Equal(84, ip.TotalLength);
        Assert.Equal(0, Checksum.Compute(ip.Header));
    }

    [Fact]
    public void Replies_to_random_requests_with_the_same_id_seq_and_data()
    {
        Gen.Select(Gen.UShort, Gen.UShort, Gen.Byte.Array[0, 1472], Gen.UInt[0x0100_0000, 0xDFFF_FFFF]).Sample((id, seq, data, src) =>
        {
            var source = IpAddress.FromV4(src);
            if (source == Us || src >> 24 == 127) return;
            byte[] request = Request(IcmpV4Packet.TypeEchoRequest, 0, id, seq, data, source);
            var reply = new byte[request.Length];
            Assert.True(Reply(request, reply, out int length, out var reason), reason.ToString());
            Assert.Equal(request.Length, length);

            Assert.True(Ipv4Packet.TryParse(reply, out var ip, out var ipReason), ipReason.ToString());
            Assert.Equal(Us, ip.Source);
            Assert.Equal(source, ip.Destination);
            Assert.Equal(64, ip.Ttl);
            Assert.Equal(IpProtocol.Icmp, ip.Protocol);
            Assert.False(ip.IsFragment);
            Assert.True(IcmpV4Packet.TryParse(ip.Payload, out var icmp, out var icmpReason), icmpReason.ToString());
            Assert.Equal(IcmpV4Packet.TypeEchoReply, icmp.Type);
            Assert.Equal(0, icmp.Code);
            Assert.Equal(id, icmp.Identifier);
            Assert.Equal(seq, icmp.SequenceNumber);
            Assert.Equal(data, icmp.Payload.ToArray());
        }, iter: 1000);
    }

    [Fact]
    public void Can_reply_in_place_over_the_request()
    {
        byte[] request = Request(IcmpV4Packet.TypeEchoRequest, 0, 7, 9, "in place"u8);
        var separate = new byte[request.Length];
        Assert.True(Reply(request, separate, out int expectedLength, out _));

        Assert.True(Ipv4Packet.TryParse(request, out var ip, out _));
        Assert.True(IcmpEchoResponder.TryBuildReply(ip, Us, request, out int length, out _));
        Assert.Equal(expectedLength, length);
        Assert.Equal(separate, request);
    }

    [Fact]
    public void Request_ip_options_are_not_echoed()
    {
        // IHL 6 (NOP NOP NOP EOL): the reply has a plain 20-byte header, 4 bytes shorter, same ICMP message.
        byte[] plain = Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 2, "options"u8);
        var withOptions = new byte[plain.Length + 4];
        plain.AsSpan(0, 20).CopyTo(withOptions);
        withOptions[0] = 0x46;
        BinaryPrimitives.WriteUInt16BigEndian(withOptions.AsSpan(2), (ushort)withOptions.Length);
        withOptions[20] = 1; withOptions[21] = 1; withOptions[22] = 1; withOptions[23] = 0;
        plain.AsSpan(20).CopyTo(withOptions.AsSpan(24));
        withOptions[10] = 0; withOptions[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(withOptions.AsSpan(10), Checksum.Compute(withOptions.AsSpan(0, 24)));

        var expected = new byte[plain.Length];
        Assert.True(Reply(plain, expected, out int expectedLength, out _));
        var reply = new byte[withOptions.Length];
        Assert.True(Reply(withOptions, reply, out int length, out _));
        Assert.Equal(expectedLength, length);
        Assert.Equal(expected, reply[..length]);

        // In place too: the data moves back by 4 bytes.
        Assert.True(Ipv4Packet.TryParse(withOptions, out var ip, out _));
        Assert.True(IcmpEchoResponder.TryBuildReply(ip, Us, withOptions, out length, out _));
        Assert.Equal(expected, withOptions[..length]);
    }

    [Theory]
    [InlineData(IcmpV4Packet.TypeEchoReply, 0)]
    [InlineData(IcmpV4Packet.TypeDestinationUnreachable, 3)]
    [InlineData(IcmpV4Packet.TypeTimeExceeded, 0)]
    [InlineData(13, 0)] // timestamp request
    [InlineData(IcmpV4Packet.TypeEchoRequest, 1)] // echo request with a non-zero code
    public void Anything_but_an_echo_request_is_not_answered(byte type, byte code)
    {
        AssertDropped(Request(type, code, 1, 1, "x"u8), DropReason.UnsupportedIcmp);
    }

    [Fact]
    public void Request_for_another_address_is_not_answered()
    {
        AssertDropped(Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, [], destination: IpAddress.Parse("198.18.0.3")),
            DropReason.NotForUs);
        AssertDropped(Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, [], destination: IpAddress.Parse("255.255.255.255")),
            DropReason.NotForUs);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("127.0.0.1")]
    [InlineData("224.0.0.1")]
    [InlineData("239.255.255.250")]
    [InlineData("255.255.255.255")]
    [InlineData("198.18.0.2")] // our own address, from outside
    public void Request_from_a_non_unicast_source_is_not_answered(string source)
    {
        AssertDropped(Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, [], source: IpAddress.Parse(source)),
            DropReason.BadSourceAddress);
    }

    [Fact]
    public void Non_icmp_protocol_is_not_answered()
    {
        byte[] packet = Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, []);
        Ipv4Packet.WriteHeader(packet, Peer, Us, IpProtocol.Tcp, packet.Length - 20, 1);
        AssertDropped(packet, DropReason.UnsupportedProtocol);
    }

    [Fact]
    public void Fragment_is_not_answered()
    {
        byte[] packet = Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, "frag"u8);
        Ipv4Packet.WriteHeader(packet, Peer, Us, IpProtocol.Icmp, packet.Length - 20, 1, dontFragment: false);
        packet[6] |= 0x20; // MF
        packet[10] = 0; packet[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Checksum.Compute(packet.AsSpan(0, 20)));
        AssertDropped(packet, DropReason.IpFragment);
    }

    [Fact]
    public void Bad_icmp_checksum_is_not_answered()
    {
        byte[] packet = Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, "data"u8);
        packet[^1] ^= 1;
        AssertDropped(packet, DropReason.BadIcmpChecksum);
    }

    [Fact]
    public void Too_short_icmp_is_not_answered()
    {
        var packet = new byte[27];
        Ipv4Packet.WriteHeader(packet, Peer, Us, IpProtocol.Icmp, 7, 1);
        packet[20] = IcmpV4Packet.TypeEchoRequest;
        AssertDropped(packet, DropReason.TooShort);
    }

    [Fact]
    public void Reply_buffer_too_small_is_refused_and_exact_size_is_enough()
    {
        byte[] request = Request(IcmpV4Packet.TypeEchoRequest, 0, 1, 1, new byte[100]);
        var small = new byte[request.Length - 1];
        Assert.False(Reply(request, small, out int length, out var reason));
        Assert.Equal(DropReason.BufferTooSmall, reason);
        Assert.Equal(0, length);
        Assert.All(small, b => Assert.Equal(0, b)); // nothing written
        Assert.True(Reply(request, new byte[request.Length], out length, out _));
        Assert.Equal(request.Length, length);
    }

    [Fact]
    public void Random_icmp_bytes_never_throw()
    {
        Gen.Select(Gen.Byte.Array[0, 100], Gen.Bool, Gen.Int[0, 200]).Sample((icmp, fixChecksum, replySize) =>
        {
            if (fixChecksum && icmp.Length >= 8)
            {
                icmp[2] = 0; icmp[3] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp));
            }
            var packet = new byte[20 + icmp.Length];
            Ipv4Packet.WriteHeader(packet, Peer, Us, IpProtocol.Icmp, icmp.Length, 1);
            icmp.CopyTo(packet, 20);
            bool ok = Reply(packet, new byte[replySize], out int length, out var reason);
            Assert.Equal(ok, reason == DropReason.None);
            Assert.True(ok ? length == packet.Length : length == 0);
        }, iter: 20_000);
    }

    private static void AssertDropped(byte[] request, DropReason expected)
    {
        Assert.False(Reply(request, new byte[1500], out int length, out var reason));
        Assert.Equal(expected, reason);
        Assert.Equal(0, length);
    }
}
