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
}
