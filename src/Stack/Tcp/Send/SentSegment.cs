namespace TunStack.Tcp.Send;

[Flags]
internal enum SentFlags : byte
{
    None = 0,
    /// <summary>The peer reported holding it in a SACK block (RFC 2018, RFC 6675 "SACKed").</summary>
    Sacked = 1,
    /// <summary>Deemed lost (RACK, RFC 8985 §6.2; duplicate ACKs, RFC 6582; or a timeout) and not delivered since.</summary>
    Lost = 2,
    /// <summary>Retransmitted since it was deemed lost: counted in flight again (RFC 6675 "pipe").</summary>
    RetransmittedSinceLost = 4,
    /// <summary>Sent more than once (ever): its ACK is ambiguous for RTT (Karn's rule, RFC 6298 §3).</summary>
    Retransmitted = 8,
    /// <summary>The segment carries our FIN as its last sequence number.</summary>
    Fin = 16,
}

/// <summary>
/// One segment sent and not yet cumulatively acknowledged: the unit of the SACK scoreboard (RFC 6675) and of RACK's
/// per-segment transmit times (RFC 8985 §5.2). Its boundaries are fixed when first sent; a retransmission resends
/// exactly this range.
/// </summary>
internal struct SentSegment
{
    public SeqNumber Start;
    /// <summary>Sequence numbers it occupies: payload bytes, plus one for a FIN.</summary>
    public int Length;
    /// <summary>When it was last (re)transmitted, microseconds.</summary>
    public long TransmitTime;
    public SentFlags Flags;

    public readonly SeqNumber End => Start + Length;
    public readonly bool Is(SentFlags flag) => (Flags & flag) != 0;
    /// <summary>Payload bytes (without the FIN).</summary>
    public readonly int PayloadLength => Length - ((Flags & SentFlags.Fin) != 0 ? 1 : 0);
}
