using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// How a connection ends when the peer goes quiet or the application lets go (Tcb.Lifetime.cs): keep-alives (RFC 9293
/// §3.8.4, MUST-24 … MUST-29, SHLD-12), the FIN-WAIT-2 timeout of a released connection, and the reset that tells the
/// peer its data was lost (SHLD-3, RFC 2525 §2.17).
/// </summary>
public class ConnectionLifetimeTests
{
    private const long Hour = 3_600_000_000;
    private const long TwoHours = 2 * Hour;
    private const long Interval = 75_000_000;

    private static NetStackOptions Options(bool keepAlive = false, long? idle = null)
    {
        var d = ScriptedPeer.DefaultOptions();
        return new NetStackOptions
        {
            Addresses = d.Addresses, IsnSecret = d.IsnSecret, MslMicros = d.MslMicros, ReceiveBufferSize = d.ReceiveBufferSize,
            SendBufferSize = d.SendBufferSize, KeepAlive = keepAlive, KeepAliveIdleMicros = idle ?? TwoHours,
        };
    }

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Established(NetStackOptions? options = null, ushort port = ScriptedConnection.ClientPort)
    {
        var peer = new ScriptedPeer(options ?? Options());
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientPort: port);
        return (peer, c, c.Establish());
    }

    private static void AssertKeepAlive(ScriptedConnection c, Seg probe)
    {
        // SHLD-12: no data; SEG.SEQ = SND.NXT − 1, so that the peer must answer with an ACK (§3.8.4).
        Assert.Equal(TcpFlags.Ack, probe.Flags);
        Assert.Equal(c.ServerNxt - 1, probe.Seq);
        Assert.Equal(c.ClientNxt, probe.Ack);
        Assert.Empty(probe.Payload);
    }

    /// <summary>MUST-25: keep-alives default to off — three idle hours, not a segment.</summary>
    [Fact]
    public void Keep_alives_are_off_by_default()
    {
        var (peer, _, tcb) = Established();
        Assert.False(tcb.KeepAlive);
        for (int i = 0; i < 36; i++)
            Assert.Empty(peer.Advance(Hour / 12));
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(0, peer.Stack.Counters.KeepAlivesSent);
    }

    /// <summary>MUST-24, MUST-26, MUST-28: switched on for one connection, the first probe goes after two idle hours.</summary>
    [Fact]
    public void Keep_alive_switched_on_for_one_connection_probes_it_after_two_idle_hours()
    {
        var peer = new ScriptedPeer(Options());
        peer.Stack.Listen(80);
        var probed = new ScriptedConnection(peer, clientPort: 1);
        var quiet = new ScriptedConnection(peer, clientPort: 2);
        var tcb = probed.Establish();
        var other = quiet.Establish();
        tcb.KeepAlive = true;

        Assert.Empty(peer.Advance(TwoHours - 1));
        var probe = Assert.Single(peer.Advance(1));
        AssertKeepAlive(probed, probe);
        Assert.Equal(probed.ClientPortNumber, probe.DestinationPort); // only the connection that asked for it
        Assert.False(other.KeepAlive);

        // The peer answers: the connection is alive, and the next probe waits for another two idle hours.
        Assert.Empty(probed.SendAck());
        Assert.Empty(peer.Advance(TwoHours - 1));
        AssertKeepAlive(probed, Assert.Single(peer.Advance(1)));
        Assert.Equal(2, peer.Stack.Counters.KeepAlivesSent);
    }

    /// <summary>MUST-27: the idle interval is configurable.</summary>
    [Fact]
    public void The_keep_alive_interval_is_configurable()
    {
        var (peer, c, tcb) = Established(Options(keepAlive: true, idle: 10_000_000));
        Assert.True(tcb.KeepAlive); // NetStackOptions.KeepAlive: on for new connections
        Assert.Empty(peer.Advance(9_999_999));
        AssertKeepAlive(c, Assert.Single(peer.Advance(1)));
    }

    /// <summary>
    /// MUST-29: a probe that is not answered is no proof of a dead connection — only the configured number of
    /// unanswered probes (9, 75 s apart) is; one answer in between starts the count again.
    /// </summary>
    [Fact]
    public void Only_nine_unanswered_probes_drop_the_connection_and_an_answer_in_between_starts_again()
    {
        var (peer, c, tcb) = Established(Options(keepAlive: true));
        AssertKeepAlive(c, Assert.Single(peer.Advance(TwoHours)));
        for (int i = 2; i <= 8; i++)
            AssertKeepAlive(c, Assert.Single(peer.Advance(Interval)));
        Assert.Empty(c.SendAck()); // the eighth is answered at last
        Assert.Empty(peer.Advance(TwoHours - 1));

        AssertKeepAlive(c, Assert.Single(peer.Advance(1)));
        for (int i = 2; i <= 9; i++)
            AssertKeepAlive(c, Assert.Single(peer.Advance(Interval)));
        Assert.Empty(peer.Advance(Interval - 1));
        Assert.Equal(TcpState.Established, tcb.State);
        peer.Advance(1);
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.TimedOut, tcb.CloseReason);
        Assert.Equal(17, peer.Stack.Counters.KeepAlivesSent);
    }

    /// <summary>MUST-26: "Keep-alive packets MUST only be sent when no sent data is outstanding".</summary>
    [Fact]
    public void No_keep_alive_while_sent_data_is_unacknowledged()
    {
        var (peer, c, tcb) = Established(Options(keepAlive: true, idle: 1_000_000));
        tcb.Send("unanswered"u8);
        Assert.Single(peer.Poll());
        for (int i = 0; i < 30; i++)
            Assert.All(peer.Advance(1_000_000), s => Assert.Equal(10, s.Payload.Length)); // retransmissions only
        Assert.Equal(0, peer.Stack.Counters.KeepAlivesSent);
        Assert.True(peer.Stack.Counters.Retransmissions > 0);
    }

    /// <summary>
    /// A connection the application released (close(2)) waits in FIN-WAIT-2 for the peer's FIN only so long
    /// (NetStackOptions.FinWait2TimeoutMicros, as Linux's tcp_fin_timeout), then resets it.
    /// </summary>
    [Fact]
    public void Released_connection_gives_up_in_fin_wait_2_after_the_timeout()
    {
        var (peer, c, tcb) = Established();
        tcb.Release();
        var fin = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        c.ServerNxt++;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.FinWait2, tcb.State);

        Assert.Empty(peer.Advance(60_000_000 - 1));
        var rst = Assert.Single(peer.Advance(1));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(c.ServerNxt, rst.Seq);
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.TimedOut, tcb.CloseReason);
        Assert.Equal(0, peer.Stack.TimeWaitCount);
    }

    /// <summary>A half-close (CLOSE, §3.10.4) keeps reading: FIN-WAIT-2 lasts as long as the peer keeps its side open.</summary>
    [Fact]
    public void Half_closed_connection_waits_in_fin_wait_2_as_long_as_the_peer_likes()
    {
        var (peer, c, tcb) = Established();
        tcb.Close();
        Assert.Single(peer.Poll());
        c.ServerNxt++;
        c.SendAck();
        for (int i = 0; i < 10; i++)
            Assert.Empty(peer.Advance(60_000_000));
        Assert.Equal(TcpState.FinWait2, tcb.State);
        c.SendData("still talking"u8);
        Assert.Equal("still talking"u8.ToArray(), ScriptedConnection.ReadAll(tcb));
    }

    /// <summary>SHLD-3: CLOSE while received data is still unread resets the connection, to show the data was lost.</summary>
    [Fact]
    public void Releasing_with_unread_data_sends_a_reset()
    {
        var (peer, c, tcb) = Established();
        c.SendData("never read"u8);
        peer.Advance(100_000); // the delayed ACK
        tcb.Release();
        var rst = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(c.ServerNxt, rst.Seq);
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.Aborted, tcb.CloseReason);
        Assert.Equal(1, peer.Stack.Counters.ResetsOnUnreadData);
    }

    /// <summary>SHLD-3: "or if new data is received after CLOSE is called" — data for a released connection resets it.</summary>
    [Fact]
    public void Data_arriving_after_release_is_answered_with_a_reset()
    {
        var (peer, c, tcb) = Established();
        tcb.Release();
        Assert.Single(peer.Poll());
        c.ServerNxt++;
        c.SendAck();
        Assert.Equal(TcpState.FinWait2, tcb.State);

        var rst = Assert.Single(c.SendData("too late"u8));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(c.ServerNxt, rst.Seq);
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(1, peer.Stack.Counters.ResetsOnUnreadData);
    }
}
