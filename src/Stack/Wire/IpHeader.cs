namespace TunStack.Wire;

/// <summary>
/// The IP header in front of an outgoing upper-layer message, IPv4 or IPv6 by the family of the addresses, so the
/// code that builds TCP segments and ICMP messages does not care which family a connection uses.
/// </summary>
internal static class IpHeader
{
    /// <summary>Bytes of IP header we write for packets from <paramref name="source"/>: 20 (IPv4) or 40 (IPv6).</summary>
    public static int LengthFor(IpAddress source) =>
        source.IsV4 ? Ipv4Packet.MinHeaderLength : Ipv6Packet.HeaderLength;

    /// <summary>
    /// Writes the header for a packet from <paramref name="source"/> to <paramref name="target"/> carrying
    /// <paramref name="payloadLength"/> bytes of <paramref name="protocol"/>; returns its length. IPv4: no options,
    /// DF set, TTL 64, the given identification. IPv6: no extension headers, hop limit 64, unlabelled.
    /// </summary>
    public static int Write(Span<byte> destination, IpAddress source, IpAddress target, byte protocol, int payloadLength,
        ushort ipv4Identification)
    {
        if (source.IsV4)
        {
            Ipv4Packet.WriteHeader(destination, source, target, protocol, payloadLength, ipv4Identification);
            return Ipv4Packet.MinHeaderLength;
        }
        Ipv6Packet.WriteHeader(destination, source, target, protocol, payloadLength);
        return Ipv6Packet.HeaderLength;
    }
}
