using System.Buffers.Binary;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Ip;

/// <summary>
/// An ICMPv6 Packet Too Big message (RFC 4443 §3.2) about a TCP segment we sent: a router on the path to
/// <see cref="Connection"/>'s remote end could not forward it. The stack reports it through
/// <see cref="NetStack.PacketTooBig"/>; lowering the connection's segment size (RFC 8201 §4, RFC 9293 §3.7.2) is
/// the listener's business, and so is checking that <see cref="SequenceNumber"/> lies in SND.UNA..SND.NXT
/// (RFC 5927 §4.1) before believing it.
/// </summary>
/// <param name="ReportedBy">Source of the ICMPv6 message (the router, or the peer itself).</param>
/// <param name="ReportedMtu">The MTU field as received.</param>
/// <param name="Connection">The 4-tuple of the quoted segment, from our side.</param>
/// <param name="SequenceNumber">The sequence number of the quoted segment.</param>
internal readonly record struct PacketTooBigMessage(IpAddress ReportedBy, uint ReportedMtu, FourTuple Connection, uint SequenceNumber)
{
    /// <summary>
    /// The path MTU to use: the reported one, but never below 1280, since "a node MUST NOT reduce its estimate of
    /// the Path MTU below the IPv6 minimum link MTU" (RFC 8201 §4).
    /// </summary>
    public int Mtu => (int)Math.Clamp(ReportedMtu, (uint)Ipv6Packet.MinimumMtu, ushort.MaxValue + (uint)Ipv6Packet.HeaderLength);

    /// <summary>
    /// Reads the message out of <paramref name="icmp"/>, a Packet Too Big carried by <paramref name="ip"/>. The
    /// quoted packet must be TCP with at least the ports and sequence number present (8 bytes); whether it came
    /// from one of our addresses is the caller's check. Otherwise false with <see cref="DropReason.BadQuotedPacket"/>,
    /// or <see cref="DropReason.UnsupportedIcmp"/> when it quotes something other than TCP.
    /// </summary>
    public static bool TryRead(in Ipv6Packet ip, in IcmpV6Packet icmp, out PacketTooBigMessage message, out DropReason reason)
    {
        message = default;
        if (icmp.Type != IcmpV6Packet.TypePacketTooBig) { reason = DropReason.UnsupportedIcmp; return false; }
        if (!Ipv6Packet.TryParseQuoted(icmp.Payload, out var quoted, out _)) { reason = DropReason.BadQuotedPacket; return false; }
        if (quoted.Protocol != IpProtocol.Tcp) { reason = DropReason.UnsupportedIcmp; return false; }
        var tcp = quoted.Payload;
        if (tcp.Length < 8) { reason = DropReason.BadQuotedPacket; return false; }

        // The quoted segment went from us (its source) to the peer: the tuple from our side.
        var tuple = new FourTuple(quoted.Source, BinaryPrimitives.ReadUInt16BigEndian(tcp),
            quoted.Destination, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
        message = new PacketTooBigMessage(ip.Source, icmp.Mtu, tuple, BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]));
        reason = DropReason.None;
        return true;
    }
}
