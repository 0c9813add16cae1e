using System.Buffers.Binary;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// ICMP errors about our segments (RFC 9293 §3.9.2.2, MUST-54 … MUST-56, SHLD-25, SHLD-26; RFC 5927 §4.1; RFC 1191):
/// demultiplexed to the connection by the quoted header, believed only when they quote a sequence number in flight,
/// soft errors noted and never fatal, hard errors fatal only to an opening connection, and "fragmentation needed"
/// lowering the segment size.
/// </summary>
public class IcmpErrorTests
{
    private static readonly IpAddress Router = IpAddress.Parse("198.18.0.254");

    /// <summary>
    /// An ICMPv4 error from <paramref name="from"/> quoting the IPv4 header and the first 8 bytes of a TCP segment the
    /// stack sent to the peer (ports and sequence number), as RFC 792 requires at least.
    /// </summary>
    internal static byte[] IcmpError(byte type, byte code, ushort sourcePort, ushort destinationPort, uint seq,
        ushort nextHopMtu = 0, IpAddress? from = null)
    {
        const int quoteLength = Ipv4Packet.MinHeaderLength + 8;
        var packet = new byte[Ipv4Packet.MinHeaderLength + IcmpV4Packet.HeaderLength + quoteLength];
        var icmp = packet.AsSpan(Ipv4Packet.MinHeaderLength);
        icmp[0] = type;
        icmp[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], nextHopMtu); // RFC 1191 §4: in the low half of "unused"
        var quote = icmp[IcmpV4Packet.HeaderLength..];
        Ipv4Packet.WriteHeader(quote, ScriptedPeer.StackAddress, ScriptedPeer.PeerAddress, IpProtocol.Tcp, 1460, 7);
        BinaryPrimitives.WriteUInt16BigEndian(quote[20..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(quote[22..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(quote[24..], seq);
        IcmpV4Packet.WriteChecksum(icmp);
        Ipv4Packet.WriteHeader(packet, from ?? Router, ScriptedPeer.StackAddress, IpProtocol.Icmp, icmp.Length, 9);
        return packet;
    }

    private static (ScriptedPeer Peer, ScriptedConnection C, Tcb Tcb, List<Seg> InFlight) DataInFlight(int bytes = 4 * 1460)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        tcb.NoDelay = true;
        tcb.Send(new byte[bytes]);
        var inFlight = peer.Poll();
        Assert.Equal(bytes, inFlight.Sum(s => s.Payload.Length));
        return (peer, c, tcb, inFlight);
    }

    private static void Receive(ScriptedPeer peer, byte[] packet) => peer.Stack.Receive(packet, peer.Now);

    /// <summary>SHLD-26: port and protocol unreachable are hard errors; an opening connection is aborted ("refused").</summary>
    [Theory]
    [InlineData(IcmpV4Packet.CodeProtocolUnreachable, "protocol unreachable")]
    [InlineData(IcmpV4Packet.CodePortUnreachable, "port unreachable")]
    public void Hard_error_about_our_syn_aborts_the_open(byte code, string error)
    {
        var peer = new ScriptedPeer();
        var (c, tcb, syn) = ScriptedConnection.ConnectFromStack(peer);
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, code, syn.SourcePort, syn.DestinationPort, syn.Seq));

        Assert.Equal(TcpState.Closed, tcb.State);
        Assert.Equal(CloseReason.Refused, tcb.CloseReason);
        Assert.Equal(error, tcb.SoftError);
        Assert.Empty(peer.Stack.Connections);
        Assert.Empty(peer.Advance(10_000_000)); // no SYN retransmission
    }

