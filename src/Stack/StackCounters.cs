using TunStack.Wire;

namespace TunStack;

/// <summary>Counters of what the stack did. Written only by the engine's thread; readers may see slightly stale values.</summary>
public sealed class StackCounters
{
    private long[] _drops = new long[Enum.GetValues<DropReason>().Length];

    /// <summary>IP packets handed to the stack.</summary>
    public long PacketsReceived;
    /// <summary>IP packets the stack sent: TCP segments and echo replies.</summary>
    public long PacketsSent => SegmentsSent + EchoRepliesSent;
    /// <summary>Bytes of every IP packet handed to <see cref="NetStack.Receive"/>, headers included, dropped or not.</summary>
    public long BytesReceived;
    /// <summary>Bytes of every IP packet the stack queued for sending, headers included.</summary>
    public long BytesSent;
    /// <summary>TCP segments that passed the header and checksum checks.</summary>
    public long SegmentsReceived;
    /// <summary>TCP segments sent, retransmissions included.</summary>
    public long SegmentsSent;
    /// <summary>Segments sent again.</summary>
    public long Retransmissions;
    /// <summary>Fast recoveries entered (loss detected by RACK or duplicate ACKs).</summary>
    public long FastRecoveries;
    /// <summary>Retransmission timer expiries (RFC 6298 §5).</summary>
    public long RetransmissionTimeouts;
    /// <summary>Tail loss probes sent (RFC 8985 §7), and those that turned out to repair a loss.</summary>
    public long LossProbes;
    /// <summary>Loss probes that repaired a loss.</summary>
    public long LossProbeRecoveries;
    /// <summary>Retransmissions that were lost again and sent once more.</summary>
    public long LostRetransmissions;
    /// <summary>Zero-window probes sent (RFC 9293 §3.8.6.1).</summary>
    public long WindowProbes;
    /// <summary>ACKs sent when the delayed-ACK timer fired.</summary>
    public long DelayedAcks;
    /// <summary>Segments that arrived beyond a gap.</summary>
    public long OutOfOrderSegments;
    /// <summary>Out-of-order segments not held because the reassembly had no free entry.</summary>
    public long OutOfOrderDropped;
    /// <summary>Segments whose bytes had all arrived before.</summary>
    public long DuplicateSegments;
    /// <summary>SACK blocks sent (RFC 2018).</summary>
    public long SackBlocksSent;
    /// <summary>SACK blocks received.</summary>
    public long SackBlocksReceived;
    /// <summary>Duplicate-SACK blocks received (RFC 2883).</summary>
    public long DsacksReceived;
    /// <summary>Segments rejected by PAWS (RFC 7323 §5).</summary>
    public long PawsRejected;
    /// <summary>Segments with text beyond the right edge we advertised (the peer overran our window), trimmed.</summary>
    public long BeyondWindowSegments;
    /// <summary>
    /// Text inside the advertised window that did not fit the receive buffer. Always 0 unless the window promised
    /// more than the buffer holds — a bug, which tests assert against.
    /// </summary>
    public long ReceiveBufferOverruns;
    /// <summary>RST segments sent.</summary>
    public long ResetsSent;
    /// <summary>Acceptable RST segments received.</summary>
    public long ResetsReceived;
    /// <summary>Connections opened from a SYN (passive OPEN).</summary>
    public long PassiveOpens;
    /// <summary>Connections we opened (active OPEN).</summary>
    public long ActiveOpens;
    /// <summary>Connections that reached ESTABLISHED.</summary>
    public long ConnectionsEstablished;
    /// <summary>Connections that ended normally.</summary>
    public long ConnectionsClosed;
    /// <summary>Connections that ended with a reset or abort.</summary>
    public long ConnectionsAborted;
    /// <summary>Connections given up after retransmissions or keep-alives ran out.</summary>
    public long ConnectionsTimedOut;
    /// <summary>ICMP and ICMPv6 echo replies sent.</summary>
    public long EchoRepliesSent;
    /// <summary>Connections deleted at once because TIME-WAIT was full.</summary>
    public long TimeWaitLimitReached;
    /// <summary>ICMPv6 Packet Too Big messages about our TCP segments, reported through <see cref="NetStack.PacketTooBig"/>.</summary>
    public long PacketTooBigReceived;

