using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// The stack-wide limits that bound what a peer can make the stack hold: the number of connections
/// (<see cref="NetStackOptions.MaxConnections"/>), the memory of their buffers (<see cref="NetStackOptions.BufferMemoryLimit"/>,
/// like Linux's tcp_mem), and the rings an idle connection gives back. A SYN beyond a limit is dropped and counted; the
/// connections already open are not touched.
/// </summary>
public class ResourceLimitTests
{
    private static ScriptedPeer Peer(int maxConnections = 65536, long bufferMemoryLimit = 256L * 1024 * 1024)
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Addresses = defaults.Addresses,
            Mtu = defaults.Mtu,
            ReceiveBufferSize = defaults.ReceiveBufferSize,
            SendBufferSize = defaults.SendBufferSize,
            IsnSecret = defaults.IsnSecret,
            MaxConnections = maxConnections,
            BufferMemoryLimit = bufferMemoryLimit,
        });
        peer.Stack.Listen(80);
        return peer;
    }

    private static long Drops(NetStack stack, DropReason reason) =>
        stack.Counters.Drops().FirstOrDefault(d => d.Key == reason).Value;

    [Fact]
    public void Beyond_the_connection_limit_a_syn_is_dropped_and_counted()
    {
        var peer = Peer(maxConnections: 2);
        var first = new ScriptedConnection(peer, clientPort: 1).Establish();
        new ScriptedConnection(peer, clientPort: 2).Establish();

        var third = new ScriptedConnection(peer, clientPort: 3);
        Assert.Empty(third.SendSyn());

        Assert.Null(third.Tcb);
        Assert.Equal(2, peer.Stack.Connections.Count);
        Assert.Equal(1, peer.Stack.Counters.ConnectionLimitReached);
        Assert.Equal(1, Drops(peer.Stack, DropReason.ConnectionLimit));
        Assert.Equal(TcpState.Established, first.State);
    }

    [Fact]
    public void Beyond_the_buffer_budget_a_syn_is_dropped_until_a_connection_gives_its_memory_back()
    {
        // Room for the two 64 KiB rings of one connection and a little more: not for a second connection's.
        var peer = Peer(bufferMemoryLimit: 2 * 65536 + 65536 / 2);
        var busy = new ScriptedConnection(peer, clientPort: 1);
        var tcb = busy.Establish();
        // Rings rent storage as they fill (4 KiB first, then doubled): 40,000 unread bytes take the receive ring to its
        // 64 KiB; 1,000 unacknowledged ones hold 4 KiB of the send ring.
        busy.SendData(new byte[40_000]);
        tcb.Send(new byte[1000]);
        peer.Poll();
        Assert.True(tcb.HoldsBufferMemory);
        Assert.Equal(65536 + 4096, peer.Stack.Buffers.InUse);

        var refused = new ScriptedConnection(peer, clientPort: 2);
        Assert.Empty(refused.SendSyn());
        Assert.Null(refused.Tcb);
        Assert.Equal(1, peer.Stack.Counters.MemoryLimitReached);
        Assert.Equal(1, Drops(peer.Stack, DropReason.MemoryLimit));

        // The application reads what came and the peer acknowledges what went: the rings go back, and the next SYN
        // (the client's retransmission, say) is admitted.
        Assert.Equal(40_000, tcb.Receive(new byte[50_000]));
        busy.ServerNxt += 1000;
        busy.SendAck();
        Assert.False(tcb.HoldsBufferMemory);
        Assert.Equal(0, peer.Stack.Buffers.InUse);
        new ScriptedConnection(peer, clientPort: 3).Establish();
        Assert.Equal(1, peer.Stack.Counters.MemoryLimitReached);
    }

    [Fact]
    public void An_idle_connection_holds_no_buffer_memory()
    {
        var peer = Peer();
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        Assert.False(tcb.HoldsBufferMemory); // nothing rented before the first byte

        // One request and its response, then quiet: a keep-alive connection between requests.
        c.SendData("GET / HTTP/1.1\r\n\r\n"u8);
        Assert.True(tcb.HoldsBufferMemory);
        Assert.Equal(18, tcb.Receive(new byte[64]));
        Assert.False(tcb.HoldsBufferMemory); // all read: the receive ring went back at once
        tcb.Send(new byte[500]);
        peer.Poll();
        Assert.True(tcb.HoldsBufferMemory); // the response until it is acknowledged
        c.ServerNxt += 500;
        c.SendAck();

        Assert.Equal(TcpState.Established, tcb.State);
        Assert.False(tcb.HoldsBufferMemory);
        Assert.Equal(0, peer.Stack.Buffers.InUse);
    }
}
