namespace TunStack.Wire;

/// <summary>Why an incoming packet was discarded. The packet path returns one of these instead of throwing.</summary>
public enum DropReason
{
    None = 0,
    // IP layer
    TooShort,
    BadIpVersion,
    BadIpHeaderLength,
    BadIpTotalLength,
    BadIpChecksum,
    IpFragment,
    NotForUs,
    UnsupportedProtocol,
    // TCP layer
    BadTcpDataOffset,
    BadTcpChecksum,
    BadTcpOption,
    // ICMP
    BadIcmpChecksum,
    UnsupportedIcmp,
    // TCP state machine
    NoListener,
    Unacceptable,
    BacklogFull,
    Stale,
    // Appended: ICMP echo responder
    /// <summary>The caller's output buffer cannot hold the reply.</summary>
    BufferTooSmall,
    /// <summary>The source is not a valid unicast address (RFC 1122 §3.2.1.3): 0/8, 127/8, multicast, broadcast, or ours.</summary>
    BadSourceAddress,
    /// <summary>An IPv6 packet: not handled yet (the kernel sends router and neighbour solicitations on link up).</summary>
    Ipv6NotSupported,
    /// <summary>Processing the packet hit a bug in the stack; the exception is kept in <c>StackCounters.LastInternalError</c>.</summary>
    InternalError,
    /// <summary>A TCP segment from or to port 0, which is reserved (RFC 6335 §6) and names no connection.</summary>
    BadTcpPort,
}
