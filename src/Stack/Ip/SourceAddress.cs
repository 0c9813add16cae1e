using TunStack.Wire;

namespace TunStack.Ip;

/// <summary>
/// Which source addresses a packet may come from. A host must not accept a datagram from a source that cannot be a
/// single host (RFC 1122 §3.2.1.3): "this network" 0.0.0.0/8, loopback 127.0.0.0/8, multicast 224.0.0.0/4, the
/// reserved 240.0.0.0/4 with limited broadcast 255.255.255.255 — nor one claiming to be us (LAND attacks).
/// </summary>
internal static class SourceAddress
{
    /// <summary>True when <paramref name="source"/> can be a unicast peer of a host whose address is <paramref name="ours"/>.</summary>
    public static bool IsValidUnicast(IpAddress source, IpAddress ours)
    {
        if (source == ours)
            return false;
        if (!source.IsV4)
            return false;
        uint v = source.V4Value;
        byte first = (byte)(v >> 24);
        return first != 0 && first != 127 && first < 224;
    }
}
