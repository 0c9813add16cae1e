using TunStack.Wire;

namespace TunStack;

/// <summary>Counters of what the stack did. Written only by the engine's thread; readers may see slightly stale values.</summary>
public sealed class StackCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<DropReason>().Length];

    public long PacketsReceived;
    public long PacketsSent => SegmentsSent + EchoRepliesSent;
    public long SegmentsReceived;
    public long SegmentsSent;
    public long Retransmissions;
    public long FastRetransmissions;
    public long ResetsSent;
    public long ResetsReceived;
    public long PassiveOpens;
    public long ConnectionsEstablished;
    public long ConnectionsClosed;
    public long ConnectionsAborted;
    public long ConnectionsTimedOut;
    public long EchoRepliesSent;
    public long TimeWaitLimitReached;
    /// <summary>ICMPv6 Packet Too Big messages about our TCP segments, reported through <see cref="NetStack.PacketTooBig"/>.</summary>
    public long PacketTooBigReceived;

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
