using System.Buffers.Binary;
using TunStack.Tcp;
using TunStack.Tests.Wire;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>The same engine over IPv6: handshake, MSS, data, close and reset, scripted as for IPv4.</summary>
public class Ipv6TcpTests
{
    private static ScriptedConnection Connection(ScriptedPeer peer, ushort clientPort = ScriptedConnection.ClientPort) =>
        new(peer, clientPort: clientPort, clientAddress: ScriptedPeer.PeerAddress6);

    [Fact]
    public void Syn_ack_carries_mss_of_mtu_minus_60_in_an_ipv6_packet()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var c = Connection(peer);

        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1440, WindowScale = 7 }));

        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(ScriptedPeer.StackAddress6, synAck.Source);
        Assert.Equal(ScriptedPeer.PeerAddress6, synAck.Destination);
        Assert.Equal((ushort)80, synAck.SourcePort);
        Assert.Equal(ScriptedConnection.ClientPort, synAck.DestinationPort);
        Assert.Equal(c.ClientIsn + 1, synAck.Ack);
        Assert.Equal((ushort)1440, synAck.Options.Mss); // 1500 - 40 (IPv6) - 20 (TCP), RFC 9293 §3.7.1
        Assert.Equal((byte)1, synAck.Options.WindowScale); // the smallest shift that expresses the 64 KiB buffer
        // 40-byte IPv6 header + 20-byte TCP header + 8 bytes of options (MSS 4, NOP + window scale 3, NOP).
        Assert.Equal(40 + 20 + 8, synAck.PacketLength);
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        Assert.Equal(TcpState.SynReceived, tcb.State);
        Assert.Equal(1440, tcb.LocalMss);
        Assert.Equal(1, listener.HalfOpenCount);

        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(new FourTuple(ScriptedPeer.StackAddress6, 80, ScriptedPeer.PeerAddress6, ScriptedConnection.ClientPort), tcb.Tuple);
    }

    [Theory]
    [InlineData(1280, 1220)]
    [InlineData(9000, 8940)]
    [InlineData(65535, 65475)]
    public void Our_mss_over_ipv6_is_the_mtu_minus_60(int mtu, int mss)
    {
        var options = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Addresses = options.Addresses, Mtu = mtu, IsnSecret = options.IsnSecret,
        });
        peer.Stack.Listen(80);
        var synAck = Assert.Single(Connection(peer).SendSyn(new TcpOptions { Mss = 65000 }));
        Assert.Equal((ushort)mss, synAck.Options.Mss);
        // And over IPv4 the same stack still offers MTU - 40.
        var synAck4 = Assert.Single(new ScriptedConnection(peer).SendSyn(new TcpOptions { Mss = 65000 }));
        Assert.Equal((ushort)(mtu - 40), synAck4.Options.Mss);
    }

    [Fact]
    public void The_captured_linux_syn_gets_a_syn_ack()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(18080);
        peer.Stack.Receive(LinuxIpv6Captures.Syn, peer.Now);
        var synAck = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(LinuxIpv6Captures.Server, synAck.Source);
        Assert.Equal(LinuxIpv6Captures.Client, synAck.Destination);
        Assert.Equal((ushort)18080, synAck.SourcePort);
        Assert.Equal((ushort)49406, synAck.DestinationPort);
        Assert.Equal(418427410u, synAck.Ack);
        Assert.Equal((ushort)1440, synAck.Options.Mss);
        Assert.Equal((byte)1, synAck.Options.WindowScale); // Linux offered wscale 10; ours fits the 64 KiB buffer
        var tcb = Assert.Single(peer.Stack.Connections);
        Assert.Equal(1440, tcb.PeerMss);
    }

    [Fact]
    public void Missing_mss_option_means_1220_over_ipv6()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = Connection(peer);
        var tcb = c.Establish(new TcpOptions());
        Assert.Equal(1220, tcb.PeerMss); // RFC 9293 §3.7.1, MUST-15
        Assert.Equal(1220, tcb.SendMss);

        tcb.NoDelay = true; // the 560-byte tail goes at once instead of waiting for an ACK (Nagle)
        tcb.Send(new byte[3000]);
        var segments = peer.Poll();
        Assert.Equal([1220, 1220, 560], segments.Select(s => s.Payload.Length));
        Assert.All(segments, s => Assert.Equal(40 + 20 + s.Payload.Length, s.PacketLength));
    }

    [Fact]
    public void Data_both_ways_and_a_passive_close_over_ipv6()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = Connection(peer);
        var tcb = c.Establish();

        Assert.Empty(c.SendData("GET / HTTP/1.1\r\n\r\n"u8)); // the ACK is delayed, to ride on the answer
        var buffer = new byte[64];
        Assert.Equal(18, tcb.Receive(buffer));

        tcb.NoDelay = true;
        var response = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
        Assert.Equal(5000, tcb.Send(response));
        var segments = peer.Poll();
        Assert.Equal([1440, 1440, 1440, 680], segments.Select(s => s.Payload.Length));
        Assert.Equal(response, segments.SelectMany(s => s.Payload));
        Assert.All(segments, s => Assert.Equal(ScriptedPeer.PeerAddress6, s.Destination));
        c.ServerNxt += 5000;
        Assert.Empty(c.SendAck());

        var finAck = Assert.Single(c.SendFin());
        Assert.Equal(c.ClientNxt, finAck.Ack);
        Assert.Equal(TcpState.CloseWait, tcb.State);
        tcb.Close();
        var fin = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        c.ServerNxt++;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Empty(peer.Stack.Connections);
    }

    [Fact]
    public void Syn_to_a_closed_port_is_refused_over_ipv6()
    {
        var peer = new ScriptedPeer();
        var rst = Assert.Single(peer.Send(40000, 81, 777, 0, TcpFlags.Syn, source: ScriptedPeer.PeerAddress6));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(0u, rst.Seq);
        Assert.Equal(778u, rst.Ack);
        Assert.Equal(ScriptedPeer.StackAddress6, rst.Source);
        Assert.Equal(ScriptedPeer.PeerAddress6, rst.Destination);
        Assert.Equal(60, rst.PacketLength);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.NoListener));
    }

    [Fact]
    public void The_tcp_checksum_over_ipv6_covers_the_ipv6_pseudo_header()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        // A segment whose checksum was computed for another source address: the IPv6 pseudo-header differs.
        var packet = ScriptedPeer.BuildPacket(IpAddress.Parse("2001:2::7"), ScriptedPeer.StackAddress6, 40000, 80, 1, 0,
            TcpFlags.Syn, 65535, default, default);
        IpAddress.Parse("2001:2::1").WriteTo(packet.AsSpan(8));
        peer.Stack.Receive(packet, peer.Now);
        Assert.Empty(peer.Poll());
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.BadTcpChecksum));

        // The same segment behind extension headers (checksum still over the upper-layer length only) is accepted.
        var segment = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress6, ScriptedPeer.StackAddress6, 40000, 80, 1, 0,
            TcpFlags.Syn, 65535, default, default).AsSpan(40).ToArray();
        var withExtensions = Ipv6PacketTests.Packet(IpProtocol.Tcp, segment,
            Ipv6PacketTests.HopByHop(5, 2, 0, 0), Ipv6PacketTests.Fragment(0, more: false));
        peer.Stack.Receive(withExtensions, peer.Now);
        var synAck = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(2u, synAck.Ack);
    }

    [Fact]
    public void The_same_port_serves_ipv4_and_ipv6_connections_side_by_side()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var v4 = new ScriptedConnection(peer).Establish();
        var v6 = Connection(peer).Establish();
        Assert.NotSame(v4, v6);
        Assert.Equal(2, peer.Stack.Connections.Count);
        Assert.Equal(1460, v4.SendMss);
        Assert.Equal(1440, v6.SendMss);
        Assert.True(v4.Tuple.LocalAddress.IsV4);
        Assert.False(v6.Tuple.LocalAddress.IsV4);
        Assert.Equal(0, listener.HalfOpenCount);
    }

    [Fact]
    public void Outgoing_ipv6_headers_have_the_right_payload_length_and_next_header()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = Connection(peer);
        var tcb = c.Establish();
        tcb.Send(new byte[100]);
        peer.Stack.Poll(peer.Now);
        Assert.True(peer.Stack.Transmit.TryDequeue(out var packet));
        var bytes = packet.Span.ToArray();
        peer.Stack.Transmit.Return(packet);
        Assert.Equal(0x60, bytes[0]);
        Assert.Equal(0, bytes[1] & 0x0F);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(2))); // unlabelled flow
        Assert.Equal(20 + 100, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(4)));
        Assert.Equal(IpProtocol.Tcp, bytes[6]);
        Assert.Equal(64, bytes[7]);
        Assert.Equal(40 + 20 + 100, bytes.Length);
    }

    [Fact]
    public void The_ipv6_segment_path_and_ping_allocate_nothing_once_warm()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = Connection(peer);
        var tcb = c.Establish();
        const int warm = 50, measured = 50;
        var packets = new byte[warm + measured][];
        for (int i = 0; i < packets.Length; i++)
            packets[i] = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress6, ScriptedPeer.StackAddress6, ScriptedConnection.ClientPort,
                80, c.ClientNxt + (uint)(i * 1000), c.ServerNxt, TcpFlags.Ack | TcpFlags.Psh, 65535, default, new byte[1000]);
        byte[] ping = LinuxIpv6Captures.EchoRequest;
        var buffer = new byte[2048];
        var stack = peer.Stack;
        stack.Tracer = null; // tracing formats strings; the path itself must not allocate

        // One data segment and one ping in; the ACK and the echo reply out; the application reads. No asserts
        // inside: they allocate.
        int read = 0, acks = 0, replies = 0;
        for (int i = 0; i < packets.Length; i++)
        {
            long before = i == warm ? GC.GetAllocatedBytesForCurrentThread() : 0;
            stack.Receive(packets[i], peer.Now);
            stack.Receive(ping, peer.Now);
            stack.Poll(peer.Now);
            while (stack.Transmit.TryDequeue(out var p))
            {
                if (p.Span[6] == IpProtocol.Tcp) acks++; else replies++;
                stack.Transmit.Return(p);
            }
            read += tcb.Receive(buffer);
            if (i == warm)
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        long start = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            stack.Receive(ping, peer.Now);
            stack.Poll(peer.Now);
            while (stack.Transmit.TryDequeue(out var p)) stack.Transmit.Return(p);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - start);
        Assert.Equal(packets.Length * 1000, read);
        Assert.Equal(packets.Length / 2, acks); // every second full-sized segment is acknowledged at once (RFC 5681 §4.2)
        Assert.Equal(packets.Length, replies);
        Assert.Equal(0, stack.Counters.TotalDropped);
    }
}