    /// <summary>Exceptions caught in a connection's timers or output (each aborted that connection).</summary>
    public long InternalErrors;
    /// <summary>Segment sizes lowered on ICMP "fragmentation needed" or Packet Too Big.</summary>
    public long PathMtuReductions;
    /// <summary>Connections reset because the application closed them with received data unread (RFC 2525 §2.17).</summary>
    public long ResetsOnUnreadData;
    /// <summary>Keep-alive probes sent (RFC 9293 §3.8.4).</summary>
    public long KeepAlivesSent;
    /// <summary>Challenge ACKs sent (RFC 5961).</summary>
    public long ChallengeAcksSent;
    /// <summary>Challenge ACKs not sent because of the per-connection limit (RFC 5961 §7).</summary>
    public long ChallengeAcksSuppressed;
    /// <summary>Duplicate ACKs to out-of-window segments not sent (rate limit).</summary>
    public long OutOfWindowAcksSuppressed;
    /// <summary>SYN-ACKs sent with a SYN cookie (RFC 4987).</summary>
    public long SynCookiesSent;
    /// <summary>Super-packets (segmentation offload) sent and received, each standing for several segments.</summary>
    public long SuperPacketsSent;
    /// <summary>Super-packets received, each standing for several segments.</summary>
    public long SuperPacketsReceived;
    /// <summary>Valid SYN cookies returned, which became connections.</summary>
    public long SynCookiesAccepted;
    /// <summary>SYNs dropped because the connection limit was reached.</summary>
    public long ConnectionLimitReached;
    /// <summary>SYNs dropped because the buffer memory limit was reached.</summary>
    public long MemoryLimitReached;
    /// <summary>Packets read from this shard's device queue and handed to the shard that owns their connection.</summary>
    public long PacketsHandedOff;

    /// <summary>The latest exception caught on the packet path (a bug), or null.</summary>
    public Exception? LastInternalError { get; internal set; }

    /// <summary>Packets dropped for <paramref name="reason"/>.</summary>
    public long Dropped(DropReason reason) => _drops[(int)reason];

    /// <summary>Packets dropped for any reason.</summary>
    public long TotalDropped
    {
        get
        {
            long sum = 0;
            foreach (long d in _drops) sum += d;
            return sum;
        }
    }

    internal void Drop(DropReason reason) => _drops[(int)reason]++;

    /// <summary>A copy that no longer changes (taken on the engine's thread).</summary>
    internal StackCounters Snapshot()
    {
        var copy = (StackCounters)MemberwiseClone();
        copy._drops = (long[])_drops.Clone();
        return copy;
    }

    /// <summary>
    /// The counters of several engine shards added up, as one stack's (snapshots, not live counters). Every counter is a
    /// public 64-bit field, so this adds them all without a list that could miss one; the first internal error found is kept.
    /// </summary>
    internal static StackCounters Sum(IEnumerable<StackCounters> parts)
    {
        var total = new StackCounters();
        foreach (var part in parts)
        {
            foreach (var field in CounterFields)
                field.SetValue(total, (long)field.GetValue(total)! + (long)field.GetValue(part)!);
            for (int i = 0; i < total._drops.Length; i++)
                total._drops[i] += part._drops[i];
            total.LastInternalError ??= part.LastInternalError;
        }
        return total;
    }

    private static readonly System.Reflection.FieldInfo[] CounterFields = typeof(StackCounters)
        .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance)
        .Where(f => f.FieldType == typeof(long))
        .ToArray();

    /// <summary>Each non-zero drop reason with its count.</summary>
    public IEnumerable<KeyValuePair<DropReason, long>> Drops()
    {
        for (int i = 1; i < _drops.Length; i++)
            if (_drops[i] != 0)
                yield return new((DropReason)i, _drops[i]);
    }
}
