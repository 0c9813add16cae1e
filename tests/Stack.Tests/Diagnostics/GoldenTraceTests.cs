using System.Runtime.CompilerServices;
using System.Text;
using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Diagnostics;

/// <summary>
/// <c>--trace</c> and <c>--explain</c> together, as <c>tunstack --trace --explain</c> prints them, for scripted
/// handshakes and closes, compared line by line with the files in <c>Golden/</c>. Everything is deterministic: the ISN
/// secret is fixed and the clock is driven by the script.
/// </summary>
/// <remarks>
/// After a deliberate change to the engine or to the wording, regenerate the files and review the diff:
/// <code>TUNSTACK_UPDATE_GOLDEN=1 dotnet test tests/Stack.Tests -c Release --filter "FullyQualifiedName~GoldenTraceTests"</code>
/// </remarks>
public class GoldenTraceTests
{
    private const long Rtt = 10_000;
    private static readonly byte[] Request = "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/8.14.1\r\nAccept: */*\r\n\r\n"u8.ToArray();
    private static readonly byte[] Response = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");

    [Fact]
    public void Passive_open_and_the_peer_closes_first() => Golden("passive-open-peer-closes-first", peer =>
    {
        var (c, tcb) = Serve(peer);
        peer.Now += Rtt;
        c.SendAckOf(Response.Length);                   // the client has the whole response
        peer.Now += 1_000;
        c.SendFin();                                    // curl closes first: ESTABLISHED -> CLOSE-WAIT, our ACK
        Assert.Empty(peer.Advance(2_000));
        tcb.Close();                                    // the service is done too: CLOSE-WAIT -> LAST-ACK
        Assert.Single(peer.Poll());
        c.ServerNxt++;
        peer.Now += Rtt;
        Assert.Empty(c.SendAck());                      // LAST-ACK -> CLOSED
        Assert.Equal(TcpState.Closed, tcb.State);
    });

