using TunStack.Wire;

namespace TunStack;

/// <summary>Counters of what the stack did. Written only by the engine's thread; readers may see slightly stale values.</summary>
public sealed class StackCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<DropReason>().Length];

    public long PacketsReceived;
    public long PacketsSent => SegmentsSent + EchoRepliesSent;
    /// <summary>Bytes of every IP packet handed to <see cref="NetStack.Receive"/>, headers included, dropped or not.</summary>
    public long BytesReceived;
    /// <summary>Bytes of every IP packet the stack queued for sending, headers included.</summary>
    public long BytesSent;
    public long SegmentsReceived;
    public long SegmentsSent;
    public long Retransmissions;
    /// <summary>Fast recoveries entered (loss detected by RACK or duplicate ACKs).</summary>
    public long FastRecoveries;
    public long RetransmissionTimeouts;
    /// <summary>Tail loss probes sent (RFC 8985 §7), and those that turned out to repair a loss.</summary>
    public long LossProbes;
    public long LossProbeRecoveries;
    /// <summary>Retransmissions that were lost again and sent once more.</summary>
    public long LostRetransmissions;
    public long WindowProbes;
    public long DelayedAcks;
    public long OutOfOrderSegments;
    /// <summary>Out-of-order segments not held because the reassembly had no free entry.</summary>
    public long OutOfOrderDropped;
    /// <summary>Segments whose bytes had all arrived before.</summary>
    public long DuplicateSegments;
    public long SackBlocksSent;
    public long SackBlocksReceived;
    public long DsacksReceived;
    public long PawsRejected;
    /// <summary>Segments with text beyond the right edge we advertised (the peer overran our window), trimmed.</summary>
    public long BeyondWindowSegments;
    /// <summary>
    /// Text inside the advertised window that did not fit the receive buffer. Always 0 unless the window promised
    /// more than the buffer holds — a bug, which tests assert against.
    /// </summary>
    public long ReceiveBufferOverruns;
    public long ResetsSent;
    public long ResetsReceived;
    public long PassiveOpens;
    public long ActiveOpens;
    public long ConnectionsEstablished;
    public long ConnectionsClosed;
    public long ConnectionsAborted;
    public long ConnectionsTimedOut;
    public long EchoRepliesSent;
    public long TimeWaitLimitReached;
    /// <summary>ICMPv6 Packet Too Big messages about our TCP segments, reported through <see cref="NetStack.PacketTooBig"/>.</summary>
    public long PacketTooBigReceived;

    /// <summary>Exceptions caught in a connection's timers or output (each aborted that connection).</summary>
    public long InternalErrors;
    public long PathMtuReductions;
    /// <summary>Connections reset because the application closed them with received data unread (RFC 2525 §2.17).</summary>
    public long ResetsOnUnreadData;
    public long KeepAlivesSent;
    public long ChallengeAcksSent;
    public long ChallengeAcksSuppressed;
    public long OutOfWindowAcksSuppressed;
    public long SynCookiesSent;
    /// <summary>Super-packets (segmentation offload) sent and received, each standing for several segments.</summary>
    public long SuperPacketsSent;
    public long SuperPacketsReceived;
    public long SynCookiesAccepted;
    public long ConnectionLimitReached;
    public long MemoryLimitReached;

    /// <summary>The latest exception caught on the packet path (a bug), or null.</summary>
    public Exception? LastInternalError { get; internal set; }

    public long Dropped(DropReason reason) => _drops[(int)reason];

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

    /// <summary>Each non-zero drop reason with its count.</summary>
    public IEnumerable<KeyValuePair<DropReason, long>> Drops()
    {
        for (int i = 1; i < _drops.Length; i++)
            if (_drops[i] != 0)
                yield return new((DropReason)i, _drops[i]);
    }
}
