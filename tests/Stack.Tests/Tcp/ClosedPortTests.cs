using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>RFC 9293 §3.10.7.1: segments to a port with no listener and no connection.</summary>
public class ClosedPortTests
{
    [Fact]
    public void Syn_to_closed_port_gets_rst_ack_acknowledging_the_syn()
    {
        var peer = new ScriptedPeer();
        var rst = Assert.Single(peer.Send(40000, 81, 777, 0, TcpFlags.Syn));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(0u, rst.Seq);     // <SEQ=0>
        Assert.Equal(778u, rst.Ack);   // <ACK=SEG.SEQ+SEG.LEN>, the SYN counts one
        Assert.Equal((ushort)81, rst.SourcePort);
        Assert.Equal(1, peer.Stack.Counters.ResetsSent);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.NoListener));
    }

    [Fact]
    public void Data_with_fin_and_no_ack_counts_payload_and_fin_in_the_reset_ack()
    {
        var peer = new ScriptedPeer();
        var rst = Assert.Single(peer.Send(40000, 81, 100, 0, TcpFlags.Fin, "abcde"u8));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(106u, rst.Ack);
    }

    [Fact]
    public void Ack_to_closed_port_gets_rst_with_seq_equal_to_its_ack()
    {
        var peer = new ScriptedPeer();
        var rst = Assert.Single(peer.Send(40000, 81, 100, 0xFFFF_FFF0, TcpFlags.Ack, "x"u8));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(0xFFFF_FFF0u, rst.Seq);
    }

    [Fact]
    public void Rst_to_closed_port_is_dropped_silently()
    {
        var peer = new ScriptedPeer();
        Assert.Empty(peer.Send(40000, 81, 100, 5, TcpFlags.Rst | TcpFlags.Ack));
        Assert.Equal(0, peer.Stack.Counters.ResetsSent);
    }

    [Fact]
    public void Segment_with_bad_checksum_is_dropped_and_counted()
    {
        var peer = new ScriptedPeer();
        var packet = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, 40000, 81, 1, 0,
            TcpFlags.Syn, 65535, default, default);
        packet[^1] ^= 0xFF; // flip a byte of the TCP header (urgent pointer)
        peer.Stack.Receive(packet, peer.Now);
        Assert.Empty(peer.Poll());
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.BadTcpChecksum));
    }

    [Fact]
    public void Packet_for_another_address_is_dropped()
    {
        var peer = new ScriptedPeer();
        var packet = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, IpAddress.Parse("198.18.0.3"), 40000, 80, 1, 0,
            TcpFlags.Syn, 65535, default, default);
        peer.Stack.Receive(packet, peer.Now);
        Assert.Empty(peer.Poll());
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.NotForUs));
    }
}
