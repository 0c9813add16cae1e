using System.Runtime.CompilerServices;
using TunStack.Tcp;

namespace TunStack.Tests.Tcp;

public class TimerQueueTests
{
    [Fact]
    public void Many_connections_in_time_wait_expire_each_at_its_own_deadline()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(mslMicros: 1_000_000));
        peer.Stack.Listen(80);
        for (ushort port = 1; port <= 200; port++)
        {
            var c = new ScriptedConnection(peer, clientPort: port);
            var tcb = c.Establish();
            c.CloseActivelyToTimeWait(tcb);
            Assert.Equal(TcpState.TimeWait, tcb.State);
            peer.Advance(1_000); // one connection per millisecond
        }
        Assert.Equal(200, peer.Stack.TimeWaitCount);
        Assert.Empty(peer.Stack.Connections);

        // TIME-WAIT is 2 s; the first connection entered it 200 ms ago.
        peer.Advance(1_800_000 - 1);
        Assert.Equal(200, peer.Stack.TimeWaitCount);
        peer.Advance(100_000);
        Assert.Equal(100, peer.Stack.TimeWaitCount);
        peer.Advance(100_000);
        Assert.Equal(0, peer.Stack.TimeWaitCount);
    }

    [Fact]
    public void Restarting_the_retransmission_timer_on_every_ack_keeps_one_queue_entry()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        for (int i = 0; i < 1000; i++)
        {
            tcb.Send("x"u8);
            peer.Poll();
            peer.Advance(10);
            c.ServerNxt++;
            c.SendAck();
        }
        // 1000 restarts, yet the heap holds one entry for this connection (at most one stale one besides).
        Assert.InRange(peer.Stack.Tcp.TimerEntries, 0, 2);
        Assert.Equal(0, tcb.BytesQueued);
    }
    /// <summary>
    /// A connection that reaches TIME-WAIT with a timer entry still queued (its retransmission timer's) is not kept alive
    /// by that entry until it surfaces: only the small entry stays, the TCB (and whatever hangs off it) can be collected.
    /// </summary>
    [Fact]
    public void A_connection_that_ended_with_a_deadline_still_queued_is_not_kept_alive_by_the_queue()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var ended = CloseToTimeWait(peer);
        Assert.True(peer.Stack.Tcp.TimerEntries >= 1, "the test needs an entry still queued");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(ended.TryGetTarget(out _), "the timer queue keeps an ended connection alive");

        peer.Advance(120_000_000); // and the entry surfaces later without harm
        Assert.Equal(0, peer.Stack.Tcp.TimerEntries);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<Tcb> CloseToTimeWait(ScriptedPeer peer)
    {
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        c.CloseActivelyToTimeWait(tcb);
        Assert.Equal(TcpState.TimeWait, tcb.State);
        while (peer.Stack.TryTakeEvents(out _, out _)) { } // the application took its events
        return new WeakReference<Tcb>(tcb);
    }
}
