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
}
