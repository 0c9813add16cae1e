using TunStack.Tcp;
using TunStack.Tests.Robustness;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// Single requirements of RFC 9293 (Appendix B numbering) that no other test class is about: the window as an unsigned
/// 32-bit number, Karn's rule, R2, zero windows that stay closed, LISTEN beside an opening connection, the choice of
/// local address, the checks on OPEN, options anywhere in the header, RST and ACK under a zero window, RST with data,
/// and timestamps deciding whether a SYN may reopen TIME-WAIT. docs/CONFORMANCE.md points here row by row.
/// </summary>
public class RequirementTests
{
    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb) Established(NetStackOptions? options = null,
        TcpOptions? synOptions = null, ushort window = 65535)
    {
        var peer = new ScriptedPeer(options);
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        return (peer, c, c.Establish(synOptions, window));
    }

    /// <summary>MUST-1, REC-1: the window field is unsigned, and the scaled window a 32-bit number.</summary>
    [Fact]
    public void The_window_is_an_unsigned_field_and_a_32_bit_scaled_number()
    {
        var (_, c, tcb) = Established(window: 0xFFFF);
        Assert.Equal(65535u, tcb.SndWnd); // 0xFFFF is not −1

        var (_, c14, tcb14) = Established(synOptions: new TcpOptions { Mss = 1460, WindowScale = 14 });
        Assert.Empty(c14.SendAck(window: 0xFFFF));
        Assert.Equal(0xFFFFu << 14, tcb14.SndWnd); // 1 073 725 440: needs 30 bits
    }

    /// <summary>MUST-18 (RFC 6298 §3, Karn): an acknowledgment of a retransmitted segment is no RTT sample.</summary>
    [Fact]
    public void An_ack_of_a_retransmitted_segment_gives_no_rtt_sample()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, timestamps: false, rttMicros: 10_000);
        Assert.Equal(10_000, tcb.SmoothedRttMicros);

        tcb.Send("once"u8);
        Assert.Single(peer.Poll());
        Assert.Single(peer.Advance(tcb.CurrentRtoMicros)); // the retransmission
        peer.Advance(5_000_000);
        c.ServerNxt += 4;
        Assert.Empty(c.SendAck());
        Assert.Equal(c.ServerNxt, tcb.SndUna.Value);
        Assert.Equal(10_000, tcb.SmoothedRttMicros); // neither 5.2 s (from the original) nor 5 s (from the retransmission)
    }

    /// <summary>
    /// MUST-20 (c), SHLD-11: a segment that is never acknowledged is retransmitted R2 = 12 times with exponential backoff,
    /// then the connection is closed — not before 100 s, even with the shortest RTO.
    /// </summary>
    [Fact]
    public void Unacknowledged_data_is_given_up_after_r2_retransmissions_and_not_before_100_seconds()
    {
        var (peer, c, tcb) = Established();
        Assert.Equal(200_000, tcb.CurrentRtoMicros); // the floor: the handshake measured no RTT to speak of
        tcb.Send("lost"u8);
        Assert.Single(peer.Poll());
        long start = peer.Now;
        int retransmissions = 0;
        while (tcb.State == TcpState.Established && peer.Now - start < 3_600_000_000)
            retransmissions += peer.Advance(100_000).Count;

        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.TimedOut, tcb.CloseReason);
        Assert.Equal(12, retransmissions);
        Assert.True(peer.Now - start >= 100_000_000, $"gave up after {(peer.Now - start) / 1e6} s");
    }

    /// <summary>
    /// MUST-37: "As long as the receiving TCP peer continues to send acknowledgments in response to the probe
    /// segments, the sending TCP peer MUST allow the connection to stay open" — here for two hours of a zero window.
    /// </summary>
    [Fact]
    public void A_zero_window_may_stay_closed_as_long_as_the_peer_answers_the_probes()
    {
        var (peer, c, tcb) = Established(window: 0);
        tcb.Send("waiting"u8);
        int probes = 0;
        for (long t = 0; t < 2 * 3_600_000_000L; t += 1_000_000)
        {
            foreach (var probe in peer.Advance(1_000_000))
            {
                Assert.Empty(probe.Payload);
                probes++;
                Assert.Empty(c.SendAck(window: 0));
            }
        }
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.InRange(probes, 100, 200); // backed off to one a minute (the largest RTO)
        var data = Assert.Single(c.SendAck(window: 1000));
        Assert.Equal("waiting"u8.ToArray(), data.Payload);
    }

    /// <summary>
    /// SHLD-17: when the peer shrinks its window to zero below data already sent, the sender "SHOULD NOT time out the
    /// connection if data beyond the right window edge is not acknowledged" (RFC 9293 §3.8.6.2.1) — as long as the peer
    /// answers. (Linux keeps such a connection while the peer's answers come within its largest RTO.)
    /// </summary>
    [Fact]
    public void Data_beyond_a_window_shrunk_to_zero_does_not_time_out_the_connection_while_the_peer_answers()
    {
        var (peer, c, tcb) = Established();
        tcb.NoDelay = true;
        tcb.Send(new byte[4 * 1460]);
        Assert.Equal(4, peer.Poll().Count);
        uint sndUna = c.ServerNxt;

        // The peer takes back its window (SHLD-14 says it should not; MUST-34 says we must cope) and answers every
        // segment we send with the same zero window, acknowledging nothing.
        Assert.Empty(c.SendAck(ack: sndUna, window: 0));
        long start = peer.Now;
        for (long t = 0; t < 30 * 60_000_000L && tcb.State == TcpState.Established; t += 1_000_000)
        {
            foreach (var _ in peer.Advance(1_000_000))
                c.SendAck(ack: sndUna, window: 0);
        }
        Assert.True(tcb.State == TcpState.Established,
            $"{tcb.State.ToRfcName()} ({tcb.CloseReason}) after {(peer.Now - start) / 1e6:F1} s of answered retransmissions");

        // The window opens: everything is delivered.
        var sent = c.SendAck(ack: sndUna, window: 65535);
        Assert.Equal(sndUna, sent[0].Seq);
    }

    /// <summary>
    /// SHLD-16: after the peer shrinks its window below what is in flight, old unacknowledged data is retransmitted
    /// "normally" between SND.UNA and SND.UNA+SND.WND — and not beyond the right edge (MAY-7 is not taken).
    /// </summary>
    [Fact]
    public void After_a_shrink_only_old_data_inside_the_window_is_retransmitted()
    {
        var (peer, c, tcb) = Established();
        tcb.Send(new byte[20_000]);
        Assert.Equal(10, peer.Poll().Count); // the initial window (RFC 6928)
        uint start = c.ServerNxt;

        Assert.Empty(c.SendAck(start + 1460, window: 1460)); // one segment acknowledged; the right edge falls inside the flight
        var first = Assert.Single(peer.Advance(tcb.CurrentRtoMicros));
        Assert.Equal(start + 1460, first.Seq); // SND.UNA, at the RTO

        // The next ACK leaves room for exactly one more segment: the congestion window would allow two.
        var resent = c.SendAck(start + 2920, window: 1460);
        Assert.Equal([start + 2920], resent.Select(s => s.Seq));
        Assert.Equal(2 * 1460, tcb.CongestionWindow);
    }

    /// <summary>
    /// MUST-41, MUST-42: LISTEN on the local port of a connection that is still opening (SYN-SENT) is allowed, leaves that
    /// connection alone, and serves new connections; a second LISTEN on the port is an error that changes nothing.
    /// </summary>
    [Fact]
    public void Listen_on_the_port_of_an_opening_connection_is_allowed_and_leaves_it_alone()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Poll(peer.Now);
        var opening = peer.Stack.Connect(ScriptedPeer.PeerAddress, 80, localPort: 5000);
        var syn = Assert.Single(peer.Poll());
        Assert.Equal((ushort)5000, syn.SourcePort);

        var listener = peer.Stack.Listen(5000);
        Assert.Throws<InvalidOperationException>(() => peer.Stack.Listen(5000));
        Assert.Equal(TcpState.SynSent, opening.State);

        // A new connection to the listener, from another port of the peer.
        var incoming = new ScriptedConnection(peer, serverPort: 5000, clientPort: 6000);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, Assert.Single(incoming.SendSyn()).Flags);
        Assert.Equal(1, listener.HalfOpenCount);

        // The opening connection completes as if nothing had happened.
        var ack = Assert.Single(peer.Send(80, 5000, 9000, syn.Seq + 1, TcpFlags.Syn | TcpFlags.Ack, options: new TcpOptions { Mss = 1460 }));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(TcpState.Established, opening.State);
        Assert.Equal(TcpState.SynReceived, incoming.Tcb!.State);
    }

    /// <summary>MUST-44: without a local address in OPEN, the stack picks one of the remote address's family.</summary>
    [Fact]
    public void Active_open_to_an_ipv6_peer_uses_our_ipv6_address()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Poll(peer.Now);
        var tcb = peer.Stack.Connect(ScriptedPeer.PeerAddress6, 80);
        var syn = Assert.Single(peer.Poll());
        Assert.Equal(ScriptedPeer.StackAddress6, syn.Source);
        Assert.Equal(ScriptedPeer.StackAddress6, tcb.Tuple.LocalAddress);
        Assert.Equal((ushort)1440, syn.Options.Mss); // MTU 1500 − 60
    }

    /// <summary>MUST-45: a passive open answers from the address the SYN was sent to, and keeps it for the connection.</summary>
    [Fact]
    public void A_connection_keeps_the_local_address_its_syn_was_sent_to()
    {
        var second = IpAddress.Parse("198.18.0.3");
        var peer = new ScriptedPeer(new NetStackOptions
        {
            Addresses = [ScriptedPeer.StackAddress, second], IsnSecret = ScriptedPeer.FixedSecret,
        });
        peer.Stack.Listen(80);
        peer.Stack.Receive(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, second, 7000, 80, 100, 0, TcpFlags.Syn, 65535,
            new TcpOptions { Mss = 1460 }, default), peer.Now);
        var synAck = Assert.Single(peer.Poll());
        Assert.Equal(second, synAck.Source);
        peer.Stack.Receive(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, second, 7000, 80, 101, synAck.Seq + 1,
            TcpFlags.Ack, 65535, default, default), peer.Now);
        var tcb = Assert.Single(peer.Stack.Connections);
        Assert.Equal(second, tcb.Tuple.LocalAddress);
        tcb.Send("from .3"u8);
        Assert.Equal(second, Assert.Single(peer.Poll()).Source);
    }

    /// <summary>
    /// MUST-46 (RFC 9293 §3.9.1.1): "A TCP implementation MUST reject as an error a local OPEN call for an invalid remote
    /// IP address (e.g., a broadcast or multicast address)." No SYN may leave for such an address.
    /// </summary>
    [Theory]
    [InlineData("224.0.0.1")]       // IPv4 multicast
    [InlineData("255.255.255.255")] // limited broadcast
    [InlineData("198.18.0.255")]    // the broadcast address of our /24
    [InlineData("0.0.0.0")]         // unspecified
    [InlineData("ff02::1")]         // IPv6 multicast
    [InlineData("::")]              // IPv6 unspecified
    public void Open_to_a_broadcast_multicast_or_unspecified_address_is_rejected(string address)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Poll(peer.Now);
        Assert.ThrowsAny<ArgumentException>(() => peer.Stack.Connect(IpAddress.Parse(address), 80));
        Assert.Empty(peer.Poll());
        Assert.Empty(peer.Stack.Connections);
    }

    /// <summary>MUST-64: options need not start on a word boundary — an MSS option at an odd offset counts.</summary>
    [Fact]
    public void An_mss_option_at_an_odd_offset_is_honoured()
    {
        Assert.True(TcpOptions.TryParse([1, 2, 4, 0x02, 0x18, 0, 0, 0], out var parsed));
        Assert.Equal((ushort)536, parsed.Mss);

        var target = new TargetStack();
        var synAck = Assert.Single(target.Inject(TargetStack.Packet(TcpFlags.Syn, seq: 1000)
            .With(p => p.Options = [1, 2, 4, 0x02, 0x18, 1, 1, 1]).Build()));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        target.Inject(TargetStack.Packet(TcpFlags.Ack, seq: 1001, ack: synAck.Seq + 1).Build());
        Assert.Equal(536, Assert.Single(target.Stack.Connections).SendMss);
    }

    /// <summary>MUST-65: the MSS option goes on SYNs only; MUST-61: the last segment of what was queued carries PSH.</summary>
    [Fact]
    public void Data_segments_carry_no_mss_option_and_the_last_one_of_a_write_carries_psh()
    {
        var (peer, c, tcb) = Established();
        tcb.Send(new byte[2 * 1460]);
        var data = peer.Poll();
        Assert.Equal([TcpFlags.Ack, TcpFlags.Ack | TcpFlags.Psh], data.Select(s => s.Flags));
        Assert.All(data, s => Assert.Null(s.Options.Mss));
    }

    /// <summary>
    /// MUST-66: "A TCP receiver MUST process the RST and URG fields of all incoming segments, even when the receive window
    /// is zero" — and the acceptability test lets a segment at RCV.NXT through a zero window for its ACK as well (§3.10.7.4).
    /// </summary>
    [Fact]
    public void With_a_zero_receive_window_an_ack_and_a_rst_at_rcv_nxt_are_still_processed()
    {
        var (peer, c, tcb) = Established(ScriptedPeer.DefaultOptions(receiveBuffer: 2920));
        c.SendData(new byte[1460]);
        var closing = Assert.Single(c.SendData(new byte[1460]));
        Assert.Equal((ushort)0, closing.Window);

        // Data now is not acceptable: ACKed, dropped.
        var refused = Assert.Single(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack | TcpFlags.Psh, "more"u8));
        Assert.Equal(c.ClientNxt, refused.Ack);
        Assert.Equal(2920, tcb.BytesAvailable);

        // An ACK at RCV.NXT is: it acknowledges our data.
        tcb.Send("reply"u8);
        Assert.Single(peer.Poll());
        c.ServerNxt += 5;
        Assert.Empty(c.SendAck());
        Assert.Equal(c.ServerNxt, tcb.SndUna.Value);

        // So is a RST at RCV.NXT.
        Assert.Empty(c.Send(c.ClientNxt, 0, TcpFlags.Rst));
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.ResetByPeer, tcb.CloseReason);
    }

    /// <summary>
    /// Text on a SYN is not kept (a documented deviation from §3.10.7.2 "queued for processing later"; no TCP Fast
    /// Open): the SYN-ACK acknowledges the SYN alone, so the peer sends the text again after the handshake.
    /// </summary>
    [Fact]
    public void Text_on_a_syn_is_not_acknowledged_and_is_taken_when_sent_again()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var synAck = Assert.Single(c.Send(c.ClientIsn, 0, TcpFlags.Syn, "early"u8, 65535, new TcpOptions { Mss = 1460 }));
        Assert.Equal(c.ClientIsn + 1, synAck.Ack);
        c.ClientNxt = c.ClientIsn + 1;
        c.ServerNxt = synAck.Seq + 1;
        Assert.Empty(c.SendAck());
        var tcb = c.Tcb!;
        Assert.Equal(0, tcb.BytesAvailable);
        c.SendData("early"u8);
        Assert.Equal("early"u8.ToArray(), ScriptedConnection.ReadAll(tcb));
    }

    /// <summary>SHLD-2: a RST may carry data (diagnostic text); it still resets.</summary>
    [Fact]
    public void A_rst_carrying_data_resets_the_connection()
    {
        var (peer, c, tcb) = Established();
        Assert.Empty(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Rst | TcpFlags.Ack, "connection reset: out of memory"u8));
        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.ResetByPeer, tcb.CloseReason);
        Assert.Equal(0, tcb.BytesAvailable);
    }

    /// <summary>
    /// SHLD-4 (RFC 6191 §2): with timestamps, a SYN reopens TIME-WAIT if its timestamp is newer than the last one seen,
    /// whatever its sequence number; a SYN with an older timestamp is an old duplicate (PAWS) and only acknowledged.
    /// </summary>
    [Fact]
    public void With_timestamps_a_newer_timestamp_decides_whether_a_syn_reopens_time_wait()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientIsn: 50_000);
        var tcb = c.EstablishWith(sack: false, timestamps: true);
        peer.Advance(10_000);
        c.CloseActivelyToTimeWait(tcb);
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));
        uint lastTsVal = c.TsVal;

        // Older timestamp, higher sequence number: an old duplicate, answered with an ACK; TIME-WAIT stays.
        var old = new TcpOptions { Mss = 1460, HasTimestamps = true, TimestampValue = lastTsVal - 5 };
        var ack = Assert.Single(c.Send(c.ClientNxt + 100_000, 0, TcpFlags.Syn, default, 65535, old));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.True(peer.Stack.IsInTimeWait(c.Tuple));

        // Newer timestamp, lower sequence number (a new ISN that wrapped below the old one): a new incarnation.
        peer.Advance(1_000);
        var fresh = new TcpOptions { Mss = 1460, HasTimestamps = true, TimestampValue = c.TsVal };
        var synAck = Assert.Single(c.Send(c.ClientIsn - 1_000_000, 0, TcpFlags.Syn, default, 65535, fresh));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(c.ClientIsn - 1_000_000 + 1, synAck.Ack);
        Assert.Equal(TcpState.SynReceived, c.Tcb!.State);
    }
}
