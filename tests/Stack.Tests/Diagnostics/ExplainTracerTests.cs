using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Diagnostics;

/// <summary>
/// The narration's bookkeeping: what it remembers per connection is forgotten when the connection closes (or enters
/// TIME-WAIT), and bounded whatever the traffic. The wording itself is checked by <see cref="GoldenTraceTests"/>.
/// </summary>
public class ExplainTracerTests
{
    [Fact]
    public void Combine_keeps_the_no_tracer_path_and_does_not_wrap_a_single_tracer()
    {
        Assert.Null(CompositeTracer.Combine(null, null));
        var text = new TextTracer(TextWriter.Null);
        Assert.Same(text, CompositeTracer.Combine(null, text));
        Assert.IsType<CompositeTracer>(CompositeTracer.Combine(text, new ExplainTracer(TextWriter.Null)));
    }

    [Fact]
    public void Every_connection_is_forgotten_when_it_closes_whichever_way()
    {
        var (peer, explain, output) = Explained();
        for (int i = 0; i < 12; i++)
        {
            var c = new ScriptedConnection(peer, clientPort: (ushort)(41000 + i), clientIsn: (uint)(i * 100_000));
            var tcb = c.EstablishWith(windowScale: 7);
            Assert.Equal(1, explain.ConnectionsFollowed);
            switch (i % 4)
            {
                case 0: // we close first: forgotten after our last ACK, though the record stays in TIME-WAIT
                    c.CloseActivelyToTimeWait(tcb);
                    Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
                    break;
                case 1: // the peer closes first
                    c.SendFin();
                    tcb.Close();
                    peer.Poll();
                    c.ServerNxt++;
                    c.SendAck();
                    break;
                case 2: // reset by the peer
                    c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Rst);
                    break;
                default: // aborted by us
                    tcb.Abort();
                    Assert.Equal(TcpFlags.Rst, Assert.Single(peer.Poll()).Flags);
                    break;
            }
            Assert.True(tcb.State is TcpState.Closed or TcpState.TimeWait, tcb.State.ToRfcName());
            Assert.Equal(0, explain.ConnectionsFollowed);
        }
        peer.Advance(2 * peer.Stack.Options.MslMicros);
        Assert.Equal(0, explain.ConnectionsFollowed);
        Assert.Contains("TIME-WAIT over", output.ToString());
    }

    [Fact]
    public void At_most_max_connections_are_followed_and_the_oldest_is_forgotten_first()
    {
        var (peer, explain, output) = Explained(maxConnections: 4);
        var connections = new List<(ScriptedConnection, Tcb)>();
        for (int i = 0; i < 10; i++)
        {
            var c = new ScriptedConnection(peer, clientPort: (ushort)(42000 + i), clientIsn: (uint)(i * 100_000));
            connections.Add((c, c.EstablishWith()));
            Assert.Equal(Math.Min(i + 1, 4), explain.ConnectionsFollowed);
        }
        // A forgotten connection is still narrated when it closes, from what its segments say.
        foreach (var (c, tcb) in connections)
        {
            c.SendFin();
            tcb.Close();
            peer.Poll();
            c.ServerNxt++;
            c.SendAck();
            Assert.InRange(explain.ConnectionsFollowed, 0, 4);
        }
        Assert.Equal(0, explain.ConnectionsFollowed);
        Assert.Equal(10, CountOf(output.ToString(), "closing, step 4 of 4"));
        Assert.Equal(10, CountOf(output.ToString(), "opening, step 3 of 3"));
    }

    [Fact]
    public void Data_transfer_is_not_narrated()
    {
        var (peer, _, output) = Explained();
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith();
        int before = output.ToString().Length;
        for (int i = 0; i < 20; i++)
        {
            c.SendData(ScriptedConnection.Pattern(i * 100, 100));
            ScriptedConnection.ReadAll(tcb);
        }
        Assert.Equal(before, output.ToString().Length);
    }

    private static (ScriptedPeer Peer, ExplainTracer Explain, StringWriter Output) Explained(int maxConnections = 64)
    {
        var peer = new ScriptedPeer();
        var output = new StringWriter();
        var explain = new ExplainTracer(output, peer.Stack.Options.MslMicros, maxConnections);
        peer.Stack.Tracer = explain;
        peer.Stack.Listen(80);
        return (peer, explain, output);
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal))
            n++;
        return n;
    }
}
