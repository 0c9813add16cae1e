using System.Buffers.Binary;
using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class IcmpV6PacketTests
{
    private static readonly IpAddress Client = LinuxIpv6Captures.Client;
    private static readonly IpAddress Server = LinuxIpv6Captures.Server;

    /// <summary>Parses the IPv6 packet, then its payload as ICMPv6 with the packet's addresses.</summary>
    private static bool Parse(byte[] packet, out DropReason reason, out byte type, out ushort checksum)
    {
        Assert.True(Ipv6Packet.TryParse(packet, out var ip, out reason), reason.ToString());
        Assert.Equal(IpProtocol.IcmpV6, ip.Protocol);
        bool ok = IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var icmp, out reason);
        type = ok ? icmp.Type : (byte)0;
        checksum = ok ? icmp.Checksum : (ushort)0;
        return ok;
    }

    [Fact]
    public void Parses_the_captured_echo_request()
    {
        var payload = LinuxIpv6Captures.EchoRequest.AsSpan(40);
        Assert.True(IcmpV6Packet.TryParse(payload, Client, Server, out var icmp, out var reason));
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(IcmpV6Packet.TypeEchoRequest, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.True(icmp.IsEchoRequest);
        Assert.False(icmp.IsError);
        Assert.Equal(0x908c, icmp.Checksum);
        Assert.Equal(9923, icmp.Identifier);
        Assert.Equal(1, icmp.SequenceNumber);
        Assert.Equal(64, icmp.Length);
        Assert.Equal(56, icmp.Payload.Length);
        Assert.Equal("TunStack"u8.ToArray(), icmp.Payload[^8..].ToArray());
    }

    [Theory]
    [InlineData("EchoRequest", IcmpV6Packet.TypeEchoRequest, 0x908c)]
    [InlineData("EchoReply", IcmpV6Packet.TypeEchoReply, 0x8f8c)]
    [InlineData("PacketTooBig", IcmpV6Packet.TypePacketTooBig, 0x3770)]
    [InlineData("RouterSolicitation", IcmpV6Packet.TypeRouterSolicitation, 0x0ca6)]
    [InlineData("MldReport", 143, 0x5911)] // behind a Hop-by-Hop header, from ::
    public void Every_captured_message_verifies_with_its_pseudo_header(string name, byte type, int checksum)
    {
        Assert.True(Parse(Ipv6PacketTests.Capture(name), out var reason, out byte parsedType, out ushort parsedChecksum), reason.ToString());
        Assert.Equal(type, parsedType);
        Assert.Equal(checksum, parsedChecksum);
    }

    [Fact]
    public void Parses_the_captured_packet_too_big()
    {
        var payload = LinuxIpv6Captures.PacketTooBig.AsSpan(40);
        Assert.True(IcmpV6Packet.TryParse(payload, Server, Client, out var icmp, out var reason), reason.ToString());
        Assert.True(icmp.IsError);
        Assert.Equal(IcmpV6Packet.TypePacketTooBig, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.Equal(1280u, icmp.Mtu);
        // RFC 4443 §3.2: as much of the invoking packet as fits in 1280 bytes: 1280 - 40 - 8.
        Assert.Equal(1232, icmp.Payload.Length);
        Assert.Equal(0x60, icmp.Payload[0] & 0xF0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Writers_reproduce_the_captured_echo_messages(bool request)
    {
        byte[] captured = (request ? LinuxIpv6Captures.EchoRequest : LinuxIpv6Captures.EchoReply).AsSpan(40).ToArray();
        var rebuilt = new byte[captured.Length];
        IcmpV6Packet.WriteEchoHeader(rebuilt, request ? IcmpV6Packet.TypeEchoRequest : IcmpV6Packet.TypeEchoReply, 9923, 1);
        captured.AsSpan(8).CopyTo(rebuilt.AsSpan(8));
        IcmpV6Packet.WriteChecksum(rebuilt, request ? Client : Server, request ? Server : Client);
        Assert.Equal(captured, rebuilt);
    }

    [Fact]
    public void Writers_reproduce_the_captured_packet_too_big()
    {
        byte[] captured = LinuxIpv6Captures.PacketTooBig.AsSpan(40).ToArray();
        var rebuilt = new byte[captured.Length];
        IcmpV6Packet.WriteHeader(rebuilt, IcmpV6Packet.TypePacketTooBig, 0, 1280);
        captured.AsSpan(8).CopyTo(rebuilt.AsSpan(8));
        IcmpV6Packet.WriteChecksum(rebuilt, Server, Client);
        Assert.Equal(captured, rebuilt);
    }

    [Fact]
    public void Round_trips_random_messages()
    {
        Gen.Select(Gen.Byte, Gen.UShort, Gen.UShort, Gen.Byte.Array[0, 300], Gen.Byte.Array[16]).Sample((type, id, seq, payload, source) =>
        {
            var from = IpAddress.FromV6(source);
            var message = new byte[8 + payload.Length];
            IcmpV6Packet.WriteEchoHeader(message, type, id, seq);
            payload.CopyTo(message, 8);
            IcmpV6Packet.WriteChecksum(message, from, Server);
            Assert.True(IcmpV6Packet.TryParse(message, from, Server, out var icmp, out var reason), reason.ToString());
            Assert.Equal(type, icmp.Type);
            Assert.Equal(0, icmp.Code);
            Assert.Equal(id, icmp.Identifier);
            Assert.Equal(seq, icmp.SequenceNumber);
            Assert.Equal(payload, icmp.Payload.ToArray());
        }, iter: 2000);
    }

    // ---- Malformed input ----

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void Shorter_than_8_bytes_is_TooShort(int length)
    {
        var message = LinuxIpv6Captures.EchoRequest.AsSpan(40, length);
        Assert.False(IcmpV6Packet.TryParse(message, Client, Server, out _, out var reason));
        Assert.Equal(DropReason.TooShort, reason);
    }

    [Fact]
    public void A_flipped_bit_anywhere_fails_the_checksum()
    {
        byte[] message = LinuxIpv6Captures.EchoRequest.AsSpan(40).ToArray();
        for (int i = 0; i < message.Length * 8; i++)
        {
            message[i / 8] ^= (byte)(1 << i % 8);
            Assert.False(IcmpV6Packet.TryParse(message, Client, Server, out _, out var reason));
            Assert.Equal(DropReason.BadIcmpChecksum, reason);
            message[i / 8] ^= (byte)(1 << i % 8);
        }
    }

    [Fact]
    public void The_checksum_covers_the_pseudo_header()
    {
        // The same bytes from or to another address, or checked by the ICMPv4 rule (no pseudo-header), do not verify.
        byte[] message = LinuxIpv6Captures.EchoRequest.AsSpan(40).ToArray();
        Assert.True(IcmpV6Packet.TryParse(message, Client, Server, out _, out _));
        Assert.False(IcmpV6Packet.TryParse(message, IpAddress.Parse("2001:2::3"), Server, out _, out _));
        Assert.False(IcmpV6Packet.TryParse(message, Client, IpAddress.Parse("2001:2::3"), out _, out _));
        Assert.NotEqual(0, Checksum.Compute(message));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Byte.Array[0, 100].Sample(bytes => { IcmpV6Packet.TryParse(bytes, Client, Server, out _, out _); }, iter: 5000);
    }

    [Fact]
    public void The_mtu_field_is_read_as_32_bits()
    {
        var message = new byte[8];
        IcmpV6Packet.WriteHeader(message, IcmpV6Packet.TypePacketTooBig, 0, 0x0001_0000);
        IcmpV6Packet.WriteChecksum(message, Server, Client);
        Assert.True(IcmpV6Packet.TryParse(message, Server, Client, out var icmp, out _));
        Assert.Equal(65536u, icmp.Mtu);
        Assert.Equal(0x0001_0000u, BinaryPrimitives.ReadUInt32BigEndian(message.AsSpan(4)));
    }
}
