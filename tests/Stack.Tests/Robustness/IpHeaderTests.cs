using System.Buffers.Binary;
using TunStack.Fuzz;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Malformed and unwanted IPv4 headers (RFC 791 §3.1; RFC 1122 §3.2.1): each is dropped for its own reason before
/// anything reaches TCP, nothing is sent in reply, and the stack still serves afterwards.
/// </summary>
public class IpHeaderTests
{
    private static byte[] Syn() => TargetStack.Packet(TcpFlags.Syn).Build();

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void Header_length_below_5_words_is_dropped(int ihl)
    {
        var target = new TargetStack();
        var packet = Syn();
        packet[0] = (byte)(0x40 | ihl);
        TcpPacketBuilder.RecomputeIpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadIpHeaderLength);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    [InlineData(23)] // IHL 6 says 24 bytes of header
    public void Total_length_smaller_than_the_header_is_dropped(int totalLength)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.IpOptions = [1, 1, 1, 0]).Build();
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)totalLength);
        TcpPacketBuilder.RecomputeIpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadIpTotalLength);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(65535)]
    public void Total_length_larger_than_the_packet_is_dropped(int excess)
    {
        var target = new TargetStack();
        var packet = Syn();
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)Math.Min(packet.Length + excess, 65535));
        TcpPacketBuilder.RecomputeIpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadIpTotalLength);
        target.AssertStillServes();
    }

    [Fact]
    public void Bytes_past_the_total_length_are_link_padding_and_ignored()
    {
        var target = new TargetStack();
        var packet = Syn().Concat(new byte[] { 0xde, 0xad, 0xbe, 0xef, 0, 0 }).ToArray();
        var synAck = Assert.Single(target.Inject(packet));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(1001u, synAck.Ack);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(10)] // the checksum field itself
    [InlineData(8)]  // TTL
    [InlineData(12)] // source address
    public void Bad_header_checksum_is_dropped(int byteToCorrupt)
    {
        var target = new TargetStack();
        var packet = Syn();
        packet[byteToCorrupt] ^= 0x01;
        target.AssertDropped(packet, DropReason.BadIpChecksum);
        target.AssertStillServes();
    }

    [Fact]
    public void Ip_options_are_skipped_and_the_segment_is_served()
    {
        var target = new TargetStack();
        // Router alert (RFC 2113) followed by end of options: 24 bytes of header.
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.IpOptions = [0x94, 0x04, 0x00, 0x00]).Build();
        var synAck = Assert.Single(target.Inject(packet));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        target.AssertStillServes();
    }

    [Fact]
    public void Ttl_0_is_accepted_by_a_host()
    {
        // RFC 1122 §3.2.1.7: "A host MUST NOT discard a datagram just because it was received with TTL less than 2."
        var target = new TargetStack();
        var synAck = Assert.Single(target.Inject(TargetStack.Packet(TcpFlags.Syn).With(p => p.Ttl = 0).Build()));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0x2000)] // more fragments, offset 0: the first fragment
    [InlineData(0x0001)] // offset 8 bytes, last fragment
    [InlineData(0x2010)] // a middle fragment
    [InlineData(0x6000)] // DF and MF together: contradictory, still a fragment
    [InlineData(0x1FFF)] // the largest offset
    public void Fragments_are_dropped_because_reassembly_is_not_supported(int flagsAndOffset)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.FlagsAndFragmentOffset = (ushort)flagsAndOffset).Build();
        target.AssertDropped(packet, DropReason.IpFragment);
        target.AssertStillServes();
    }

    [Fact]
    public void The_reserved_flag_bit_alone_does_not_make_a_fragment()
    {
        // RFC 791: bit 0 of the flags is reserved and must be zero; it says nothing about fragmentation.
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.FlagsAndFragmentOffset = 0x8000).Build();
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, Assert.Single(target.Inject(packet)).Flags);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]   // IPv6 hop-by-hop number, meaningless in IPv4
    [InlineData(2)]   // IGMP
    [InlineData(17)]  // UDP
    [InlineData(41)]  // IPv6 in IPv4
    [InlineData(47)]  // GRE
    [InlineData(50)]  // ESP
    [InlineData(132)] // SCTP
    [InlineData(255)] // reserved
    public void Unknown_protocols_are_dropped(int protocol)
    {
        // RFC 1122 §3.2.2.1 suggests (SHOULD) an ICMP protocol unreachable; this stack drops and counts instead.
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Protocol = (byte)protocol).Build();
        target.AssertDropped(packet, DropReason.UnsupportedProtocol);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(15)]
    public void Other_ip_versions_are_dropped(int version)
    {
        var target = new TargetStack();
        var packet = Syn();
        packet[0] = (byte)(version << 4 | 5);
        TcpPacketBuilder.RecomputeIpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadIpVersion);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(19)]
    public void Packets_shorter_than_an_ip_header_are_dropped(int length)
    {
        var target = new TargetStack();
        target.AssertDropped(Syn()[..length], DropReason.TooShort);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData("255.255.255.255")]
    [InlineData("198.18.0.255")]
    [InlineData("224.0.0.1")]
    [InlineData("198.18.0.3")]
    public void Packets_for_other_destinations_are_not_ours(string destination)
    {
        // RFC 1122 §4.2.3.10: "A TCP implementation MUST silently discard an incoming SYN segment that is addressed
        // to a broadcast or multicast address." The stack answers only for its own unicast address.
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Destination = IpAddress.Parse(destination)).Build();
        target.AssertDropped(packet, DropReason.NotForUs);
        target.AssertStillServes();
    }
}
