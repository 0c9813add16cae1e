using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>RST handling (RFC 9293 §3.10.7.4 second check, RFC 5961 §3) and ABORT.</summary>
public class ResetTests
{
    private static (ScriptedPeer peer, ScriptedConnection c, Tcb tcb) Established()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        peer.Stack.TryTakeEvents(out _, out _);
        return (peer, c, tcb);
    }

    [Fact]
    public void Rst_at_rcv_nxt_aborts_the_connection()
    {
        var (peer, c, tcb) = Established();
        Assert.Empty(c.Send(c.ClientNxt, 0, TcpFlags.Rst));
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.ResetByPeer, tcb.CloseReason);
        Assert.True(peer.Stack.TryTakeEvents(out var t, out var events));
        Assert.Same(tcb, t);
        Assert.True(events.HasFlag(ConnectionEvents.Closed));
        Assert.Empty(peer.Stack.Connections);
    }

    [Fact]
    public void Rst_in_window_but_not_exact_gets_a_challenge_ack()
    {
        var (peer, c, tcb) = Established();
        var challenge = Assert.Single(c.Send(c.ClientNxt + 10, 0, TcpFlags.Rst));
        Assert.Equal(TcpFlags.Ack, challenge.Flags);
        Assert.Equal(c.ClientNxt, challenge.Ack);
        Assert.Equal(TcpState.Established, tcb.State);
    }

    [Fact]
    public void Rst_outside_the_window_is_ignored()
    {
        var (peer, c, tcb) = Established();
        Assert.Empty(c.Send(c.ClientNxt - 10, 0, TcpFlags.Rst));
        Assert.Equal(TcpState.Established, tcb.State);
    }

    [Fact]
    public void Rst_in_syn_received_removes_the_embryonic_connection()
    {
        var peer = new ScriptedPeer();
        var listener = peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        c.SendSyn();
        Assert.Empty(c.Send(c.ClientNxt, 0, TcpFlags.Rst));
        Assert.Empty(peer.Stack.Connections);
        Assert.Equal(0, listener.HalfOpenCount);
    }

    [Fact]
    public void Syn_in_established_gets_a_challenge_ack()
    {
        var (peer, c, tcb) = Established();
        var challenge = Assert.Single(c.Send(c.ClientNxt + 5, 0, TcpFlags.Syn));
        Assert.Equal(TcpFlags.Ack, challenge.Flags);
        Assert.Equal(c.ClientNxt, challenge.Ack);
        Assert.Equal(TcpState.Established, tcb.State);
    }

    [Fact]
    public void Abort_sends_rst_at_snd_nxt_and_deletes_the_tcb()
    {
        var (peer, c, tcb) = Established();
        tcb.Abort();
        var rst = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Rst, rst.Flags);
        Assert.Equal(c.ServerNxt, rst.Seq);
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.Aborted, tcb.CloseReason);
    }
}
