using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// In-order text handed to the application while its segment is processed (<see cref="IReceiveSink"/>): bytes it takes
/// skip the receive ring, the ACK for them advertises the window as it is afterwards, and bytes always reach the
/// application in stream order, whether it keeps up, falls behind, or a gap is filled.
/// </summary>
public class ReceiveSinkTests
{
    private const long DelayedAck = 40_000;

    /// <summary>A sink that records what it took, refuses while <see cref="Behind"/>, and drains the TCB when asked.</summary>
    private sealed class RecordingSink(Func<Tcb> tcb) : IReceiveSink
    {
        public readonly List<byte> Taken = [];
        public bool Behind;
        public int Offers;

        public bool TryTake(ReadOnlySpan<byte> text)
        {
            Offers++;
            if (Behind) return false;
            Taken.AddRange(text.ToArray());
            return true;
        }

        public void Drain()
        {
            if (!Behind) Taken.AddRange(ScriptedConnection.ReadAll(tcb()));
        }
    }

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb, RecordingSink Sink) Connect(bool sack = false)
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(receiveBuffer: 4096));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: sack, timestamps: false);
        var sink = new RecordingSink(() => tcb);
        tcb.ReceiveSink = sink;
        return (peer, c, tcb, sink);
    }

    [Fact]
    public void Text_the_application_takes_skips_the_ring_and_the_ack_advertises_the_whole_buffer()
    {
        var (_, c, tcb, sink) = Connect();

        Assert.Empty(c.SendAt(0, 1024));
        var ack = Assert.Single(c.SendAt(1024, 1024)); // every second segment, as always
        Assert.Equal(c.PeerSeq(2048), ack.Ack);
        Assert.Equal((ushort)4096, ack.Window);         // not 2048: the application already has the bytes
        Assert.Equal(0, tcb.BytesAvailable);
        Assert.Equal(ScriptedConnection.Pattern(0, 2048), sink.Taken.ToArray());
        Assert.Equal(2, sink.Offers);
    }

    [Fact]
    public void While_the_application_is_behind_text_waits_in_the_ring_and_later_text_queues_behind_it()
    {
        var (peer, c, tcb, sink) = Connect();

        c.SendAt(0, 1000);
        sink.Behind = true;
        c.SendAt(1000, 1000);                          // refused: into the ring
        sink.Behind = false;
        var ack = Assert.Single(c.SendAt(2000, 1000)); // the ring is not empty: this goes behind the waiting bytes
        Assert.Equal(2, sink.Offers);                  // the third segment was not offered ahead of them
        Assert.Equal(c.PeerSeq(3000), ack.Ack);
        // Drained while the third segment was processed: the ACK already shows the whole buffer free.
        Assert.Equal((ushort)4096, ack.Window);
        Assert.Equal(ScriptedConnection.Pattern(0, 3000), sink.Taken.ToArray());
        Assert.Empty(peer.Advance(DelayedAck));
    }

    [Fact]
    public void A_filled_gap_reaches_the_application_in_stream_order()
    {
        var (_, c, tcb, sink) = Connect(sack: true);

        c.SendAt(0, 500);
        var dupAck = Assert.Single(c.SendAt(1000, 500)); // beyond a gap: held in the ring, ACKed at once
        Assert.Equal(c.PeerSeq(500), dupAck.Ack);
        Assert.Equal(ScriptedConnection.Pattern(0, 500), sink.Taken.ToArray());

        var fill = Assert.Single(c.SendAt(500, 500));   // fills the gap: everything up to 1500 is delivered at once
        Assert.Equal(c.PeerSeq(1500), fill.Ack);
        Assert.Equal((ushort)4096, fill.Window);
        Assert.Equal(0, tcb.BytesAvailable);
        Assert.Equal(ScriptedConnection.Pattern(0, 1500), sink.Taken.ToArray());

        c.SendAt(1500, 500);                             // and the next in-order text goes straight through again
        Assert.Equal(ScriptedConnection.Pattern(0, 2000), sink.Taken.ToArray());
        Assert.Equal(0, tcb.BytesAvailable);
    }
}
