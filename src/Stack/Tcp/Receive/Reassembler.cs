namespace TunStack.Tcp.Receive;

/// <summary>What <see cref="Reassembler.Add"/> did with a range of out-of-order bytes.</summary>
internal enum ReassemblyResult
{
    /// <summary>At least one byte was new; the range is held.</summary>
    Added,
    /// <summary>Every byte was already held: a duplicate (reported with D-SACK, RFC 2883).</summary>
    Duplicate,
    /// <summary>The range would need a new entry and all are in use: not held (the peer sends it again).</summary>
    NoRoom,
}

/// <summary>
/// Book-keeping of the out-of-order data a connection holds beyond RCV.NXT (RFC 9293 §3.10.7.4, seventh check: "segments
/// with higher beginning sequence numbers ... may be held for later processing"). The bytes themselves sit in the
/// receive ring at their place; this class only remembers which sequence ranges are there: a sorted, fixed-size array
/// of disjoint, non-adjacent ranges, so nothing is allocated per segment and memory is bounded. When the gap before
/// the first range fills, <see cref="TakeContiguous"/> hands that whole range over at once.
/// </summary>
internal sealed class Reassembler
{
    /// <summary>Distinct holes we keep track of at most; Linux's out-of-order queue is bounded by memory instead.</summary>
    public const int MaxRanges = 32;

    private readonly SeqRange[] _ranges = new SeqRange[MaxRanges];
    private int _count;

    public int Count => _count;
    public bool IsEmpty => _count == 0;

    /// <summary>The held ranges in sequence order.</summary>
    public ReadOnlySpan<SeqRange> Ranges => _ranges.AsSpan(0, _count);

    /// <summary>The end of the highest range held (only meaningful when not empty).</summary>
    public SeqNumber HighestEnd => _ranges[_count - 1].End;

    /// <summary>Total bytes held out of order.</summary>
    public int BytesHeld
    {
        get
        {
            int sum = 0;
            for (int i = 0; i < _count; i++) sum += _ranges[i].Length;
            return sum;
        }
    }

    /// <summary>
    /// Records that [<paramref name="start"/>, <paramref name="end"/>) is held. Ranges that overlap or touch are merged;
    /// <paramref name="merged"/> is the held range that now contains the new bytes (the SACK block to report first).
    /// </summary>
    public ReassemblyResult Add(SeqNumber start, SeqNumber end, out SeqRange merged)
    {
        merged = default;
        if (end <= start)
            return ReassemblyResult.Duplicate;

        // First range that ends at or after our start (it may touch or overlap us).
        int first = 0;
        while (first < _count && _ranges[first].End < start) first++;
        // One past the last range that starts at or before our end.
        int last = first;
        while (last < _count && _ranges[last].Start <= end) last++;

        if (last - first == 1 && _ranges[first].Start <= start && end <= _ranges[first].End)
        {
            merged = _ranges[first];
            return ReassemblyResult.Duplicate;
        }
        if (last == first)
        {
            // Touches nothing: a new range at index 'first'.
            if (_count == MaxRanges)
                return ReassemblyResult.NoRoom;
            Array.Copy(_ranges, first, _ranges, first + 1, _count - first);
            _ranges[first] = new SeqRange(start, end);
            _count++;
            merged = _ranges[first];
            return ReassemblyResult.Added;
        }
        // Merge ranges first..last-1 with ours into one at 'first'.
        var union = new SeqRange(SeqNumber.Min(start, _ranges[first].Start), SeqNumber.Max(end, _ranges[last - 1].End));
        _ranges[first] = union;
        int removed = last - first - 1;
        if (removed > 0)
        {
            Array.Copy(_ranges, last, _ranges, first + 1, _count - last);
            _count -= removed;
        }
        merged = union;
        return ReassemblyResult.Added;
    }

    /// <summary>
    /// RCV.NXT has reached <paramref name="rcvNxt"/>: if the first held range starts there (or before), it is no longer
    /// out of order. Returns the new RCV.NXT (the end of that range), or <paramref name="rcvNxt"/> when the gap remains.
    /// Ranges wholly below RCV.NXT are forgotten.
    /// </summary>
    public SeqNumber TakeContiguous(SeqNumber rcvNxt)
    {
        var next = rcvNxt;
        int taken = 0;
        while (taken < _count && _ranges[taken].Start <= next)
        {
            next = SeqNumber.Max(next, _ranges[taken].End);
            taken++;
        }
        if (taken > 0)
        {
            Array.Copy(_ranges, taken, _ranges, 0, _count - taken);
            _count -= taken;
        }
        return next;
    }

    /// <summary>The held range containing <paramref name="seq"/>, if any.</summary>
    public bool TryFind(SeqNumber seq, out SeqRange range)
    {
        for (int i = 0; i < _count; i++)
        {
            if (seq.InRange(_ranges[i].Start, _ranges[i].End))
            {
                range = _ranges[i];
                return true;
            }
        }
        range = default;
        return false;
    }

    public void Clear() => _count = 0;
}
