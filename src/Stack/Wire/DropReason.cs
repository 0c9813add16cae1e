namespace TunStack.Wire;

/// <summary>Why an incoming packet was discarded. The packet path returns one of these instead of throwing.</summary>
public enum DropReason
{
    /// <summary>Not dropped.</summary>
    None = 0,
    // IP layer
    /// <summary>Shorter than the smallest header.</summary>
    TooShort,
    /// <summary>The IP version is neither 4 nor 6.</summary>
    BadIpVersion,
    /// <summary>IPv4: the header length (IHL) is below 5 words or runs past the packet.</summary>
    BadIpHeaderLength,
    /// <summary>IPv4: the total length is smaller than the header or larger than the packet.</summary>
    BadIpTotalLength,
    /// <summary>IPv4: the header checksum is wrong (RFC 791).</summary>
    BadIpChecksum,
    /// <summary>A fragment: IPv4 MF or a fragment offset, or an IPv6 Fragment header that is not atomic. No reassembly.</summary>
    IpFragment,
    /// <summary>The destination is not one of the stack's addresses (and no forwarding listener takes it).</summary>
    NotForUs,
    /// <summary>IPv4: neither TCP nor ICMP.</summary>
    UnsupportedProtocol,
    // TCP layer
    /// <summary>The TCP data offset is below 5 words or runs past the segment.</summary>
    BadTcpDataOffset,
    /// <summary>The TCP checksum (with the pseudo-header) is wrong.</summary>
    BadTcpChecksum,
    /// <summary>A TCP option's length is malformed (RFC 9293 §3.1).</summary>
    BadTcpOption,
    // ICMP
    /// <summary>The ICMP checksum is wrong.</summary>
    BadIcmpChecksum,
    /// <summary>An ICMP type the stack does not handle.</summary>
    UnsupportedIcmp,
    // TCP state machine
    /// <summary>No connection and no listener: answered with RST (RFC 9293 §3.10.7.1).</summary>
    NoListener,
    /// <summary>Not acceptable for the connection's receive window (RFC 9293 §3.10.7.4).</summary>
    Unacceptable,
    /// <summary>The listener's half-open queue is full and SYN cookies are off.</summary>
    BacklogFull,
    /// <summary>Not meaningful in the connection's state (an ACK to LISTEN, an old duplicate, ...).</summary>
    Stale,
    // Appended: ICMP echo responder
    /// <summary>The caller's output buffer cannot hold the reply.</summary>
    BufferTooSmall,
    /// <summary>
    /// The source is not a valid unicast address: for IPv4 (RFC 1122 §3.2.1.3) 0/8, 127/8, multicast, broadcast;
    /// for IPv6 (RFC 4291 §2.5.2, §2.5.3, §2.5.5.2, §2.7) ::, ::1, ff00::/8, ::ffff:0:0/96; or one of ours.
    /// </summary>
    BadSourceAddress,
    /// <summary>IPv6: the Payload Length runs past the end of the packet (RFC 8200 §3).</summary>
    BadIpv6PayloadLength,
    /// <summary>
    /// IPv6: an extension header runs past the payload, an option runs past its header, or a Hop-by-Hop Options
    /// header is not the first (RFC 8200 §4).
    /// </summary>
    BadIpv6ExtensionHeader,
    /// <summary>IPv6: an option we do not recognise whose type says "discard the packet" (RFC 8200 §4.2), e.g. Jumbo Payload.</summary>
    Ipv6UnrecognizedOption,
    /// <summary>IPv6: a Routing header with Segments Left above zero asks us to forward the packet; a host does not (RFC 8200 §4.4).</summary>
    RoutingHeaderSegmentsLeft,
    /// <summary>
    /// IPv6: the last Next Header is neither an extension header we walk nor TCP or ICMPv6 (RFC 8200 §4:
    /// "unrecognized Next Header"), e.g. UDP, ESP, AH or No Next Header.
    /// </summary>
    UnknownNextHeader,
    /// <summary>
    /// IPv6: sent to a multicast group; the stack joins none. On link up the kernel sends router solicitations
    /// (ff02::2), MLD reports (ff02::16) and duplicate address detection (solicited-node groups) to these.
    /// </summary>
    MulticastDestination,
    /// <summary>An ICMP error quotes a packet we cannot have sent: too short to show the TCP ports, or not from our address.</summary>
    BadQuotedPacket,
    /// <summary>Processing the packet hit a bug in the stack; the exception is kept in <c>StackCounters.LastInternalError</c>.</summary>
    InternalError,
    /// <summary>A segment with a timestamp older than the connection's latest (RFC 7323 §5, PAWS): an old duplicate.</summary>
    PawsRejected,
    /// <summary>An ICMP error about a TCP segment that belongs to no connection of ours.</summary>
    IcmpNoConnection,
    /// <summary>An ICMP error quoting a sequence number that is not in flight: possibly forged (RFC 5927 §4.1).</summary>
    IcmpOutOfWindow,
    /// <summary>A SYN for a listener whose accept queue (its backlog) is full: the application is not accepting.</summary>
    AcceptQueueFull,
    /// <summary>A SYN refused because the stack has <c>MaxConnections</c> connections.</summary>
    ConnectionLimit,
    /// <summary>A SYN refused because buffer memory would exceed <c>BufferMemoryLimit</c>.</summary>
    MemoryLimit,
    /// <summary>A TCP segment from or to port 0, which is reserved (RFC 6335 §6) and names no connection.</summary>
    BadTcpPort,
    /// <summary>
    /// Multi-queue: the packet came in on one device queue for a connection another shard owns, and that shard's hand-in
    /// queue was full (it is not keeping up); TCP recovers it as any loss.
    /// </summary>
    ShardQueueFull,
}
