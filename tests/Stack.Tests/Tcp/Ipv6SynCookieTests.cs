using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// SYN cookies (RFC 4987 §3.6) over IPv6: the cookie is keyed on the whole 128-bit addresses, carries an MSS from the
/// IPv6 table (1220, the minimum MTU's, first) and rebuilds the connection from the returning ACK as over IPv4.
/// </summary>
public class Ipv6SynCookieTests
{
    private static ScriptedPeer PeerWithoutHalfOpenRoom()
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Addresses = defaults.Addresses, IsnSecret = defaults.IsnSecret, HalfOpenLimit = 0,
            ReceiveBufferSize = 65536, SendBufferSize = 65536,
        });
        peer.Stack.Listen(80);
        return peer;
    }

    private static ScriptedConnection Connection(ScriptedPeer peer, IpAddress? client = null) =>
        new(peer, clientAddress: client ?? ScriptedPeer.PeerAddress6);

    [Fact]
    public void A_syn_beyond_the_half_open_limit_gets_a_cookie_in_an_ipv6_syn_ack_and_no_tcb()
    {
        var peer = PeerWithoutHalfOpenRoom();
        var c = Connection(peer);

        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1440 }));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(ScriptedPeer.StackAddress6, synAck.Source);
        Assert.Equal(ScriptedPeer.PeerAddress6, synAck.Destination);
        Assert.Equal(c.ClientIsn + 1, synAck.Ack);
        Assert.Equal((ushort)1440, synAck.Options.Mss); // ours: MTU 1500 - 60
        Assert.Equal(40 + 20 + 4, synAck.PacketLength);  // IPv6 header, TCP header, the MSS option alone
        Assert.Null(c.Tcb);
        Assert.Equal(1, peer.Stack.Counters.SynCookiesSent);
    }

    [Fact]
    public void The_returning_ack_establishes_the_connection_and_its_data_is_delivered()
    {
        var peer = PeerWithoutHalfOpenRoom();
        var c = Connection(peer);
        c.SendSyn(new TcpOptions { Mss = 1440 });

        Assert.Empty(c.SendData("GET / HTTP/1.1\r\n\r\n"u8));
        var tcb = Assert.IsType<Tcb>(c.Tcb);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(new FourTuple(ScriptedPeer.StackAddress6, 80, ScriptedPeer.PeerAddress6, ScriptedConnection.ClientPort), tcb.Tuple);
        Assert.Equal(1440, tcb.SendMss);
        Assert.Equal(18, tcb.BytesAvailable);
        Assert.Equal(1, peer.Stack.Counters.SynCookiesAccepted);

        tcb.NoDelay = true;
        tcb.Send(new byte[3000]);
        var segments = peer.Poll();
        Assert.Equal([1440, 1440, 120], segments.Select(s => s.Payload.Length));
        Assert.All(segments, s => Assert.Equal(ScriptedPeer.PeerAddress6, s.Destination));
        Assert.Equal(c.ServerNxt, segments[0].Seq);
    }

    [Theory]
    [InlineData(8940, 8940)]
    [InlineData(1440, 1440)]
    [InlineData(1439, 1420)]
    [InlineData(1400, 1220)]
    [InlineData(1220, 1220)]
    [InlineData(536, 1220)] // below the IPv6 minimum: the smallest IPv6 entry, which every IPv6 path carries
    public void The_mss_is_carried_as_the_largest_ipv6_table_value_not_above_the_peers(ushort offered, int carried)
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Addresses = defaults.Addresses, IsnSecret = defaults.IsnSecret, HalfOpenLimit = 0, Mtu = 9000,
        });
        peer.Stack.Listen(80);
        var c = Connection(peer);
        c.SendSyn(new TcpOptions { Mss = offered });
        c.SendAck();
        Assert.Equal(carried, c.Tcb!.PeerMss);
    }

    [Fact]
    public void The_cookie_covers_the_whole_128_bit_address()
    {
        // Two clients whose addresses differ only in their upper 64 bits, same ports and ISN: a cookie made for one
        // must not open a connection for the other.
        var peer = PeerWithoutHalfOpenRoom();
        var first = Connection(peer, IpAddress.Parse("2001:2::1"));
        var second = Connection(peer, IpAddress.Parse("2001:2:0:1::1"));
        var synAck = Assert.Single(first.SendSyn());
        Assert.Single(second.SendSyn());

        var rst = Assert.Single(second.Send(second.ClientNxt, synAck.Seq + 1, TcpFlags.Ack));
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Null(second.Tcb);
        Assert.Equal(0, peer.Stack.Counters.SynCookiesAccepted);

        Assert.Empty(first.SendAck());
        Assert.Equal(TcpState.Established, first.Tcb!.State);
    }
}
