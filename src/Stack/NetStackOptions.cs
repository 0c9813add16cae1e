using TunStack.Wire;

namespace TunStack;

/// <summary>Configuration of one <see cref="NetStack"/>. Times are microseconds.</summary>
public sealed class NetStackOptions
{
    /// <summary>
    /// The addresses the stack answers for, IPv4 and IPv6 in any mix (default 198.18.0.2 and 2001:2::2). Packets to
    /// any other address are dropped as <see cref="DropReason.NotForUs"/>; listeners accept on all of them.
    /// </summary>
    public IReadOnlyList<IpAddress> Addresses { get; init; } = [IpAddress.Parse("198.18.0.2"), IpAddress.Parse("2001:2::2")];

    /// <summary>
    /// Shorthand for a stack with one address: reading gives the first of <see cref="Addresses"/>, setting makes
    /// it the only one.
    /// </summary>
    public IpAddress Address
    {
        get => Addresses[0];
        init => Addresses = [value];
    }

    /// <summary>
    /// Largest IP datagram we send or accept; our MSS option is this minus 40 over IPv4 and minus 60 over IPv6
    /// (RFC 9293 §3.7.1). At least 1280 when an address is IPv6 (RFC 8200 §5).
    /// </summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Maximum segment lifetime; TIME-WAIT lasts 2·MSL (RFC 9293 §3.4.2).</summary>
    public long MslMicros { get; init; } = 30_000_000;

    public int ReceiveBufferSize { get; init; } = 256 * 1024;
    public int SendBufferSize { get; init; } = 256 * 1024;

    /// <summary>Our window scale shift, offered when the peer offers one (RFC 7323 §2).</summary>
    public byte WindowScale { get; init; } = 7;

    /// <summary>RFC 6298 §2.1 initial RTO (1 s) and the floor. The RFC's 1 s floor is lowered to 200 ms, as in Linux.</summary>
    public long InitialRtoMicros { get; init; } = 1_000_000;
    public long MinRtoMicros { get; init; } = 200_000;
    public long MaxRtoMicros { get; init; } = 60_000_000;

    /// <summary>Retransmissions of one segment before the connection is abandoned (RFC 9293 §3.8.3, R2).</summary>
    public int MaxRetransmissions { get; init; } = 12;

    /// <summary>Retransmissions of a SYN-ACK before the embryonic connection is dropped.</summary>
    public int MaxSynAckRetransmissions { get; init; } = 5;

    /// <summary>Connections in SYN-RECEIVED per listener before further SYNs are dropped.</summary>
    public int Backlog { get; init; } = 256;

    /// <summary>
    /// Connections allowed in TIME-WAIT at once; beyond this a closing connection is deleted at once instead
    /// (like Linux's tcp_max_tw_buckets), so that a stream of short connections cannot grow memory without bound.
    /// </summary>
    public int MaxTimeWait { get; init; } = 65536;

    /// <summary>The secret key of the ISN function (RFC 6528). Null draws 16 random bytes.</summary>
    public byte[]? IsnSecret { get; init; }
}
