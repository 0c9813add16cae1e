using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// The timestamps option (RFC 7323): negotiated only when both SYNs carry it (§3.2), the TSval clock, which TSval is
/// echoed (§4.3), and PAWS, protection against wrapped sequence numbers (§5).
/// </summary>
public class TimestampTests
{
    private const long DelayedAck = 40_000;

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Connected()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        return (peer, c, c.EstablishWith(sack: true, timestamps: true));
    }

    private static TcpOptions Ts(uint value, uint echo) => new() { HasTimestamps = true, TimestampValue = value, TimestampEcho = echo };

    [Fact]
    public void Syn_ack_echoes_the_peers_tsval_and_every_later_segment_carries_timestamps()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var synAck = Assert.Single(c.SendSyn(new TcpOptions { Mss = 1460, HasTimestamps = true, TimestampValue = 777 }));
        Assert.True(synAck.Options.HasTimestamps);
        Assert.Equal(777u, synAck.Options.TimestampEcho);
        uint synAckTsVal = synAck.Options.TimestampValue;

        c.Timestamps = true;
        Assert.Empty(c.SendAck());
        var tcb = c.Tcb!;
        Assert.True(tcb.TimestampsEnabled);
        Assert.Equal(1448, tcb.MaxPayload); // 1460 less 12 bytes of option (RFC 6691 §2)

        // The clock ticks once a millisecond: an ACK sent 40 ms later carries TSval + 40 and echoes the peer's latest.
        Assert.Empty(c.SendAt(0, 10));
        var ack = Assert.Single(peer.Advance(DelayedAck));
        Assert.True(ack.Options.HasTimestamps);
        Assert.Equal(synAckTsVal + 40, ack.Options.TimestampValue);
        Assert.Equal(c.TsBase + (uint)(1_000_000 / 1000), ack.Options.TimestampEcho); // the data segment's TSval

        tcb.Send(new byte[2896]);
        var data = peer.Poll();
        Assert.Equal([1448, 1448], data.Select(s => s.Payload.Length));
        Assert.All(data, s => Assert.True(s.Options.HasTimestamps));
    }

    [Fact]
    public void Peer_without_timestamps_gets_none_and_full_segments()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: true, timestamps: false);
        Assert.False(c.SynAck!.Options.HasTimestamps);
        Assert.False(tcb.TimestampsEnabled);
        Assert.Equal(1460, tcb.MaxPayload);

        // Even if the peer puts a timestamp on a later segment, nothing changes (§3.2: only the SYNs negotiate).
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 10), 65535, Ts(1, 0)));
        var ack = Assert.Single(peer.Advance(DelayedAck));
        Assert.False(ack.Options.HasTimestamps);
        tcb.Send(new byte[1460]);
        var data = Assert.Single(peer.Poll());
        Assert.Equal(1460, data.Payload.Length);
        Assert.False(data.Options.HasTimestamps);
    }

    [Fact]
    public void Stack_configured_without_timestamps_does_not_answer_them()
    {
        var options = ScriptedPeer.DefaultOptions();
        var peer = new ScriptedPeer(new NetStackOptions { Address = options.Address, IsnSecret = options.IsnSecret, Timestamps = false });
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: true, timestamps: true);
        Assert.False(c.SynAck!.Options.HasTimestamps);
        Assert.False(tcb.TimestampsEnabled);
    }

    [Fact]
    public void Active_open_uses_timestamps_only_if_the_syn_ack_carries_them()
    {
        var peer = new ScriptedPeer();
        var (c, tcb, syn) = ScriptedConnection.ConnectFromStack(peer);
        Assert.True(syn.Options.HasTimestamps);
        Assert.Equal(0u, syn.Options.TimestampEcho);

        var ack = Assert.Single(c.SendSynAck(new TcpOptions { Mss = 1460, SackPermitted = true }));
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.False(tcb.TimestampsEnabled);
        Assert.False(ack.Options.HasTimestamps);
        Assert.Equal(1460, tcb.MaxPayload);
    }

    /// <summary>RFC 7323 §4.3 case (A): with a delayed ACK, the TSval echoed is that of the earliest unacknowledged segment.</summary>
    [Fact]
    public void Delayed_ack_echoes_the_tsval_of_the_earliest_unacknowledged_segment()
    {
        var (peer, c, tcb) = Connected();
        uint t = c.TsVal; // T: the peer's clock now; TS.Recent is at most this
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 1448), 65535, Ts(t + 100, c.TsEcr)));
        var ack = Assert.Single(c.Send(c.PeerSeq(1448), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(1448, 1448), 65535,
            Ts(t + 101, c.TsEcr)));
        Assert.Equal(c.PeerSeq(2896), ack.Ack);
        Assert.Equal(t + 100, ack.Options.TimestampEcho);
    }

    /// <summary>
    /// RFC 7323 §4.3 case (B): a segment beyond a hole does not update TS.Recent (its SEG.SEQ is above Last.ACK.sent), so
    /// the duplicate ACK echoes the last in-order segment; the retransmission filling the hole sets it.
    /// </summary>
    [Fact]
    public void Out_of_order_segment_does_not_update_the_echoed_timestamp_but_the_one_filling_the_hole_does()
    {
        var (peer, c, tcb) = Connected();
        uint t = c.TsVal; // T: the peer's clock now; TS.Recent is at most this
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 100), 65535, Ts(t + 200, c.TsEcr)));
        Assert.Equal(t + 200, Assert.Single(peer.Advance(DelayedAck)).Options.TimestampEcho);

        // 100..199 is lost; 200..299 arrives with TSval 202.
        var dupAck = Assert.Single(c.Send(c.PeerSeq(200), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(200, 100), 65535,
            Ts(t + 202, c.TsEcr)));
        Assert.Equal(c.PeerSeq(100), dupAck.Ack);
        Assert.Equal(t + 200, dupAck.Options.TimestampEcho);

        // The retransmission of 100..199 (TSval 204) fills the hole.
        var ack = Assert.Single(c.Send(c.PeerSeq(100), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(100, 100), 65535,
            Ts(t + 204, c.TsEcr)));
        Assert.Equal(c.PeerSeq(300), ack.Ack);
        Assert.Equal(t + 204, ack.Options.TimestampEcho);
    }

    /// <summary>RFC 7323 §5.3 R1: a segment with SEG.TSval &lt; TS.Recent is an old duplicate: ACK it and drop it.</summary>
    [Fact]
    public void Paws_drops_a_segment_with_an_older_timestamp_and_acknowledges_it()
    {
        var (peer, c, tcb) = Connected();
        uint t = c.TsVal; // T: the peer's clock now; TS.Recent is at most this
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 100), 65535, Ts(t + 1000, c.TsEcr)));
        Assert.Single(peer.Advance(DelayedAck)); // TS.Recent = T + 1000

        // In sequence and in window, but stamped T + 999: from an earlier incarnation of this sequence space.
        var ack = Assert.Single(c.Send(c.PeerSeq(100), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(100, 100), 65535,
            Ts(t + 999, c.TsEcr)));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.PeerSeq(100), ack.Ack);
        Assert.Equal(t + 1000, ack.Options.TimestampEcho);
        Assert.Equal(100, tcb.BytesAvailable);
        Assert.Equal(0, tcb.BytesOutOfOrder);
        Assert.Equal(1, peer.Stack.Counters.PawsRejected);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.PawsRejected));

        // An equal TSval is not older: accepted.
        Assert.Empty(c.Send(c.PeerSeq(100), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(100, 100), 65535, Ts(t + 1000, c.TsEcr)));
        Assert.Equal(200, tcb.BytesAvailable);
        Assert.Equal(1, peer.Stack.Counters.PawsRejected);
    }

    /// <summary>RFC 7323 §5.3 R1: "... and if the RST bit is not set" — a RST is never dropped by PAWS.</summary>
    [Fact]
    public void Rst_with_an_older_timestamp_still_resets()
    {
        var (peer, c, tcb) = Connected();
        uint t = c.TsVal; // T: the peer's clock now; TS.Recent is at most this
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 100), 65535, Ts(t + 1000, c.TsEcr)));
        Assert.Single(peer.Advance(DelayedAck));

        Assert.Empty(c.Send(c.PeerSeq(100), 0, TcpFlags.Rst, default, 0, Ts(t + 1, 0)));
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.ResetByPeer, tcb.CloseReason);
        Assert.Equal(0, peer.Stack.Counters.PawsRejected);
    }

    /// <summary>
    /// RFC 7323 §5.5 (RFC 1323 §4.2.3): after more than 24 days idle TS.Recent is invalid. "If TS.Recent is found to be
    /// invalid, then the segment is accepted, regardless of the failure of the timestamp check, and rule R3 updates
    /// TS.Recent with the TSval from the new segment" — so the next ACK echoes the new, lower TSval.
    /// </summary>
    [Fact]
    public void After_24_days_idle_an_older_timestamp_is_accepted()
    {
        var (peer, c, tcb) = Connected();
        uint t = c.TsVal; // T: the peer's clock now; TS.Recent is at most this
        Assert.Empty(c.Send(c.PeerSeq(0), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(0, 100), 65535, Ts(t + 1000, c.TsEcr)));
        Assert.Single(peer.Advance(DelayedAck));

        peer.Advance(24L * 24 * 3600 * 1_000_000 + 1);
        Assert.Empty(c.Send(c.PeerSeq(100), c.ServerNxt, TcpFlags.Ack, ScriptedConnection.Pattern(100, 100), 65535, Ts(t + 5, c.TsEcr)));
        Assert.Equal(200, tcb.BytesAvailable);
        Assert.Equal(0, peer.Stack.Counters.PawsRejected);
        // And TS.Recent follows the new clock.
        Assert.Equal(t + 5, Assert.Single(peer.Advance(DelayedAck)).Options.TimestampEcho);
    }
}
