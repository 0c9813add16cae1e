using TunStack.Tcp;
using TunStack.Wire;
using Xunit.Abstractions;

namespace TunStack.Tests.Simulation;

/// <summary>
/// Two engines over a lossless link with explicit time (<see cref="EnginePair"/>): the handshake, data both ways, and
/// every order in which a connection can end — client first, server first, both at once (the FINs cross: CLOSING on both
/// sides, RFC 9293 Figure 13), a half-close with data still flowing the other way, and an abort. Each test asserts the
/// segments on the wire, the states each side passes through, and which side waits in TIME-WAIT for 2·MSL: the one that
/// closed first, or both after a simultaneous close (§3.6). The interleaved --trace of both sides is printed.
/// </summary>
public class CloseOrderTests(ITestOutputHelper output) : IDisposable
{
    private const long Msl = 1_000_000;
    private readonly EnginePair _pair = new(oneWayDelayMicros: 5_000, mslMicros: Msl);

    private EnginePair.Side Client => _pair.Client;
    private EnginePair.Side Server => _pair.Server;

    public void Dispose() => output.WriteLine(_pair.Trace);

    private static readonly TcpState[] ClientOpen = [TcpState.Closed, TcpState.SynSent, TcpState.Established];
    private static readonly TcpState[] ServerOpen = [TcpState.Listen, TcpState.SynReceived, TcpState.Established];

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>A request and a response, then quiet until every delayed ACK has gone: the close starts from rest.</summary>
    private void Exchange()
    {
        Client.Write("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        _pair.RunUntil(() => Server.Received.Length == 18, "the request");
        Server.Write("HTTP/1.1 200 OK\r\n\r\n"u8.ToArray());
        _pair.RunUntil(() => Client.Received.Length == 19, "the response");
        _pair.RunFor(200_000);
    }

    /// <summary>The flags of the segments sent since <paramref name="mark"/>.</summary>
    private string[] WireSince(int mark) => _pair.WireFlags.Skip(mark).ToArray();

    /// <summary>Asserts that each of <paramref name="sides"/> waits in TIME-WAIT exactly 2·MSL (§3.10.8), then is CLOSED.</summary>
    private void AssertTimeWaitLastsTwoMsl(params EnginePair.Side[] sides)
    {
        var ends = sides.Select(s => (Side: s, End: s.EnteredAt(TcpState.TimeWait) + 2 * Msl)).OrderBy(e => e.End).ToList();
        foreach (var (side, end) in ends)
        {
            if (_pair.Now < end - 1) _pair.RunFor(end - 1 - _pair.Now);
            Assert.True(side.InTimeWait, $"{side.Name} left TIME-WAIT early\n{_pair.Trace}");
        }
        foreach (var (side, end) in ends)
        {
            if (_pair.Now < end) _pair.RunFor(end - _pair.Now);
            Assert.False(side.InTimeWait, $"{side.Name} still in TIME-WAIT after 2·MSL\n{_pair.Trace}");
            Assert.Equal(TcpState.Closed, side.States[^1]);
        }
        Assert.Equal(0, Client.Stack.TimeWaitCount);
        Assert.Equal(0, Server.Stack.TimeWaitCount);
        Assert.Empty(Client.Stack.Connections);
        Assert.Empty(Server.Stack.Connections);
    }

    [Fact]
    public void Handshake_is_three_segments_and_negotiates_the_same_options_on_both_sides()
    {
        _pair.Connect();

        Assert.Equal(["client S", "server S.", "client ."], _pair.WireFlags);
        var (syn, synAck, ack) = (_pair.Wire[0].Segment, _pair.Wire[1].Segment, _pair.Wire[2].Segment);
        var client = Client.Connection!;
        var server = Server.Connection!;
        Assert.Equal(client.Iss.Value, syn.Seq);
        Assert.Equal(server.Iss.Value, synAck.Seq);
        Assert.Equal(syn.Seq + 1, synAck.Ack);
        Assert.Equal(synAck.Seq + 1, ack.Ack);
        Assert.Equal(syn.Seq + 1, ack.Seq);
        // The SYN-ACK leaves one one-way delay after the SYN, and the ACK one more after that.
        Assert.Equal(_pair.Wire[0].Time + 5_000, _pair.Wire[1].Time);
        Assert.Equal(_pair.Wire[1].Time + 5_000, _pair.Wire[2].Time);

        Assert.Equal(ClientOpen, Client.States);
        Assert.Equal(ServerOpen, Server.States);
        Assert.Equal(client.SndNxt, server.RcvNxt);
        Assert.Equal(server.SndNxt, client.RcvNxt);
        Assert.True(client.SackEnabled && server.SackEnabled);
        Assert.True(client.TimestampsEnabled && server.TimestampsEnabled);
        Assert.Equal(1460, client.SendMss);
        Assert.Equal(1460, server.SendMss);
        Assert.True(Client.EventsSeen.HasFlag(ConnectionEvents.Established));
        Assert.True(Server.EventsSeen.HasFlag(ConnectionEvents.Established));
    }

    [Fact]
    public void Data_flows_both_ways_at_once_byte_for_byte_without_retransmissions()
    {
        _pair.Connect();
        var upload = Bytes(300_000, 1);
        var download = Bytes(500_000, 2);
        Client.Write(upload);
        Server.Write(download);
        _pair.RunUntil(() => Server.Received.Length == upload.Length && Client.Received.Length == download.Length, "both transfers");

        Assert.Equal(upload, Server.Received.ToArray());
        Assert.Equal(download, Client.Received.ToArray());
        Assert.Equal(0, Client.Stack.Counters.Retransmissions);
        Assert.Equal(0, Server.Stack.Counters.Retransmissions);
        Assert.Equal(TcpState.Established, Client.State);
        Assert.Equal(TcpState.Established, Server.State);
        // Data segments carry the acknowledgments of the other direction: no segment was needed only to acknowledge
        // while data was waiting to go the other way.
        Assert.All(_pair.Wire.Skip(3), w => Assert.True(w.Segment.Flags.HasFlag(TcpFlags.Ack)));
    }

    /// <summary>RFC 9293 Figure 12 with the client as TCP Peer A: it closes first and waits in TIME-WAIT.</summary>
    [Fact]
    public void Client_closes_first_and_only_the_client_waits_in_time_wait()
    {
        _pair.Connect();
        Exchange();
        int mark = _pair.Wire.Count;

        Client.Connection!.Close();
        Assert.Equal(TcpState.FinWait1, Client.State);
        _pair.RunUntil(() => Client.State == TcpState.FinWait2, "the ACK of the client's FIN");
        Assert.Equal(TcpState.CloseWait, Server.State);
        Assert.True(Server.ReceiveFinished);
        Assert.Equal(["client F.", "server ."], WireSince(mark));

        Server.Write("bye"u8.ToArray(), thenClose: true);
        _pair.RunUntil(() => Client.InTimeWait && Server.State == TcpState.Closed, "the server's FIN and its ACK");
        Assert.Equal(["client F.", "server .", "server FP.", "client ."], WireSince(mark));
        Assert.Equal("bye"u8.ToArray(), Client.Received.ToArray()[^3..]);

        Assert.Equal([.. ClientOpen, TcpState.FinWait1, TcpState.FinWait2, TcpState.TimeWait], Client.States);
        Assert.Equal([.. ServerOpen, TcpState.CloseWait, TcpState.LastAck, TcpState.Closed], Server.States);
        Assert.False(Server.InTimeWait);
        Assert.Equal(1, Client.Stack.TimeWaitCount);
        Assert.Equal(0, Server.Stack.TimeWaitCount);
        Assert.Equal(CloseReason.Normal, Client.Connection.CloseReason);
        Assert.Equal(CloseReason.Normal, Server.Connection!.CloseReason);

        AssertTimeWaitLastsTwoMsl(Client);
        Assert.Equal(TcpState.Closed, Client.States[^1]);
    }

    /// <summary>RFC 9293 Figure 12 with the server as TCP Peer A (as with HTTP "Connection: close").</summary>
    [Fact]
    public void Server_closes_first_and_only_the_server_waits_in_time_wait()
    {
        _pair.Connect();
        Exchange();
        int mark = _pair.Wire.Count;

        Server.Connection!.Close();
        _pair.RunUntil(() => Server.State == TcpState.FinWait2, "the ACK of the server's FIN");
        Assert.Equal(TcpState.CloseWait, Client.State);
        Client.Connection!.Close();
        Assert.Equal(TcpState.LastAck, Client.State);
        _pair.RunUntil(() => Server.InTimeWait && Client.State == TcpState.Closed, "the client's FIN and its ACK");

        Assert.Equal(["server F.", "client .", "client F.", "server ."], WireSince(mark));
        Assert.Equal([.. ServerOpen, TcpState.FinWait1, TcpState.FinWait2, TcpState.TimeWait], Server.States);
        Assert.Equal([.. ClientOpen, TcpState.CloseWait, TcpState.LastAck, TcpState.Closed], Client.States);
        Assert.False(Client.InTimeWait);
        Assert.Equal(0, Client.Stack.TimeWaitCount);
        Assert.Equal(1, Server.Stack.TimeWaitCount);

        AssertTimeWaitLastsTwoMsl(Server);
        Assert.Equal(TcpState.Closed, Server.States[^1]);
    }

    /// <summary>RFC 9293 Figure 13: both close at the same moment, the FINs cross, both pass CLOSING and both wait.</summary>
    [Fact]
    public void Simultaneous_close_goes_through_closing_on_both_sides_and_both_wait_in_time_wait()
    {
        _pair.Connect();
        Exchange();
        int mark = _pair.Wire.Count;

        Client.Connection!.Close();
        Server.Connection!.Close();
        _pair.RunUntil(() => Client.InTimeWait && Server.InTimeWait, "TIME-WAIT on both sides");

        // Each FIN leaves before the other arrives; each side then acknowledges the other's FIN.
        Assert.Equal(["client F.", "server F.", "client .", "server ."], WireSince(mark));
        var clientFin = _pair.Wire[mark].Segment;
        var serverFin = _pair.Wire[mark + 1].Segment;
        Assert.Equal(Server.Connection.Iss.Value + 1 + 19, clientFin.Ack); // does not acknowledge the server's FIN
        Assert.Equal(Client.Connection.Iss.Value + 1 + 18, serverFin.Ack);
        Assert.Equal(clientFin.Seq + 1, _pair.Wire[mark + 3].Segment.Ack);
        Assert.Equal(serverFin.Seq + 1, _pair.Wire[mark + 2].Segment.Ack);

        Assert.Equal([.. ClientOpen, TcpState.FinWait1, TcpState.Closing, TcpState.TimeWait], Client.States);
        Assert.Equal([.. ServerOpen, TcpState.FinWait1, TcpState.Closing, TcpState.TimeWait], Server.States);
        Assert.Equal(1, Client.Stack.TimeWaitCount);
        Assert.Equal(1, Server.Stack.TimeWaitCount);

        AssertTimeWaitLastsTwoMsl(Client, Server);
    }

    /// <summary>
    /// A half-close (§3.6: "CLOSE ... I have no more to send"): the client closes its direction after the request and
    /// waits in FIN-WAIT-2 while the server, in CLOSE-WAIT, still sends a response larger than both windows.
    /// </summary>
    [Fact]
    public void Half_close_lets_data_flow_the_other_way_until_the_second_fin()
    {
        _pair.Connect();
        var request = Bytes(5_000, 3);
        var response = Bytes(1_000_000, 4);

        Client.Write(request, thenClose: true);
        _pair.RunUntil(() => Server.ReceiveFinished, "the request and the client's FIN");
        Assert.Equal(request, Server.Received.ToArray());
        Assert.Equal(TcpState.CloseWait, Server.State);

        Server.Write(response, thenClose: true);
        _pair.RunUntil(() => Client.Received.Length > response.Length / 2, "half the response");
        Assert.Equal(TcpState.FinWait2, Client.State);
        Assert.Equal(TcpState.CloseWait, Server.State);
        Assert.Equal(0, Client.Connection!.Send("late"u8)); // the client's direction is closed

        _pair.RunUntil(() => Client.InTimeWait && Server.State == TcpState.Closed, "the rest and the server's FIN");
        Assert.Equal(response, Client.Received.ToArray());
        Assert.Equal([.. ClientOpen, TcpState.FinWait1, TcpState.FinWait2, TcpState.TimeWait], Client.States);
        Assert.Equal([.. ServerOpen, TcpState.CloseWait, TcpState.LastAck, TcpState.Closed], Server.States);
        Assert.Equal(0, Server.Stack.TimeWaitCount);
        Assert.Equal(0, Client.Stack.Counters.Retransmissions + Server.Stack.Counters.Retransmissions);

        AssertTimeWaitLastsTwoMsl(Client);
    }

    /// <summary>
    /// ABORT (§3.10.5) with data still in flight: the RST carries SND.NXT and follows the data on the wire, so it
    /// arrives exactly at the server's RCV.NXT and resets it (RFC 5961 §3.2). Nobody waits in TIME-WAIT.
    /// </summary>
    [Fact]
    public void Abort_with_data_in_flight_resets_the_peer_and_leaves_no_time_wait()
    {
        _pair.Connect();
        var data = Bytes(20_000, 5);
        Client.Write(data);
        _pair.RunFor(1_000); // the first flight is on the wire, not yet delivered
        int mark = _pair.Wire.Count;
        var client = Client.Connection!;
        uint sndNxt = client.SndNxt.Value;

        client.Abort();
        _pair.RunUntil(() => Server.State == TcpState.Closed, "the RST");
        _pair.RunFor(100_000);

        // On the wire: our RST; the server's ACKs of the data, sent before the RST reached it; and, for each of those, a
        // RST from the client, which has no connection any more (§3.10.7.1: <SEQ=SEG.ACK><CTL=RST>).
        var after = _pair.Wire.Skip(mark).ToList();
        var rst = after[0].Segment;
        Assert.Equal(("client", TcpFlags.Rst), (after[0].From, rst.Flags));
        Assert.Equal(sndNxt, rst.Seq);
        var serverAcks = after.Where(w => w.From == "server").Select(w => w.Segment).ToList();
        var clientResets = after.Skip(1).Where(w => w.From == "client").Select(w => w.Segment).ToList();
        Assert.All(serverAcks, a => Assert.Equal(TcpFlags.Ack, a.Flags));
        Assert.All(serverAcks, a => Assert.True(a.Ack - client.Iss.Value <= sndNxt - client.Iss.Value));
        Assert.All(serverAcks, a => Assert.True(_pair.Wire.Find(w => w.Segment == a).Time <= after[0].Time + 5_000));
        Assert.Equal(serverAcks.Select(a => a.Ack), clientResets.Select(r => r.Seq));
        Assert.All(clientResets, r => Assert.Equal(TcpFlags.Rst, r.Flags));
        Assert.Equal(CloseReason.Aborted, client.CloseReason);
        Assert.Equal(CloseReason.ResetByPeer, Server.Connection!.CloseReason);
        Assert.True(Server.EventsSeen.HasFlag(ConnectionEvents.Closed)); // MUST-12: the application learns of the reset
        // Everything sent before the RST was delivered, in order, and nothing after it.
        int sent = (int)(sndNxt - client.Iss.Value - 1);
        Assert.Equal(data[..sent], Server.Received.ToArray());

        Assert.Equal([.. ClientOpen, TcpState.Closed], Client.States);
        Assert.Equal([.. ServerOpen, TcpState.Closed], Server.States);
        Assert.Equal(0, Client.Stack.TimeWaitCount);
        Assert.Equal(0, Server.Stack.TimeWaitCount);
        int total = _pair.Wire.Count;
        _pair.RunFor(10_000_000);
        Assert.Equal(total, _pair.Wire.Count); // nothing more: no retransmission, no reply to a RST
    }

    /// <summary>The server aborts after the client's FIN (from CLOSE-WAIT): the client, in FIN-WAIT-2, is reset.</summary>
    [Fact]
    public void Abort_from_close_wait_resets_a_peer_in_fin_wait_2()
    {
        _pair.Connect();
        Exchange();
        Client.Connection!.Close();
        _pair.RunUntil(() => Client.State == TcpState.FinWait2 && Server.State == TcpState.CloseWait, "the half-close");
        int mark = _pair.Wire.Count;

        Server.Connection!.Abort();
        _pair.RunUntil(() => Client.State == TcpState.Closed, "the RST");

        Assert.Equal(["server R"], WireSince(mark));
        Assert.Equal(CloseReason.ResetByPeer, Client.Connection.CloseReason);
        Assert.Equal([.. ClientOpen, TcpState.FinWait1, TcpState.FinWait2, TcpState.Closed], Client.States);
        Assert.Equal([.. ServerOpen, TcpState.CloseWait, TcpState.Closed], Server.States);
        Assert.Equal(0, Client.Stack.TimeWaitCount + Server.Stack.TimeWaitCount);
    }
}
