using System.Buffers.Binary;
using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class IcmpV4PacketTests
{
    private static byte[] IcmpPart(byte[] packet) => packet.AsSpan(20).ToArray();

    [Fact]
    public void Parses_the_captured_echo_request()
    {
        Assert.True(IcmpV4Packet.TryParse(IcmpPart(LinuxCaptures.EchoRequest), out var icmp, out var reason));
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(IcmpV4Packet.TypeEchoRequest, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.True(icmp.IsEchoRequest);
        Assert.Equal(0xcf32, icmp.Checksum);
        Assert.Equal(4859, icmp.Identifier);
        Assert.Equal(1, icmp.SequenceNumber);
        Assert.Equal(64, icmp.Length);
        Assert.Equal(56, icmp.Payload.Length);
        Assert.Equal("TunStack"u8.ToArray(), icmp.Payload[^8..].ToArray());
    }

    [Fact]
    public void Parses_the_captured_echo_reply()
    {
        Assert.True(IcmpV4Packet.TryParse(IcmpPart(LinuxCaptures.EchoReply), out var icmp, out _));
        Assert.Equal(IcmpV4Packet.TypeEchoReply, icmp.Type);
        Assert.False(icmp.IsEchoRequest);
        Assert.Equal(0xd732, icmp.Checksum);
        Assert.Equal(4859, icmp.Identifier);
        Assert.Equal(1, icmp.SequenceNumber);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Writers_reproduce_the_captured_messages(bool request)
    {
        byte[] captured = IcmpPart(request ? LinuxCaptures.EchoRequest : LinuxCaptures.EchoReply);
        var rebuilt = new byte[captured.Length];
        IcmpV4Packet.WriteEchoHeader(rebuilt, request ? IcmpV4Packet.TypeEchoRequest : IcmpV4Packet.TypeEchoReply, 4859, 1);
        captured.AsSpan(8).CopyTo(rebuilt.AsSpan(8));
        IcmpV4Packet.WriteChecksum(rebuilt);
        Assert.Equal(captured, rebuilt);
    }

    [Fact]
    public void Round_trips_random_messages()
    {
        Gen.Select(Gen.Byte, Gen.UShort, Gen.UShort, Gen.Byte.Array[0, 300]).Sample((type, id, seq, payload) =>
        {
            var message = new byte[8 + payload.Length];
            IcmpV4Packet.WriteEchoHeader(message, type, id, seq);
            payload.CopyTo(message, 8);
            IcmpV4Packet.WriteChecksum(message);
            Assert.True(IcmpV4Packet.TryParse(message, out var icmp, out var reason), reason.ToString());
            Assert.Equal(type, icmp.Type);
            Assert.Equal(0, icmp.Code);
            Assert.Equal(id, icmp.Identifier);
            Assert.Equal(seq, icmp.SequenceNumber);
            Assert.Equal(payload, icmp.Payload.ToArray());
            Assert.Equal(0, Checksum.Compute(message));
        }, iter: 2000);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void Shorter_than_8_bytes_is_TooShort(int length)
    {
        Assert.False(IcmpV4Packet.TryParse(IcmpPart(LinuxCaptures.EchoRequest).AsSpan(0, length), out _, out var reason));
        Assert.Equal(DropReason.TooShort, reason);
    }

    [Fact]
    public void Eight_bytes_with_a_valid_checksum_is_enough()
    {
        var message = new byte[8];
        IcmpV4Packet.WriteEchoHeader(message, IcmpV4Packet.TypeEchoRequest, 1, 2);
        IcmpV4Packet.WriteChecksum(message);
        Assert.True(IcmpV4Packet.TryParse(message, out var icmp, out _));
        Assert.True(icmp.Payload.IsEmpty);
    }

    [Theory]
    [InlineData(2)]  // the checksum itself
    [InlineData(5)]  // identifier
    [InlineData(63)] // last payload byte
    public void Bad_checksum_is_rejected(int corruptAt)
    {
        byte[] message = IcmpPart(LinuxCaptures.EchoRequest);
        message[corruptAt] ^= 0x10;
        Assert.False(IcmpV4Packet.TryParse(message, out _, out var reason));
        Assert.Equal(DropReason.BadIcmpChecksum, reason);
    }

    [Fact]
    public void Truncated_message_fails_the_checksum()
    {
        byte[] message = IcmpPart(LinuxCaptures.EchoRequest);
        Assert.False(IcmpV4Packet.TryParse(message.AsSpan(0, 60), out _, out var reason));
        Assert.Equal(DropReason.BadIcmpChecksum, reason);
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Byte.Array[0, 100].Sample(bytes =>
        {
            if (IcmpV4Packet.TryParse(bytes, out var icmp, out _))
            {
                _ = icmp.Type; _ = icmp.Code; _ = icmp.Checksum; _ = icmp.Identifier; _ = icmp.SequenceNumber;
                Assert.Equal(bytes.Length - 8, icmp.Payload.Length);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Random_bytes_with_a_fixed_up_checksum_parse()
    {
        Gen.Byte.Array[8, 100].Sample(bytes =>
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), 0);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), Checksum.Compute(bytes));
            Assert.True(IcmpV4Packet.TryParse(bytes, out _, out _));
        }, iter: 5000);
    }
}