    /// <summary>MUST-56, SHLD-25: network and host unreachable (codes 0, 1) are soft: noted for the application, not fatal.</summary>
    [Theory]
    [InlineData(0, "network unreachable")]
    [InlineData(1, "host unreachable")]
    public void Soft_error_about_our_syn_is_reported_and_the_syn_is_retransmitted(byte code, string error)
    {
        var peer = new ScriptedPeer();
        var (c, tcb, syn) = ScriptedConnection.ConnectFromStack(peer);
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, code, syn.SourcePort, syn.DestinationPort, syn.Seq));

        Assert.Equal(TcpState.SynSent, tcb.State);
        Assert.Equal(error, tcb.SoftError);
        var again = Assert.Single(peer.Advance(1_000_000));
        Assert.Equal(TcpFlags.Syn, again.Flags);
    }

    /// <summary>
    /// MUST-56 for every ICMP error in a synchronized state: unreachable of any code but 4 (hard ones too, as RFC 5461 §4
    /// and Linux do — a documented deviation from SHLD-26), and time exceeded, leave the connection open; the data is
    /// retransmitted at the RTO as if nothing had come.
    /// </summary>
    [Theory]
    [InlineData(IcmpV4Packet.TypeDestinationUnreachable, 0, "network unreachable")]
    [InlineData(IcmpV4Packet.TypeDestinationUnreachable, 1, "host unreachable")]
    [InlineData(IcmpV4Packet.TypeDestinationUnreachable, IcmpV4Packet.CodePortUnreachable, "destination unreachable (code 3)")]
    [InlineData(IcmpV4Packet.TypeTimeExceeded, 0, "time exceeded")]
    public void No_icmp_error_aborts_an_established_connection(byte type, byte code, string error)
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(type, code, inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[0].Seq));

        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Equal(error, tcb.SoftError);
        Assert.Equal(0, peer.Stack.Counters.TotalDropped);
        var resent = peer.Advance(tcb.CurrentRtoMicros);
        Assert.Equal(inFlight[0].Seq, resent[0].Seq);
    }

    /// <summary>MUST-54: the quoted header names the connection; an error for no connection of ours is dropped and counted.</summary>
    [Fact]
    public void Error_about_an_unknown_connection_is_dropped()
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, 1, inFlight[0].SourcePort, 9999, inFlight[0].Seq));
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.IcmpNoConnection));
        Assert.Null(tcb.SoftError);
    }

    /// <summary>
    /// RFC 5927 §4.1: an error is believed only if it quotes a sequence number in flight (SND.UNA =&lt; SEG.SEQ &lt;
    /// SND.NXT), so that a blind attacker must guess it.
    /// </summary>
    [Theory]
    [InlineData(-1)]
    [InlineData(4 * 1460)]
    [InlineData(100_000)]
    public void Error_quoting_a_sequence_number_not_in_flight_is_ignored(int offset)
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        uint seq = inFlight[0].Seq + (uint)offset;
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, IcmpV4Packet.CodeFragmentationNeeded,
            inFlight[0].SourcePort, inFlight[0].DestinationPort, seq, nextHopMtu: 600));
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.IcmpOutOfWindow));
        Assert.Equal(1460, tcb.SendMss);
        Assert.Empty(peer.Poll());
    }

    /// <summary>MUST-55: Source Quench (type 4, deprecated by RFC 6633) is silently discarded.</summary>
    [Fact]
    public void Source_quench_is_silently_discarded()
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        long cwnd = tcb.CongestionWindow;
        Receive(peer, IcmpError(4, 0, inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[0].Seq));
        Assert.Empty(peer.Poll());
        Assert.Equal(cwnd, tcb.CongestionWindow);
        Assert.Null(tcb.SoftError);
        Assert.Equal(1, peer.Stack.Counters.Dropped(DropReason.UnsupportedIcmp));
    }

    /// <summary>
    /// RFC 1191 §6: "fragmentation needed" with the next-hop MTU lowers the segment size to MTU − 40, and what was in
    /// flight goes again in segments that fit, from SND.UNA.
    /// </summary>
    [Fact]
    public void Fragmentation_needed_lowers_the_mss_and_resends_what_is_in_flight_in_smaller_segments()
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, IcmpV4Packet.CodeFragmentationNeeded,
            inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[1].Seq, nextHopMtu: 1000));

        Assert.Equal(960, tcb.SendMss);
        Assert.Equal(1, peer.Stack.Counters.PathMtuReductions);
        var resent = peer.Poll();
        Assert.Equal(inFlight[0].Seq, resent[0].Seq);
        Assert.All(resent, s => Assert.True(s.PacketLength <= 1000, $"{s.PacketLength}-byte packet"));
        Assert.Equal(4 * 1460, resent.Sum(s => s.Payload.Length));
        for (int i = 1; i < resent.Count; i++)
            Assert.Equal(resent[i - 1].Seq + (uint)resent[i - 1].Payload.Length, resent[i].Seq);
    }

    /// <summary>
    /// RFC 1191 §5: a router that reports no MTU (0) makes us take the next plateau below the current size (1492), and
    /// §3 lets us ignore an absurdly small value: 552 is the floor, as in Linux.
    /// </summary>
    [Theory]
    [InlineData(0, 1452)]
    [InlineData(68, 512)]
    public void Missing_or_tiny_next_hop_mtu_is_replaced_by_a_plateau_or_the_floor(int reported, int mss)
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, IcmpV4Packet.CodeFragmentationNeeded,
            inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[0].Seq, nextHopMtu: (ushort)reported));
        Assert.Equal(mss, tcb.SendMss);
    }

    /// <summary>RFC 1191 §6: a report of a larger MTU than we use never raises the segment size.</summary>
    [Fact]
    public void Larger_mtu_report_changes_nothing()
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(IcmpV4Packet.TypeDestinationUnreachable, IcmpV4Packet.CodeFragmentationNeeded,
            inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[0].Seq, nextHopMtu: 9000));
        Assert.Equal(1460, tcb.SendMss);
        Assert.Equal(0, peer.Stack.Counters.PathMtuReductions);
        Assert.Empty(peer.Poll());
    }

    /// <summary>
    /// §3.9.2.2: IPv4 Parameter Problem (type 12) is a soft error like unreachable codes 0, 1 and 5: MUST-56, not fatal;
    /// SHLD-25, "make the information available to the application".
    /// </summary>
    [Fact]
    public void Parameter_problem_is_a_soft_error_reported_to_the_application()
    {
        var (peer, c, tcb, inFlight) = DataInFlight();
        Receive(peer, IcmpError(12, 0, inFlight[0].SourcePort, inFlight[0].DestinationPort, inFlight[0].Seq));
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.NotNull(tcb.SoftError);
    }

    /// <summary>
    /// MUST-54 "applies to ICMPv6 in addition to IPv4 ICMP" (§3.9.2.2): the ICMPv6 soft errors — Destination Unreachable
    /// codes 0 and 3, Time Exceeded codes 0 and 1, Parameter Problem codes 0 to 2 — about a segment in flight are acted
    /// on: made available to the application (SHLD-25) without aborting the connection (MUST-56).
    /// </summary>
    [Theory]
    [InlineData(IcmpV6Packet.TypeDestinationUnreachable, 0)]
    [InlineData(IcmpV6Packet.TypeDestinationUnreachable, 3)]
    [InlineData(IcmpV6Packet.TypeTimeExceeded, 0)]
    [InlineData(IcmpV6Packet.TypeParameterProblem, 0)]
    public void Icmpv6_soft_errors_about_a_segment_in_flight_are_reported_to_the_application(byte type, byte code)
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer, clientAddress: ScriptedPeer.PeerAddress6);
        var tcb = c.Establish();
        tcb.Send(new byte[1000]);
        var segment = Assert.Single(peer.Poll());

        // The ICMPv6 message quotes our segment's IPv6 header and TCP header (RFC 4443 §2.4 (c): as much as fits).
        var quote = new byte[Ipv6Packet.HeaderLength + TcpSegment.MinHeaderLength];
        Ipv6Packet.WriteHeader(quote, ScriptedPeer.StackAddress6, ScriptedPeer.PeerAddress6, IpProtocol.Tcp, TcpSegment.MinHeaderLength);
        TcpSegment.WriteHeader(quote.AsSpan(Ipv6Packet.HeaderLength), segment.SourcePort, segment.DestinationPort, segment.Seq,
            segment.Ack, segment.Flags, segment.Window, 0);
        var router = IpAddress.Parse("2001:2::fe");
        var icmp = new byte[8 + quote.Length];
        IcmpV6Packet.WriteHeader(icmp, type, code, 0);
        quote.CopyTo(icmp.AsSpan(8));
        IcmpV6Packet.WriteChecksum(icmp, router, ScriptedPeer.StackAddress6);
        var packet = new byte[Ipv6Packet.HeaderLength + icmp.Length];
        Ipv6Packet.WriteHeader(packet, router, ScriptedPeer.StackAddress6, IpProtocol.IcmpV6, icmp.Length);
        icmp.CopyTo(packet.AsSpan(Ipv6Packet.HeaderLength));
        Receive(peer, packet);

        Assert.Equal(TcpState.Established, tcb.State);
        Assert.True(tcb.SoftError is not null,
            $"ICMPv6 type {type} code {code} was not reported; dropped as {string.Join(", ", DropsOf(peer.Stack))}");
    }

    private static IEnumerable<DropReason> DropsOf(NetStack stack) =>
        Enum.GetValues<DropReason>().Where(r => r != DropReason.None && stack.Counters.Dropped(r) > 0);
}
