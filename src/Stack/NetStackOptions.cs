using TunStack.Tcp.Congestion;
using TunStack.Wire;

namespace TunStack;

/// <summary>Configuration of one <see cref="NetStack"/>. Times are microseconds.</summary>
internal sealed class NetStackOptions
{
    /// <summary>
    /// The addresses the stack answers for, IPv4 and IPv6 in any mix (default 198.18.0.2 and 2001:2::2). Packets to
    /// any other address are dropped as <see cref="DropReason.NotForUs"/>; listeners accept on all of them.
    /// </summary>
    public IReadOnlyList<IpAddress> Addresses { get; init; } = [IpAddress.Parse("198.18.0.2"), IpAddress.Parse("2001:2::2")];

    /// <summary>
    /// The prefix length of the IPv4 subnet on the link (24: 198.18.0.0/24). Its directed broadcast address (here
    /// 198.18.0.255) is not a valid source (RFC 1122 §3.2.1.3).
    /// </summary>
    public int Ipv4PrefixLength { get; init; } = 24;

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

    /// <summary>
    /// Our window scale shift, offered when the peer offers one (RFC 7323 §2). Null (the default) derives it from the
    /// receive buffer: the smallest shift whose 16-bit window field can express the whole buffer.
    /// </summary>
    public byte? WindowScale { get; init; }

    /// <summary>Offer and use selective acknowledgments (RFC 2018). On by default, as in Linux.</summary>
    public bool Sack { get; init; } = true;

    /// <summary>Offer and use timestamps (RFC 7323): RTT measurement, PAWS. On by default, as in Linux.</summary>
    public bool Timestamps { get; init; } = true;

    /// <summary>
    /// How long an ACK for in-order data may wait for a second segment or data to ride on (RFC 9293 §3.8.6.3 allows
    /// up to 500 ms; Linux's minimum is 40 ms). Zero acknowledges every segment at once.
    /// </summary>
    public long DelayedAckMicros { get; init; } = 40_000;

    /// <summary>The congestion control algorithm of new connections.</summary>
    public CongestionControlAlgorithm CongestionControl { get; init; } = CongestionControlAlgorithm.Cubic;

    /// <summary>Turn Nagle's algorithm (RFC 9293 §3.7.4) off for new connections; each connection can change it.</summary>
    public bool NoDelay { get; init; }

    /// <summary>RFC 6298 §2.1 initial RTO (1 s) and the floor. The RFC's 1 s floor is lowered to 200 ms, as in Linux.</summary>
    public long InitialRtoMicros { get; init; } = 1_000_000;
    public long MinRtoMicros { get; init; } = 200_000;
    public long MaxRtoMicros { get; init; } = 60_000_000;

    /// <summary>Retransmissions of one segment before the connection is abandoned (RFC 9293 §3.8.3, R2).</summary>
    public int MaxRetransmissions { get; init; } = 12;

    /// <summary>
    /// Retransmissions of our SYN before an active open gives up: 7 keep it going for just over three minutes
    /// (1, 3, 7, 15, 31, 63, 123 s, giving up at 183 s), as RFC 9293 §3.8.3 MUST-23 asks of R2 for a SYN.
    /// </summary>
    public int MaxSynRetransmissions { get; init; } = 7;

    /// <summary>
    /// An application's limit on an active open: not established within this time, it is aborted with a timeout
    /// (MUST-23 lets the application give up sooner). No limit by default; <c>tunstack fetch</c> sets its --timeout.
    /// </summary>
    public long ConnectTimeoutMicros { get; init; } = long.MaxValue;

    /// <summary>Retransmissions of a SYN-ACK before the embryonic connection is dropped.</summary>
    public int MaxSynAckRetransmissions { get; init; } = 5;

    /// <summary>
    /// The accept queue of each listener (listen(2)'s backlog): established connections the application has not
    /// accepted yet. When it is full, new SYNs are dropped.
    /// </summary>
    public int Backlog { get; init; } = 4096;

    /// <summary>Connections in SYN-RECEIVED per listener (Linux: tcp_max_syn_backlog); beyond it SYN cookies answer.</summary>
    public int HalfOpenLimit { get; init; } = 256;

    /// <summary>Answer SYNs with cookies when the half-open queue is full (RFC 4987 §3.6); off: drop them.</summary>
    public bool SynCookies { get; init; } = true;

    /// <summary>Challenge ACKs (RFC 5961) a connection sends per second at most (§7); the rest are suppressed and counted.</summary>
    public int ChallengeAckLimit { get; init; } = 10;

    /// <summary>Connections the stack holds at most (TIME-WAIT records not counted; see <see cref="MaxTimeWait"/>).</summary>
    public int MaxConnections { get; init; } = 65536;

    /// <summary>
    /// Memory the connections' buffers may hold together (like Linux's tcp_mem). A new connection is admitted only
    /// while its two buffers would still fit; buffers of idle connections are given back, so this bounds busy ones.
    /// </summary>
    public long BufferMemoryLimit { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// Connections allowed in TIME-WAIT at once; beyond this a closing connection is deleted at once instead
    /// (like Linux's tcp_max_tw_buckets), so that a stream of short connections cannot grow memory without bound.
    /// </summary>
    public int MaxTimeWait { get; init; } = 65536;

    /// <summary>
    /// How long a connection the application has released waits in FIN-WAIT-2 for the peer's FIN (Linux's
    /// tcp_fin_timeout, 60 s). A half-closed connection the application still reads waits as long as it likes.
    /// </summary>
    public long FinWait2TimeoutMicros { get; init; } = 60_000_000;

    /// <summary>Keep-alives on new connections (RFC 9293 §3.8.4 MAY-5; off by default, each connection can switch them on).</summary>
    public bool KeepAlive { get; init; }

    /// <summary>Idle time before the first keep-alive: at least two hours by default (MUST-28).</summary>
    public long KeepAliveIdleMicros { get; init; } = 7_200_000_000;

    /// <summary>Time between unanswered keep-alives (Linux: 75 s).</summary>
    public long KeepAliveIntervalMicros { get; init; } = 75_000_000;

    /// <summary>Unanswered keep-alives before the connection is dropped (Linux: 9).</summary>
    public int KeepAliveProbes { get; init; } = 9;

    /// <summary>The secret key of the ISN function (RFC 6528). Null draws 16 random bytes.</summary>
    public byte[]? IsnSecret { get; init; }
}
