using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// With a device that segments and checksums TCP (TUN offloads), the engine sends what the windows allow as one
/// super-packet of whole segments, leaves the checksum partial for the device, and still keeps one record per segment,
/// so acknowledgments, SACK and retransmissions work segment by segment.
/// </summary>
public class SegmentationOffloadTests
{
    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Connection(
        DeviceOffloads offloads = DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation4, IpAddress? client = null)
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 262144, sendBuffer: 262144));
        peer.Stack.Tracer = null;
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientAddress: client);
        var tcb = c.Establish(new TcpOptions { Mss = 1460, WindowScale = 7 });
        peer.Stack.DeviceOffloads = offloads;
        return (peer, c, tcb);
    }

    private const DeviceOffloads AllOffloads =
        DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation4 | DeviceOffloads.TcpSegmentation6;

    private static List<(Seg Segment, PacketInfo Info, byte[] Bytes)> Take(ScriptedPeer peer)
    {
        var taken = new List<(Seg, PacketInfo, byte[])>();
        while (peer.Stack.Transmit.TryDequeue(out var packet))
        {
            byte[] bytes = packet.Span.ToArray();
            peer.Stack.Transmit.Return(packet);
            // Complete the partial checksum as the device would, then read it like any packet.
            int header, total;
            if (bytes[0] >> 4 == 6)
            {
                Assert.True(Ipv6Packet.TryParse(bytes, out var ip6, out _));
                (header, total) = (ip6.TotalLength - ip6.Payload.Length, ip6.TotalLength);
            }
            else
            {
                Assert.True(Ipv4Packet.TryParse(bytes, out var ip, out _));
                (header, total) = (ip.HeaderLength, ip.TotalLength);
            }
            if (packet.Info.Checksum == ChecksumStatus.Partial)
                TcpSegment.CompletePartialChecksum(bytes.AsSpan(header, total - header));
            taken.Add((ScriptedPeer.Parse(bytes), packet.Info, bytes));
        }
        return taken;
    }

    [Fact]
    public void What_the_window_allows_goes_as_one_super_packet_of_whole_segments()
    {
        var (peer, c, tcb) = Connection();
        var data = Enumerable.Range(0, 10 * 1460 + 100).Select(i => (byte)(i * 7)).ToArray();
        tcb.NoDelay = true;
        tcb.Send(data);
        peer.Stack.Poll(peer.Now);
        var sent = Take(peer);

        // cwnd starts at 10 segments (RFC 6928): one super-packet of exactly 10 × 1460 bytes, for the device to cut.
        var (segment, info, _) = Assert.Single(sent);
        Assert.Equal(10 * 1460, segment.Payload.Length);
        Assert.Equal(SegmentationKind.TcpV4, info.Segmentation);
        Assert.Equal(1460, info.SegmentSize);
        Assert.Equal(ChecksumStatus.Partial, info.Checksum);
        Assert.Equal(data[..(10 * 1460)], segment.Payload);
        Assert.Equal(1, peer.Stack.Counters.SuperPacketsSent);

        // The peer acknowledges the segments one by one (the device made ten): each ACK moves SND.UNA by one.
        c.ServerNxt += 1460;
        peer.Stack.Receive(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, ScriptedConnection.ClientPort, 80,
            c.ClientNxt, c.ServerNxt, TcpFlags.Ack, 65535, default, default), peer.Now);
        Assert.Equal(new SeqNumber(c.ServerNxt), tcb.SndUna);
    }

    [Fact]
    public void Pure_acks_and_small_segments_stay_plain_but_leave_the_checksum_to_the_device()
    {
        var (peer, c, tcb) = Connection();
        tcb.NoDelay = true;
        tcb.Send("hello"u8);
        peer.Stack.Poll(peer.Now);
        var (segment, info, _) = Assert.Single(Take(peer));
        Assert.Equal("hello"u8.ToArray(), segment.Payload);
        Assert.Equal(SegmentationKind.None, info.Segmentation);
        Assert.Equal(ChecksumStatus.Partial, info.Checksum);
    }

    [Fact]
    public void A_lost_segment_inside_a_super_packet_is_retransmitted_alone()
    {
        var (peer, c, tcb) = Connection();
        tcb.NoDelay = true;
        tcb.Send(new byte[10 * 1460]);
        peer.Stack.Poll(peer.Now);
        Assert.Single(Take(peer));

        // The peer got every segment but the first; after the RTO only that one segment goes again, plain.
        peer.Now += tcb.CurrentRtoMicros;
        peer.Stack.Poll(peer.Now);
        var again = Take(peer);
        var (segment, info, _) = again[0];
        Assert.Equal(c.ServerNxt, segment.Seq);
        Assert.Equal(1460, segment.Payload.Length);
        Assert.Equal(SegmentationKind.None, info.Segmentation);
    }

    [Fact]
    public void A_received_super_packet_is_taken_whole_and_acknowledged_at_once()
    {
        var (peer, c, tcb) = Connection();
        var data = new byte[20 * 1448];
        new Random(3).NextBytes(data);
        byte[] packet = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, ScriptedConnection.ClientPort, 80,
            c.ClientNxt, c.ServerNxt, TcpFlags.Ack, 65535, default, data);
        // The kernel leaves the checksum partial on a super-packet: it must not be verified.
        packet[36] ^= 0xFF;
        peer.Stack.Receive(packet, peer.Now, new PacketInfo
        {
            Checksum = ChecksumStatus.Partial, Segmentation = SegmentationKind.TcpV4, SegmentSize = 1448,
        });
        peer.Stack.Poll(peer.Now);
        var ack = Assert.Single(Take(peer)).Segment;
        Assert.Equal(c.ClientNxt + (uint)data.Length, ack.Ack); // 20 segments' worth: acknowledged at once
        Assert.Equal(data.Length, tcb.BytesAvailable);
        Assert.Equal(1, peer.Stack.Counters.SuperPacketsReceived);
        Assert.Equal(0, peer.Stack.Counters.Dropped(DropReason.BadTcpChecksum));
    }

    [Fact]
    public void Over_ipv6_with_tso6_the_window_goes_as_one_tcpv6_super_packet_whose_checksum_the_device_completes()
    {
        var (peer, c, tcb) = Connection(AllOffloads, ScriptedPeer.PeerAddress6);
        Assert.Equal(1440, tcb.SendMss); // MTU 1500 - 60
        var data = Enumerable.Range(0, 10 * 1440 + 100).Select(i => (byte)(i * 11)).ToArray();
        tcb.NoDelay = true;
        tcb.Send(data);
        peer.Stack.Poll(peer.Now);
        var sent = Take(peer);

        // One IPv6 super-packet of exactly cwnd = 10 segments, marked for TCPv6 segmentation by the device; Take
        // completes its partial checksum as the device would and Parse verifies it over the IPv6 pseudo-header.
        var (segment, info, bytes) = Assert.Single(sent);
        Assert.Equal(6, bytes[0] >> 4);
        Assert.Equal(ScriptedPeer.PeerAddress6, segment.Destination);
        Assert.Equal(10 * 1440, segment.Payload.Length);
        Assert.Equal(SegmentationKind.TcpV6, info.Segmentation);
        Assert.Equal(1440, info.SegmentSize);
        Assert.Equal(ChecksumStatus.Partial, info.Checksum);
        Assert.Equal(data[..(10 * 1440)], segment.Payload);
        Assert.Equal(40 + 20 + 10 * 1440, bytes.Length);
        Assert.Equal(1, peer.Stack.Counters.SuperPacketsSent);

        // The device made ten segments; their ACKs move SND.UNA one segment at a time.
        c.ServerNxt += 1440;
        peer.Stack.Receive(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress6, ScriptedPeer.StackAddress6, ScriptedConnection.ClientPort, 80,
            c.ClientNxt, c.ServerNxt, TcpFlags.Ack, 65535, default, default), peer.Now);
        Assert.Equal(new SeqNumber(c.ServerNxt), tcb.SndUna);
    }

    [Fact]
    public void Over_ipv6_without_tso6_segments_stay_plain_even_when_the_device_does_tso4()
    {
        var (peer, _, tcb) = Connection(DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation4, ScriptedPeer.PeerAddress6);
        tcb.NoDelay = true;
        tcb.Send(new byte[10 * 1440]);
        peer.Stack.Poll(peer.Now);
        var sent = Take(peer);

        Assert.Equal(10, sent.Count);
        Assert.All(sent, s =>
        {
            Assert.Equal(1440, s.Segment.Payload.Length);
            Assert.Equal(SegmentationKind.None, s.Info.Segmentation);
            Assert.Equal(ChecksumStatus.Partial, s.Info.Checksum);
        });
        Assert.Equal(0, peer.Stack.Counters.SuperPacketsSent);
    }

    [Fact]
    public void Over_ipv4_with_tso6_only_segments_stay_plain()
    {
        var (peer, _, tcb) = Connection(DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation6);
        tcb.NoDelay = true;
        tcb.Send(new byte[4 * 1460]);
        peer.Stack.Poll(peer.Now);
        var sent = Take(peer);
        Assert.Equal(4, sent.Count);
        Assert.All(sent, s => Assert.Equal(SegmentationKind.None, s.Info.Segmentation));
    }

    [Fact]
    public void A_received_ipv6_super_packet_is_taken_whole_and_acknowledged_at_once()
    {
        var (peer, c, tcb) = Connection(AllOffloads, ScriptedPeer.PeerAddress6);
        var data = new byte[20 * 1428];
        new Random(6).NextBytes(data);
        byte[] packet = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress6, ScriptedPeer.StackAddress6, ScriptedConnection.ClientPort, 80,
            c.ClientNxt, c.ServerNxt, TcpFlags.Ack, 65535, default, data);
        packet[40 + 16] ^= 0xFF; // the TCP checksum: partial on a super-packet, so it must not be verified
        peer.Stack.Receive(packet, peer.Now, new PacketInfo
        {
            Checksum = ChecksumStatus.Partial, Segmentation = SegmentationKind.TcpV6, SegmentSize = 1428,
        });
        peer.Stack.Poll(peer.Now);
        var ack = Assert.Single(Take(peer)).Segment;
        Assert.Equal(ScriptedPeer.PeerAddress6, ack.Destination);
        Assert.Equal(c.ClientNxt + (uint)data.Length, ack.Ack);
        var received = new byte[data.Length];
        Assert.Equal(data.Length, tcb.Receive(received));
        Assert.Equal(data, received);
        Assert.Equal(1, peer.Stack.Counters.SuperPacketsReceived);
        Assert.Equal(0, peer.Stack.Counters.Dropped(DropReason.BadTcpChecksum));
    }
}
