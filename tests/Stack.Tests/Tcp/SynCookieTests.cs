using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// SYN cookies (RFC 4987 §3.6): beyond the half-open limit a SYN gets a SYN-ACK whose ISN encodes the connection, no
/// TCB is kept, and a returning ACK with a valid cookie rebuilds the connection directly.
/// </summary>
public class SynCookieTests
{
    private static ScriptedPeer PeerWithHalfOpenLimit(int limit)
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Address = defaults.Address, IsnSecret = defaults.IsnSecret, HalfOpenLimit = limit,
            ReceiveBufferSize = 65536, SendBufferSize = 65536,
        });
        peer.Stack.Listen(80);
        return peer;
    }

    [Fact]
    public void Beyond_the_half_open_limit_a_syn_gets_a_cookie_and_no_tcb()
    {
        var peer = PeerWithHalfOpenLimit(1);
        new ScriptedConnection(peer, clientPort: 1).SendSyn();   // takes the one half-open slot
        var c = new ScriptedConnection(peer, clientPort: 2);

        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1460 }));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(c.ClientIsn + 1, synAck.Ack);
        Assert.Equal((ushort)1460, synAck.Options.Mss);
        Assert.Null(synAck.Options.WindowScale);     // without timestamps a cookie cannot carry window scale...
        Assert.False(synAck.Options.SackPermitted);  // ...or SACK, so neither is offered (as Linux does)
        Assert.Null(c.Tcb);
        Assert.Equal(1, peer.Stack.Counters.SynCookiesSent);
    }

    [Fact]
    public void A_valid_cookie_establishes_the_connection_and_its_data_is_delivered()
    {
        var peer = PeerWithHalfOpenLimit(0);
        var c = new ScriptedConnection(peer);
        c.SendSyn(new TcpOptions { Mss = 1400 });
        Assert.Null(c.Tcb);

        Assert.Empty(c.SendData("GET / HTTP/1.1\r\n\r\n"u8)); // the handshake's ACK carries the request
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(1300, tcb.SendMss);                   // 1400 is carried as the table value just below it
        Assert.Equal(18, tcb.BytesAvailable);
        Assert.Equal(1, peer.Stack.Counters.SynCookiesAccepted);
        Assert.True(peer.Stack.TryTakeEvents(out var evTcb, out var events) && events.HasFlag(ConnectionEvents.Established));
        Assert.Same(tcb, evTcb);

        // It behaves like any other connection: data out, acknowledged.
        tcb.Send("HTTP/1.1 200 OK\r\n\r\n"u8);
        var response = Assert.Single(peer.Poll());
        Assert.Equal(c.ServerNxt, response.Seq);
        Assert.Equal(c.ClientNxt, response.Ack);
    }

    [Fact]
    public void With_timestamps_the_cookie_carries_window_scale_and_sack()
    {
        var peer = PeerWithHalfOpenLimit(0);
        var c = new ScriptedConnection(peer);
        var synAck = Assert.Single(c.SendSyn(new TcpOptions
        {
            Mss = 1460, WindowScale = 9, SackPermitted = true, HasTimestamps = true, TimestampValue = 5000,
        }));
        Assert.Equal((byte)1, synAck.Options.WindowScale); // ours, for a 64 KiB buffer
        Assert.True(synAck.Options.SackPermitted);
        Assert.True(synAck.Options.HasTimestamps);
        Assert.Equal(5000u, synAck.Options.TimestampEcho);
        Assert.Equal(9u, synAck.Options.TimestampValue & 0xF);   // the peer's shift in the low bits of our TSval
        Assert.Equal(0x10u, synAck.Options.TimestampValue & 0x10); // and SACK-permitted

        var ack = new TcpOptions { HasTimestamps = true, TimestampValue = 5001, TimestampEcho = synAck.Options.TimestampValue };
        Assert.Empty(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack, default, 100, ack));
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.True(tcb.SackEnabled);
        Assert.True(tcb.TimestampsEnabled);
        Assert.Equal(100u << 9, tcb.SndWnd); // the ACK's window, scaled by the shift the cookie remembered
    }

    [Fact]
    public void A_forged_or_stale_cookie_gets_a_reset()
    {
        var peer = PeerWithHalfOpenLimit(0);
        var c = new ScriptedConnection(peer);
        c.SendSyn();

        // An ACK whose acknowledgment number was never a cookie of ours.
        var rst = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt + 12345, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Null(c.Tcb);

        // The right cookie, three minutes late (cookies live two).
        peer.Advance(180_000_000);
        rst = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Null(c.Tcb);
        Assert.Equal(0, peer.Stack.Counters.SynCookiesAccepted);
    }

    [Fact]
    public void Without_cookies_recently_sent_an_ack_to_a_listener_is_reset_as_the_rfc_says()
    {
        var peer = PeerWithHalfOpenLimit(10);
        var c = new ScriptedConnection(peer);
        var rst = Assert.Single(c.Send(5000, 123456, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(123456u, rst.Seq);
    }

    [Fact]
    public void A_full_accept_queue_drops_syns_and_holds_the_handshake_in_syn_received()
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions { Address = defaults.Address, IsnSecret = defaults.IsnSecret });
        var listener = peer.Stack.Listen(80, backlog: 1);
        var first = new ScriptedConnection(peer, clientPort: 1);
        var firstTcb = first.Establish();
        Assert.Equal(1, listener.AcceptQueueLength);

        // The application has not accepted: a new SYN is dropped...
        Assert.Empty(new ScriptedConnection(peer, clientPort: 2).SendSyn());
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.AcceptQueueFull));

        // ...and once it accepts, the next one goes through.
        peer.Stack.Accepted(firstTcb);
        Assert.Equal(0, listener.AcceptQueueLength);
        new ScriptedConnection(peer, clientPort: 3).Establish();
    }

    [Theory]
    [InlineData(1460, 1460)]
    [InlineData(1459, 1440)]
    [InlineData(1300, 1300)]
    [InlineData(536, 536)]
    [InlineData(100, 536)]
    public void The_mss_is_carried_as_the_largest_table_value_not_above_the_peers(ushort offered, int carried)
    {
        var peer = PeerWithHalfOpenLimit(0);
        var c = new ScriptedConnection(peer);
        c.SendSyn(new TcpOptions { Mss = offered });
        c.SendAck();
        Assert.Equal(carried, c.Tcb!.PeerMss);
    }
}
