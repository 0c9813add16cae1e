using TunStack.Wire;

namespace TunStack.Ip;

/// <summary>Answers ICMPv6 echo requests addressed to the stack (RFC 4443 §4.1-4.2).</summary>
internal static class IcmpV6EchoResponder
{
    public const byte ReplyHopLimit = 64;

    /// <summary>
    /// Builds the echo reply to <paramref name="echo"/>, carried by <paramref name="request"/>, into
    /// <paramref name="reply"/>: an IPv6 header without extension headers (addresses swapped: RFC 4443 §4.2 says
    /// the reply's source is the unicast address the request was sent to), then an echo reply with the request's
    /// identifier, sequence number and data, "returned entirely and unmodified". The caller has checked that the
    /// destination is one of our unicast addresses and the source a valid unicast source. Returns false with the
    /// reason when <paramref name="echo"/> is not an echo request or <paramref name="reply"/> is too small.
    /// <paramref name="reply"/> must not overlap the request.
    /// </summary>
    public static bool TryBuildReply(in Ipv6Packet request, in IcmpV6Packet echo, Span<byte> reply, out int replyLength,
        out DropReason reason)
    {
        replyLength = 0;
        if (!echo.IsEchoRequest) { reason = DropReason.UnsupportedIcmp; return false; }
        int total = Ipv6Packet.HeaderLength + echo.Length;
        if (reply.Length < total) { reason = DropReason.BufferTooSmall; return false; }

        IpAddress source = request.Destination;
        IpAddress destination = request.Source;
        var icmp = reply.Slice(Ipv6Packet.HeaderLength, echo.Length);
        IcmpV6Packet.WriteEchoHeader(icmp, IcmpV6Packet.TypeEchoReply, echo.Identifier, echo.SequenceNumber);
        echo.Payload.CopyTo(icmp[IcmpV6Packet.HeaderLength..]);
        IcmpV6Packet.WriteChecksum(icmp, source, destination);
        Ipv6Packet.WriteHeader(reply, source, destination, IpProtocol.IcmpV6, echo.Length, ReplyHopLimit);

        replyLength = total;
        reason = DropReason.None;
        return true;
    }
}
