namespace TunStack.Tcp.Send;

/// <summary>
/// The segments in flight, oldest first (the retransmission queue of RFC 9293 §3.7, kept as per-segment records so
/// SACK and RACK can work on them). A ring array that doubles when full: its size follows the number of segments a
/// window holds, so steady sending allocates nothing.
/// </summary>
internal sealed class SentSegmentQueue
{
    private SentSegment[] _items = [];
    private int _head;
    private int _count;

    public int Count => _count;
    public bool IsEmpty => _count == 0;

    public ref SentSegment this[int index] => ref _items[(_head + index) & (_items.Length - 1)];

    public ref SentSegment Oldest => ref this[0];
    public ref SentSegment Newest => ref this[_count - 1];

    public void Add(SeqNumber start, int length, long time, SentFlags flags)
    {
        if (_count == _items.Length) Grow();
        ref var s = ref _items[(_head + _count) & (_items.Length - 1)];
        s.Start = start;
        s.Length = length;
        s.TransmitTime = time;
        s.Flags = flags;
        _count++;
    }

    public void RemoveOldest()
    {
        _head = (_head + 1) & (_items.Length - 1);
        _count--;
    }

    /// <summary>Index of the first segment whose end is after <paramref name="seq"/> (binary search), or Count.</summary>
    public int FirstEndingAfter(SeqNumber seq)
    {
        int lo = 0, hi = _count;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (this[mid].End > seq) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    /// <summary>
    /// Splits every record whose payload is longer than <paramref name="maxPayload"/> into records of at most that size
    /// (after the path MTU shrank); the pieces keep the flags, and the FIN stays on the last piece. Returns true when
    /// anything was split.
    /// </summary>
    public bool SplitLargerThan(int maxPayload)
    {
        int pieces = 0;
        for (int i = 0; i < _count; i++)
            pieces += Math.Max(1, (this[i].PayloadLength + maxPayload - 1) / maxPayload);
        if (pieces == _count)
            return false;
        int capacity = 16;
        while (capacity < pieces) capacity *= 2;
        var split = new SentSegment[capacity];
        int n = 0;
        for (int i = 0; i < _count; i++)
        {
            var s = this[i];
            int payload = s.PayloadLength;
            if (payload <= maxPayload)
            {
                split[n++] = s;
                continue;
            }
            bool fin = s.Is(SentFlags.Fin);
            for (int offset = 0; offset < payload; offset += maxPayload)
            {
                int length = Math.Min(maxPayload, payload - offset);
                bool last = offset + length == payload;
                split[n++] = new SentSegment
                {
                    Start = s.Start + offset,
                    Length = length + (last && fin ? 1 : 0),
                    TransmitTime = s.TransmitTime,
                    Flags = last ? s.Flags : s.Flags & ~SentFlags.Fin,
                };
            }
        }
        _items = split;
        _head = 0;
        _count = n;
        return true;
    }

    /// <summary>Forgets every record and gives the storage back.</summary>
    public void Clear()
    {
        _items = [];
        _head = 0;
        _count = 0;
    }

    private void Grow()
    {
        var bigger = new SentSegment[Math.Max(16, _items.Length * 2)];
        for (int i = 0; i < _count; i++)
            bigger[i] = this[i];
        _items = bigger;
        _head = 0;
    }
}
