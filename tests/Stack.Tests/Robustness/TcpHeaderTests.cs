using System.Buffers.Binary;
using TunStack.Fuzz;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Malformed TCP headers and options (RFC 9293 §3.1, §3.2): dropped and counted, never answered, and the stack
/// still serves afterwards.
/// </summary>
public class TcpHeaderTests
{
    private const int TcpOffset = TcpPacketBuilder.IpHeaderLength;

    [Theory]
    [InlineData(TcpOffset + 16)] // the checksum itself
    [InlineData(TcpOffset + 4)]  // the sequence number
    [InlineData(TcpOffset + 20)] // the first payload byte
    [InlineData(-1)]             // the last payload byte
    public void Bad_checksum_is_dropped(int byteToCorrupt)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Payload = "data"u8.ToArray()).Build();
        packet[byteToCorrupt < 0 ? packet.Length + byteToCorrupt : byteToCorrupt] ^= 0x40;
        target.AssertDropped(packet, DropReason.BadTcpChecksum);
        target.AssertStillServes();
    }

    [Fact]
    public void A_zero_checksum_is_not_a_missing_checksum()
    {
        // Unlike UDP, TCP has no "no checksum" value (RFC 9293 §3.1, MUST-2/3).
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).Build();
        packet[TcpOffset + 16] = 0;
        packet[TcpOffset + 17] = 0;
        target.AssertDropped(packet, DropReason.BadTcpChecksum);
        target.AssertStillServes();
    }

    [Fact]
    public void Bad_checksum_on_an_established_connection_changes_nothing()
    {
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        var packet = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, c.ClientPortNumber,
            TargetStack.ListenPort, c.ClientNxt, c.ServerNxt, TcpFlags.Rst, 0, default, default);
        packet[^1] ^= 0x01;
        target.AssertDropped(packet, DropReason.BadTcpChecksum);
        Assert.Equal(TcpState.Established, tcb.State);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Data_offset_below_5_is_dropped(int dataOffset)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Payload = new byte[40]).Build();
        packet[TcpOffset + 12] = (byte)(dataOffset << 4);
        TcpPacketBuilder.RecomputeTcpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadTcpDataOffset);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(6, 0)]   // 24 bytes of header in a 20-byte segment
    [InlineData(15, 0)]  // 60 bytes of header in a 20-byte segment
    [InlineData(15, 39)] // one byte short
    public void Data_offset_past_the_end_of_the_segment_is_dropped(int dataOffset, int payloadLength)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Payload = new byte[payloadLength]).Build();
        packet[TcpOffset + 12] = (byte)(dataOffset << 4);
        TcpPacketBuilder.RecomputeTcpChecksum(packet);
        target.AssertDropped(packet, DropReason.BadTcpDataOffset);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Segment_shorter_than_a_tcp_header_is_dropped(int tcpLength)
    {
        var target = new TargetStack();
        var full = TargetStack.Packet(TcpFlags.Syn).Build();
        var packet = full[..(TcpOffset + tcpLength)];
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        TcpPacketBuilder.RecomputeIpChecksum(packet);
        target.AssertDropped(packet, DropReason.TooShort);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 5, 0xb4 })]                     // MSS with length 0
    [InlineData(new byte[] { 8, 1, 0, 0 })]                         // length 1
    [InlineData(new byte[] { 1, 1, 3, 0 })]                         // window scale with length 0
    [InlineData(new byte[] { 2, 8, 5, 0xb4 })]                      // MSS claiming 8 bytes in a 4-byte area
    [InlineData(new byte[] { 1, 1, 1, 2 })]                         // a kind with no room for its length byte
    [InlineData(new byte[] { 254, 255, 0, 0 })]                     // an experimental option claiming 255 bytes
    [InlineData(new byte[] { 2, 4, 5, 0xb4, 1, 1, 4, 2, 8, 11, 0, 0 })] // timestamps one byte too long for the area
    public void Malformed_option_lengths_drop_the_segment(byte[] options)
    {
        // RFC 9293 §3.1: an implementation must handle an illegal option length (e.g., zero) without crashing; this
        // stack drops the segment (the RFC suggests resetting, which a spoofed segment should not be able to cause).
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Options = options).Build();
        target.AssertDropped(packet, DropReason.BadTcpOption);
        target.AssertStillServes();
    }

    [Fact]
    public void Malformed_options_on_an_established_connection_drop_only_that_segment()
    {
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        var packet = TargetStack.Packet(TcpFlags.Ack | TcpFlags.Fin, c.ClientNxt, c.ServerNxt, sourcePort: c.ClientPortNumber)
            .With(p => p.Options = [1, 1, 5, 0]).Build();
        target.AssertDropped(packet, DropReason.BadTcpOption);
        Assert.Equal(TcpState.Established, tcb.State); // the FIN was not processed
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(new byte[] { 0, 2, 0, 0 })]                 // end of list first: the rest is padding
    [InlineData(new byte[] { 99, 2, 1, 0 })]                // unknown kind with a valid length
    [InlineData(new byte[] { 2, 3, 5, 1 })]                 // MSS with the wrong length: ignored (MUST-68 spirit)
    [InlineData(new byte[] { 1, 1, 1, 1, 1, 1, 1, 1 })]     // nothing but NOPs
    [InlineData(new byte[] { 34, 2, 0, 0 })]                // TCP Fast Open cookie request
    public void Odd_but_well_formed_options_are_ignored(byte[] options)
    {
        var target = new TargetStack();
        var synAck = Assert.Single(target.Inject(TargetStack.Packet(TcpFlags.Syn).With(p => p.Options = options).Build()));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(1001u, synAck.Ack);
        Assert.Null(synAck.Options.WindowScale); // no window scale was offered
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(0, TargetStack.ListenPort)]
    [InlineData(TargetStack.AttackerPort, 0)]
    public void Port_0_is_dropped_without_a_reset(int sourcePort, int destinationPort)
    {
        // Port 0 is reserved (RFC 6335 §6): no connection can use it, and a RST to port 0 would only help a scanner.
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn, destinationPort: (ushort)destinationPort, sourcePort: (ushort)sourcePort).Build();
        target.AssertDropped(packet, DropReason.BadTcpPort);
        Assert.Equal(0, target.Counters.ResetsSent);
        target.AssertStillServes();
    }
}
