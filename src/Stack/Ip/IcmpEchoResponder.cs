using TunStack.Wire;

namespace TunStack.Ip;

/// <summary>Answers ICMPv4 echo requests addressed to the stack (RFC 792; RFC 1122 §3.2.2.6).</summary>
internal static class IcmpEchoResponder
{
    public const byte ReplyTtl = 64;

    /// <summary>
    /// Builds the echo reply for <paramref name="request"/> into <paramref name="reply"/>: a 20-byte IPv4 header
    /// (addresses swapped, TTL 64, DF set, identification 0 — an atomic datagram, RFC 6864 §4.1) followed by an
    /// echo reply with the request's identifier, sequence number and data. IP options of the request are not
    /// reflected. <paramref name="reply"/> may be the very buffer that holds <paramref name="request"/> (an in-place
    /// reply): every field is read before anything is written. Returns false, with the reason, for anything that is
    /// not a well-formed echo request to <paramref name="ourAddress"/> from a unicast source, or when
    /// <paramref name="reply"/> is too small. The caller drops fragments before calling this.
    /// </summary>
    public static bool TryBuildReply(Ipv4Packet request, IpAddress ourAddress, Span<byte> reply, out int replyLength,
        out DropReason reason)
    {
        replyLength = 0;
        if (request.Protocol != IpProtocol.Icmp) { reason = DropReason.UnsupportedProtocol; return false; }
        if (request.IsFragment) { reason = DropReason.IpFragment; return false; }
        IpAddress source = request.Source;
        IpAddress destination = request.Destination;
        if (destination != ourAddress) { reason = DropReason.NotForUs; return false; }
        if (!SourceAddress.IsValidUnicast(source, ourAddress)) { reason = DropReason.BadSourceAddress; return false; }

        if (!IcmpV4Packet.TryParse(request.Payload, out var echo, out reason))
            return false;
        if (!echo.IsEchoRequest) { reason = DropReason.UnsupportedIcmp; return false; }

        int icmpLength = echo.Length;
        int total = Ipv4Packet.MinHeaderLength + icmpLength;
        if (reply.Length < total) { reason = DropReason.BufferTooSmall; return false; }

        ushort identifier = echo.Identifier;
        ushort sequence = echo.SequenceNumber;
        // Data first: CopyTo is an overlap-safe move, and the source bytes lie at or after the destination.
        echo.Payload.CopyTo(reply[(Ipv4Packet.MinHeaderLength + IcmpV4Packet.HeaderLength)..]);
        var icmp = reply.Slice(Ipv4Packet.MinHeaderLength, icmpLength);
        IcmpV4Packet.WriteEchoHeader(icmp, IcmpV4Packet.TypeEchoReply, identifier, sequence);
        IcmpV4Packet.WriteChecksum(icmp);
        Ipv4Packet.WriteHeader(reply, destination, source, IpProtocol.Icmp, icmpLength, identification: 0,
            ttl: ReplyTtl, dontFragment: true);

        replyLength = total;
        reason = DropReason.None;
        return true;
    }
}
