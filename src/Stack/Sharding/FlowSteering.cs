using System.Buffers.Binary;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Sharding;

/// <summary>
/// Which TCP connection a packet from the device belongs to, read from as few bytes as possible so that a shard can
/// hand it to the shard that owns the connection before parsing it properly. Nothing here validates: the owner's
/// <see cref="NetStack.Receive(ReadOnlySpan{byte}, long)"/> still checks every length and checksum and drops what is
/// malformed. A packet this cannot place (not TCP, an IPv6 extension header before TCP, a fragment, too short) is
/// handled by whichever shard read it.
/// </summary>
internal static class FlowSteering
{
    /// <summary>
    /// The connection <paramref name="packet"/> is about, seen from our side: a TCP segment's addresses and ports
    /// reversed, or for an ICMP error quoting one of our TCP segments, the quoted segment's.
    /// </summary>
    public static bool TryGetFlow(ReadOnlySpan<byte> packet, out FourTuple tuple)
    {
        tuple = default;
        if (packet.Length < 20)
            return false;
        return (packet[0] >> 4) switch
        {
            4 => TryGetFlowV4(packet, out tuple),
            6 => TryGetFlowV6(packet, out tuple),
            _ => false,
        };
    }

    private static bool TryGetFlowV4(ReadOnlySpan<byte> packet, out FourTuple tuple)
    {
        tuple = default;
        int headerLength = (packet[0] & 0x0F) * 4;
        if (headerLength < 20 || packet.Length < headerLength + 4)
            return false;
        if ((BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x1FFF) != 0)
            return false; // a later fragment carries no ports
        var source = packet.Slice(12, 4);
        var destination = packet.Slice(16, 4);
        var payload = packet[headerLength..];
        switch (packet[9])
        {
            case IpProtocol.Tcp:
                tuple = Incoming(IpAddress.FromV4(destination), IpAddress.FromV4(source), payload);
                return true;
            case IpProtocol.Icmp when payload.Length >= 8 + 20 && IsIcmpV4Error(payload[0]):
                var quote = payload[8..];
                int quotedLength = (quote[0] & 0x0F) * 4;
                if (quote[0] >> 4 != 4 || quotedLength < 20 || quote.Length < quotedLength + 4 || quote[9] != IpProtocol.Tcp)
                    return false;
                tuple = Outgoing(IpAddress.FromV4(quote.Slice(12, 4)), IpAddress.FromV4(quote.Slice(16, 4)), quote[quotedLength..]);
                return true;
            default:
                return false;
        }
    }

    private static bool TryGetFlowV6(ReadOnlySpan<byte> packet, out FourTuple tuple)
    {
        tuple = default;
        const int headerLength = 40;
        if (packet.Length < headerLength + 4)
            return false;
        var source = IpAddress.FromV6(packet.Slice(8, 16));
        var destination = IpAddress.FromV6(packet.Slice(24, 16));
        var payload = packet[headerLength..];
        switch (packet[6])
        {
            case IpProtocol.Tcp:
                tuple = Incoming(destination, source, payload);
                return true;
            case IpProtocol.IcmpV6 when payload.Length >= 8 + headerLength + 4 && payload[0] < 128:
                var quote = payload[8..];
                if (quote[0] >> 4 != 6 || quote[6] != IpProtocol.Tcp)
                    return false;
                tuple = Outgoing(IpAddress.FromV6(quote.Slice(8, 16)), IpAddress.FromV6(quote.Slice(24, 16)), quote[headerLength..]);
                return true;
            default:
                return false;
        }
    }

    /// <summary>Destination unreachable, source quench, redirect, time exceeded, parameter problem (RFC 792).</summary>
    private static bool IsIcmpV4Error(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>A segment the peer sent: its destination is our side.</summary>
    private static FourTuple Incoming(IpAddress local, IpAddress remote, ReadOnlySpan<byte> tcp) =>
        new(local, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]), remote, BinaryPrimitives.ReadUInt16BigEndian(tcp));

    /// <summary>A segment we sent (quoted in an ICMP error): its source is our side.</summary>
    private static FourTuple Outgoing(IpAddress local, IpAddress remote, ReadOnlySpan<byte> tcp) =>
        new(local, BinaryPrimitives.ReadUInt16BigEndian(tcp), remote, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
}
