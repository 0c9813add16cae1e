using TunStack.Wire;

namespace TunStack.Ip;

// Placeholder until the ICMP echo implementation lands.
public static class IcmpEchoResponder
{
    public static bool TryBuildReply(Ipv4Packet request, IpAddress ourAddress, Span<byte> reply, out int replyLength, out DropReason reason)
    {
        replyLength = 0;
        reason = DropReason.UnsupportedIcmp;
        return false;
    }
}