    [Fact]
    public void Passive_open_and_we_close_first() => Golden("passive-open-we-close-first", peer =>
    {
        var (c, tcb) = Serve(peer, closeAfterResponse: true);
        c.ServerNxt++;                                  // our FIN went with the response
        peer.Now += Rtt;
        Assert.Empty(c.SendAck());                      // FIN-WAIT-1 -> FIN-WAIT-2
        peer.Now += 5_000;
        Assert.Single(c.SendFin());                     // FIN-WAIT-2 -> TIME-WAIT, and our last ACK
        peer.Now += 200_000;
        Assert.Single(c.Send(c.ClientNxt - 1, c.ServerNxt, TcpFlags.Fin | TcpFlags.Ack)); // our ACK was "lost"
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        peer.Advance(2 * peer.Stack.Options.MslMicros); // 2·MSL later the record goes
        Assert.False(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Equal(TcpState.TimeWait, tcb.State);
    });

    [Fact]
    public void We_close_first_and_the_peer_acknowledges_with_its_own_fin() =>
        Golden("passive-open-we-close-first-fin-ack-together", peer =>
        {
            var (c, tcb) = Serve(peer, closeAfterResponse: true);
            c.ServerNxt++;
            peer.Now += Rtt;
            Assert.Single(c.SendFin());                 // FIN-WAIT-1 -> TIME-WAIT: its ACK and its FIN in one segment
            Assert.Equal(TcpState.TimeWait, tcb.State);
        });

    [Fact]
    public void Simultaneous_close() => Golden("simultaneous-close", peer =>
    {
        var (c, tcb) = Serve(peer);
        tcb.Close();
        var ourFin = Assert.Single(peer.Poll());
        Assert.True(ourFin.Flags.HasFlag(TcpFlags.Fin));
        peer.Now += 100;
        // The peer's FIN crosses ours: it acknowledges the response but not our FIN.
        Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Fin | TcpFlags.Ack));
        c.ClientNxt++;
        Assert.Equal(TcpState.Closing, tcb.State);
        c.ServerNxt++;
        peer.Now += Rtt;
        Assert.Empty(c.SendAck());                      // CLOSING -> TIME-WAIT
        Assert.Equal(TcpState.TimeWait, tcb.State);
    });

    [Fact]
    public void Active_open_and_the_server_closes_first() => Golden("active-open-server-closes-first", peer =>
    {
        var (c, tcb, syn) = ScriptedConnection.ConnectFromStack(peer, peerPort: 8000, peerIsn: 1_500_000_000);
        peer.Now += Rtt;
        var ack = Assert.Single(c.SendSynAck(LinuxSynAckOptions(syn), window: 65160));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        c.Timestamps = true;
        Assert.Equal(TcpState.Established, tcb.State);
        tcb.Send("GET /hello.txt HTTP/1.1\r\nHost: 198.18.0.1:8000\r\nConnection: close\r\n\r\n"u8);
        var get = Assert.Single(peer.Poll());
        c.ServerNxt += (uint)get.Payload.Length;
        peer.Now += Rtt;
        // python3 -m http.server answers and closes at once: the response, then its FIN.
        Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin, Response));
        c.ClientNxt += (uint)Response.Length + 1;
        ScriptedConnection.ReadAll(tcb);
        tcb.Close();
        Assert.Single(peer.Poll());
        c.ServerNxt++;
        peer.Now += Rtt;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.Closed, tcb.State);
    });

    [Fact]
    public void Active_open_refused() => Golden("active-open-refused", peer =>
    {
        var (c, tcb, _) = ScriptedConnection.ConnectFromStack(peer, peerPort: 8001);
        peer.Now += 100;
        // The kernel's answer to a SYN for a closed port: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>.
        Assert.Empty(c.Send(0, c.ServerNxt, TcpFlags.Rst | TcpFlags.Ack));
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.Refused, tcb.CloseReason);
    });

    [Fact]
    public void A_syn_to_a_closed_port_is_refused() => Golden("closed-port", peer =>
    {
        var rst = Assert.Single(peer.Send(41236, 81, 2_000_000_000, 0, TcpFlags.Syn,
            options: new TcpOptions { Mss = 1460, SackPermitted = true }));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
    });

    [Fact]
    public void Resets_from_the_peer_and_from_our_application() => Golden("resets", peer =>
    {
        var (c, tcb) = Serve(peer);
        peer.Now += Rtt;
        Assert.Single(c.Send(c.ClientNxt + 100, c.ServerNxt, TcpFlags.Rst)); // in the window, not exact: challenge ACK
        Assert.Empty(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Rst));       // exact: the connection is gone
        Assert.Equal(TcpState.Closed, tcb.State);

        var c2 = new ScriptedConnection(peer, clientPort: 41300, clientIsn: 77_000);
        var tcb2 = c2.EstablishWith(windowScale: 7, rttMicros: Rtt);
        peer.Now += 1_000;
        tcb2.Abort();                                   // our application aborts: RST, no FIN, no TIME-WAIT
        Assert.Equal(TcpState.Closed, tcb2.State);
    });

    [Fact]
    public void Syn_cookie_when_the_half_open_queue_is_full() => Golden("syn-cookie", peer =>
    {
        var c = new ScriptedConnection(peer, clientPort: 41400, clientIsn: 123_456);
        Assert.Single(c.SendSyn(c.SynOptions(sack: false, timestamps: false)));
        Assert.Null(c.Tcb);
        peer.Now += Rtt;
        c.SendData(Request);                            // the handshake's ACK returns the cookie and carries the request
        Assert.Equal(TcpState.Established, Assert.IsType<Tcb>(c.Tcb).State);
    }, PeerOptions(halfOpenLimit: 0));

    [Fact]
    public void A_new_syn_reopens_a_connection_in_time_wait() => Golden("time-wait-reopen", peer =>
    {
        var (c, _) = Serve(peer, closeAfterResponse: true);
        c.ServerNxt++;
        peer.Now += Rtt;
        Assert.Single(c.SendFin());                     // TIME-WAIT
        peer.Now += 100_000;
        var again = new ScriptedConnection(peer, clientPort: c.ClientPortNumber, clientIsn: c.ClientNxt + 100_000);
        var tcb = again.EstablishWith(windowScale: 7, rttMicros: Rtt);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.False(peer.Stack.IsInTimeWait(c.Tuple));
    });

    [Fact]
    public void Lost_syn_ack_is_sent_again() => Golden("syn-ack-retransmitted", peer =>
    {
        var c = new ScriptedConnection(peer, clientPort: 41500, clientIsn: 555_555);
        var synAck = Assert.Single(c.SendSyn(c.SynOptions(windowScale: 7)));
        c.Timestamps = true;
        var again = Assert.Single(peer.Advance(peer.Stack.Options.InitialRtoMicros)); // no ACK within the initial RTO
        Assert.Equal(synAck.Seq, again.Seq);
        peer.Now += Rtt;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.Established, Assert.IsType<Tcb>(c.Tcb).State);
    });

    // ---- the scripts' building blocks ----

    /// <summary>
    /// A curl-like client (Linux SYN options) connects to port 80, sends <see cref="Request"/>, and the application
    /// answers <see cref="Response"/> (and closes at once when asked). The response has been sent, not acknowledged.
    /// </summary>
    private static (ScriptedConnection Connection, Tcb Tcb) Serve(ScriptedPeer peer, bool closeAfterResponse = false)
    {
        var c = new ScriptedConnection(peer, clientPort: 41234, clientIsn: 3_000_000_000);
        var tcb = c.EstablishWith(windowScale: 7, rttMicros: Rtt, window: 64240);
        peer.Now += 500;
        c.SendData(Request);
        ScriptedConnection.ReadAll(tcb);
        Assert.Empty(peer.Advance(2_000));              // the application takes 2 ms to answer
        tcb.Send(Response);
        if (closeAfterResponse)
            tcb.Close();
        var sent = Assert.Single(peer.Poll());
        Assert.Equal(Response.Length, sent.Payload.Length);
        c.ServerNxt += (uint)Response.Length;
        return (c, tcb);
    }

    /// <summary>What Linux answers a SYN with: MSS, SACK-permitted, timestamps echoing ours, window scale 7.</summary>
    private static TcpOptions LinuxSynAckOptions(Seg syn) => new()
    {
        Mss = 1460, SackPermitted = true, HasTimestamps = true, TimestampValue = 3_141_592,
        TimestampEcho = syn.Options.TimestampValue, WindowScale = 7,
    };

    private static NetStackOptions PeerOptions(int halfOpenLimit = 16)
    {
        var d = ScriptedPeer.DefaultOptions();
        return new NetStackOptions
        {
            Addresses = d.Addresses, IsnSecret = d.IsnSecret, Mtu = d.Mtu, MslMicros = d.MslMicros,
            ReceiveBufferSize = d.ReceiveBufferSize, SendBufferSize = d.SendBufferSize, HalfOpenLimit = halfOpenLimit,
        };
    }

    private static void Golden(string name, Action<ScriptedPeer> script, NetStackOptions? options = null,
        [CallerFilePath] string sourceFile = "")
    {
        var output = new StringWriter { NewLine = "\n" };
        var peer = new ScriptedPeer(options ?? PeerOptions());
        peer.Stack.Tracer = CompositeTracer.Combine(new TextTracer(output), new ExplainTracer(output, peer.Stack.Options.MslMicros));
        peer.Stack.Listen(80);
        script(peer);
        string actual = output.ToString();

        string path = Path.Combine(Path.GetDirectoryName(sourceFile)!, "Golden", name + ".txt");
        if (Environment.GetEnvironmentVariable("TUNSTACK_UPDATE_GOLDEN") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, actual);
            return;
        }
        Assert.True(File.Exists(path), $"{path} is missing; generate it with TUNSTACK_UPDATE_GOLDEN=1 (see GoldenTraceTests). Output:\n{actual}");
        string expected = File.ReadAllText(path).ReplaceLineEndings("\n");
        if (expected == actual)
            return;
        string[] e = expected.Split('\n');
        string[] a = actual.Split('\n');
        int line = 0;
        while (line < e.Length && line < a.Length && e[line] == a[line]) line++;
        Assert.Fail($"{name}: line {line + 1} differs from {path}\n" +
            $"expected: {(line < e.Length ? e[line] : "(end of file)")}\n" +
            $"actual:   {(line < a.Length ? a[line] : "(end of output)")}\n" +
            "If the change is intended, regenerate with TUNSTACK_UPDATE_GOLDEN=1 and review the diff.\n--- actual output ---\n" + actual);
    }
}
