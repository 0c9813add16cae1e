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

    [Fact]
    public void Challenge_acks_are_limited_per_connection_and_a_storm_on_one_leaves_another_untouched()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var victim = new ScriptedConnection(peer, clientPort: 1);
        victim.Establish();
        var other = new ScriptedConnection(peer, clientPort: 2);
        other.Establish();

        // RFC 5961 §7: a storm of in-window RSTs gets at most 10 challenge ACKs a second on this connection.
        int answered = 0;
        for (int i = 0; i < 50; i++)
            answered += victim.Send(victim.ClientNxt + 1 + (uint)i, 0, TcpFlags.Rst).Count;
        Assert.Equal(10, answered);
        Assert.Equal(40, peer.Stack.Counters.ChallengeAcksSuppressed);
        Assert.Equal(TcpState.Established, victim.Tcb!.State);

        // The other connection still answers: the limit is not shared (a shared one leaks state, CVE-2016-5696).
        var ack = Assert.Single(other.Send(other.ClientNxt + 1, 0, TcpFlags.Rst));
        Assert.Equal(TcpFlags.Ack, ack.Flags);

        // A second later the victim answers again.
        peer.Advance(1_000_000);
        Assert.Single(victim.Send(victim.ClientNxt + 1, 0, TcpFlags.Rst));
    }

    [Fact]
    public void Out_of_window_bare_acks_are_answered_at_most_every_500_ms_but_data_always()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        c.Establish();
        Assert.Single(c.Send(c.ClientNxt + 200_000, c.ServerNxt, TcpFlags.Ack));
        Assert.Empty(c.Send(c.ClientNxt + 200_000, c.ServerNxt, TcpFlags.Ack));
        Assert.Single(c.Send(c.ClientNxt + 200_000, c.ServerNxt, TcpFlags.Ack, "data"u8)); // data is never ignored
        peer.Advance(500_000);
        Assert.Single(c.Send(c.ClientNxt + 200_000, c.ServerNxt, TcpFlags.Ack));
        Assert.Equal(1, peer.Stack.Counters.OutOfWindowAcksSuppressed);
    }
}
