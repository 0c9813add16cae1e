using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>Both close orders of RFC 9293 §3.6 (Figures 12 and 13).</summary>
public class CloseTests
{
    private static (ScriptedPeer peer, ScriptedConnection c, Tcb tcb) Established()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions(mslMicros: 500_000));
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        return (peer, c, c.Establish());
    }

    [Fact]
    public void Passive_close_goes_close_wait_last_ack_closed()
    {
        var (peer, c, tcb) = Established();

        var ack = Assert.Single(c.SendFin());
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ClientNxt, ack.Ack); // the FIN consumed one sequence number
        Assert.Equal(TcpState.CloseWait, tcb.State);
        Assert.True(tcb.ReceiveFinished);

        tcb.Close();
        var fin = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
        Assert.Equal(c.ServerNxt, fin.Seq);
        Assert.Equal(TcpState.LastAck, tcb.State);

        c.ServerNxt++;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.Normal, tcb.CloseReason);
        Assert.Empty(peer.Stack.Connections);
    }

    [Fact]
    public void Active_close_goes_fin_wait_1_fin_wait_2_time_wait_closed()
    {
        var (peer, c, tcb) = Established();
        tcb.Send("bye"u8);
        tcb.Close();
        Assert.Equal(TcpState.FinWait1, tcb.State);

        // The FIN rides on the last data segment.
        var fin = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin, fin.Flags);
        Assert.Equal("bye"u8.ToArray(), fin.Payload);

        c.ServerNxt += 4;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.FinWait2, tcb.State);

        var lastAck = Assert.Single(c.SendFin());
        Assert.Equal(c.ClientNxt, lastAck.Ack);
        Assert.Equal(TcpState.TimeWait, tcb.State);

        // TIME-WAIT is a small record now: the TCB left the connection table, and the application was told.
        Assert.Null(c.Tcb);
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Equal(CloseReason.Normal, tcb.CloseReason);
        Assert.True(peer.Stack.TryTakeEvents(out _, out var events) && events.HasFlag(ConnectionEvents.Closed));

        // TIME-WAIT lasts 2·MSL = 1 s here.
        Assert.Empty(peer.Advance(999_999));
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Empty(peer.Advance(1));
        Assert.False(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Empty(peer.Stack.Connections);
        Assert.Equal(0, peer.Stack.TimeWaitCount);
    }

    [Fact]
    public void Retransmitted_fin_in_time_wait_is_acknowledged_and_restarts_the_timer()
    {
        var (peer, c, tcb) = Established();
        c.CloseActivelyToTimeWait(tcb);
        Assert.Equal(TcpState.TimeWait, tcb.State);
        peer.Advance(600_000);

        var ack = Assert.Single(c.Send(c.ClientNxt - 1, c.ServerNxt, TcpFlags.Fin | TcpFlags.Ack));
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.Equal(c.ServerNxt, ack.Seq);
        Assert.Empty(peer.Advance(600_000));
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple)); // restarted: 1.2 s after the first FIN, still waiting
        peer.Advance(400_000);
        Assert.False(peer.Stack.IsInTimeWait(c.Tuple));
    }

    [Fact]
    public void Simultaneous_close_goes_through_closing()
    {
        var (peer, c, tcb) = Established();
        tcb.Close();
        var ourFin = Assert.Single(peer.Poll());
        Assert.True(ourFin.Flags.HasFlag(TcpFlags.Fin));

        // The peer's FIN crosses ours: it does not acknowledge our FIN yet.
        var ack = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Fin | TcpFlags.Ack));
        c.ClientNxt++;
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.Equal(TcpState.Closing, tcb.State);

        c.ServerNxt++;
        Assert.Empty(c.SendAck());
        Assert.Equal(TcpState.TimeWait, tcb.State);
    }

    [Fact]
    public void Fin_with_data_delivers_the_data_then_end_of_stream()
    {
        var (peer, c, tcb) = Established();
        var ack = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack | TcpFlags.Fin | TcpFlags.Psh, "last"u8));
        Assert.Equal(c.ClientNxt + 5, ack.Ack);
        Assert.Equal(TcpState.CloseWait, tcb.State);
        Assert.Equal(4, tcb.BytesAvailable);
        Assert.False(tcb.ReceiveFinished);
        tcb.Receive(new byte[4]);
        Assert.True(tcb.ReceiveFinished);
    }

    [Fact]
    public void Send_after_close_is_refused()
    {
        var (peer, c, tcb) = Established();
        tcb.Close();
        Assert.Equal(0, tcb.Send("late"u8));
    }

    [Fact]
    public void Time_wait_holds_no_buffer_memory()
    {
        var (peer, c, tcb) = Established();
        c.SendData("request"u8);
        tcb.Receive(new byte[16]);
        tcb.Send("response"u8);
        tcb.Close();
        peer.Poll();
        Assert.True(tcb.HoldsBufferMemory);
        c.ServerNxt += 9;
        c.SendAck();
        c.SendFin();
        Assert.Equal(TcpState.TimeWait, tcb.State);
        Assert.False(tcb.HoldsBufferMemory);
    }

    [Fact]
    public void Beyond_the_time_wait_limit_a_closing_connection_is_deleted_after_its_last_ack()
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions { Address = defaults.Address, IsnSecret = defaults.IsnSecret, MaxTimeWait = 1 });
        peer.Stack.Listen(80);
        TcpState ActiveClose(ushort port)
        {
            var c = new ScriptedConnection(peer, clientPort: port);
            var tcb = c.Establish();
            var lastAck = Assert.Single(c.CloseActivelyToTimeWait(tcb));
            Assert.Equal(c.ClientNxt, lastAck.Ack);
            return tcb.State;
        }
        Assert.Equal(TcpState.TimeWait, ActiveClose(1));
        Assert.Equal(TcpState.Closed, ActiveClose(2));
        Assert.Equal(1, peer.Stack.Counters.TimeWaitLimitReached);
        Assert.Equal(1, peer.Stack.TimeWaitCount);
        Assert.Empty(peer.Stack.Connections);
    }

    [Fact]
    public void New_syn_beyond_the_old_sequence_space_reopens_a_time_wait_connection()
    {
        var (peer, c, tcb) = Established();
        c.CloseActivelyToTimeWait(tcb);
        Assert.Equal(TcpState.TimeWait, tcb.State);

        // The client reuses its port at once, with a larger ISN (as Linux does): a SYN-ACK, not an ACK.
        var synAck = Assert.Single(c.Send(c.ClientNxt + 100_000, 0, TcpFlags.Syn, default, 65535, new TcpOptions { Mss = 1460 }));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(c.ClientNxt + 100_001, synAck.Ack);
        Assert.Equal(TcpState.SynReceived, c.Tcb!.State);
        Assert.NotSame(tcb, c.Tcb);
    }

    [Fact]
    public void Old_syn_in_time_wait_is_answered_with_an_ack()
    {
        var (peer, c, tcb) = Established();
        c.CloseActivelyToTimeWait(tcb);

        var ack = Assert.Single(c.Send(c.ClientNxt - 50, 0, TcpFlags.Syn));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ClientNxt, ack.Ack);
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
    }

    [Fact]
    public void Reopening_from_time_wait_picks_an_isn_above_the_old_sequence_space()
    {
        var (peer, c, tcb) = Established();
        tcb.Send(new byte[1000]);
        peer.Poll();
        c.ServerNxt += 1000;
        c.SendAck();
        var oldSndNxt = tcb.SndNxt + 1; // after our FIN
        c.CloseActivelyToTimeWait(tcb);

        // RFC 6191 / RFC 9293 §3.6.1 MAY-2: the new incarnation's ISN lies beyond everything the old one sent.
        var synAck = Assert.Single(c.Send(c.ClientNxt + 100_000, 0, TcpFlags.Syn, default, 65535, new TcpOptions { Mss = 1460 }));
        Assert.True(new SeqNumber(synAck.Seq) - oldSndNxt >= 65536, $"ISN {synAck.Seq} vs old SND.NXT {oldSndNxt}");
    }

    [Fact]
    public void Time_wait_stays_when_the_listener_cannot_take_a_reopening_syn()
    {
        var defaults = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions { Address = defaults.Address, IsnSecret = defaults.IsnSecret, HalfOpenLimit = 1, SynCookies = false });
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        c.CloseActivelyToTimeWait(c.Establish());
        new ScriptedConnection(peer, clientPort: 5).SendSyn(); // fills the half-open queue

        Assert.Empty(c.Send(c.ClientNxt + 100_000, 0, TcpFlags.Syn, default, 65535, new TcpOptions { Mss = 1460 }));
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.BacklogFull));
    }

    [Fact]
    public void Exact_rst_ends_time_wait_and_an_inexact_one_gets_a_challenge_ack()
    {
        var (peer, c, tcb) = Established();
        c.CloseActivelyToTimeWait(tcb);
        var challenge = Assert.Single(c.Send(c.ClientNxt + 10, 0, TcpFlags.Rst));
        Assert.Equal(TcpFlags.Ack, challenge.Flags);
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        Assert.Empty(c.Send(c.ClientNxt, 0, TcpFlags.Rst));
        Assert.False(peer.Stack.IsInTimeWait(c.Tuple));
    }
}
