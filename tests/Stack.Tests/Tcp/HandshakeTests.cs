using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

public class HandshakeTests
{
    [Fact]
    public void Syn_to_listener_gets_syn_ack_with_our_mss_and_enters_syn_received()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);

        var reply = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1400 }));

        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, reply.Flags);
        Assert.Equal(c.ClientIsn + 1, reply.Ack);
        Assert.Equal((ushort)80, reply.SourcePort);
        Assert.Equal(ScriptedConnection.ClientPort, reply.DestinationPort);
        Assert.Equal((ushort)1460, reply.Options.Mss);           // MTU 1500 - 40
        Assert.Null(reply.Options.WindowScale);                    // not offered by the peer, so not used
        Assert.Equal((ushort)65535, reply.Window);                 // 64 KiB buffer, unscaled in a SYN
        Assert.NotEqual(0u, reply.Seq);
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        Assert.Equal(TcpState.SynReceived, tcb.State);
        Assert.Equal(1, listener.HalfOpenCount);
        Assert.Equal(1400, tcb.SendMss);
    }

    [Fact]
    public void Ack_of_syn_ack_establishes_and_raises_event()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();

        Assert.Equal(0, listener.HalfOpenCount);
        Assert.True(peer.Stack.TryTakeEvents(out var evTcb, out var events));
        Assert.Same(tcb, evTcb);
        Assert.True(events.HasFlag(ConnectionEvents.Established));
        Assert.Equal(1, peer.Stack.Counters.ConnectionsEstablished);
    }

    [Fact]
    public void Window_scale_is_offered_only_when_the_peer_offers_it()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 1 << 20));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1460, WindowScale = 7, SackPermitted = true }));
        // Our shift is derived from the buffer: the smallest that lets 16 bits express 1 MiB is 5 (1 MiB >> 5 = 32768).
        Assert.Equal((byte)5, synAck.Options.WindowScale);
        Assert.Equal((ushort)65535, synAck.Window); // a SYN's window is never scaled

        // After the handshake the window field is scaled by our shift: the free space, 1 MiB - 1, >> 5.
        Assert.Empty(c.SendAck());
        Assert.Empty(c.SendData("x"u8));
        var ack = Assert.Single(peer.Advance(40_000));
        Assert.Equal((ushort)((1 << 20) - 1 >> 5), ack.Window);
    }

    [Fact]
    public void Missing_mss_option_means_536()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        Assert.Single(c.SendSyn(new TcpOptions()));
        Assert.Equal(536, c.Tcb!.SendMss);
    }

    [Fact]
    public void Duplicate_syn_in_syn_received_resends_the_same_syn_ack()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var first = Assert.Single(c.SendSyn());

        var again = Assert.Single(c.Send(c.ClientIsn, 0, TcpFlags.Syn, default, 65535, new TcpOptions { Mss = 1460 }));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, again.Flags);
        Assert.Equal(first.Seq, again.Seq);
        Assert.Equal(first.Ack, again.Ack);
        Assert.Equal(TcpState.SynReceived, c.Tcb!.State);
    }

    [Fact]
    public void Bad_ack_in_syn_received_gets_reset_and_connection_stays()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        c.SendSyn();

        var rst = Assert.Single(c.Send(c.ClientNxt, c.ServerIsn + 5000, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(c.ServerIsn + 5000, rst.Seq); // <SEQ=SEG.ACK><CTL=RST>
        Assert.Equal(TcpState.SynReceived, c.Tcb!.State);
    }

    [Fact]
    public void Ack_to_listener_without_connection_gets_reset_with_seq_from_ack()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var rst = Assert.Single(c.Send(5000, 123456, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(123456u, rst.Seq);
        Assert.Null(c.Tcb);
    }

    [Fact]
    public void Rst_to_listener_is_ignored()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        Assert.Empty(c.Send(5000, 0, TcpFlags.Rst));
        Assert.Empty(peer.Stack.Connections);
    }

    [Fact]
    public void Half_open_limit_without_cookies_drops_further_syns()
    {
        var options = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Address = options.Address, IsnSecret = options.IsnSecret, HalfOpenLimit = 2, SynCookies = false,
        });
        var listener = peer.Stack.Listen(80);
        for (ushort port = 1; port <= 3; port++)
            new ScriptedConnection(peer, clientPort: port).SendSyn();
        Assert.Equal(2, listener.HalfOpenCount);
        Assert.Equal(1, listener.SynsDropped);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.BacklogFull));
    }
}
