namespace TunStack.Tcp;

/// <summary>
/// What a connection in TIME-WAIT still needs (RFC 9293 §3.10.7.4, RFC 6191, RFC 7323): enough to acknowledge a
/// retransmitted FIN, to recognise old duplicates and resets, and to decide whether a new SYN may reopen the 4-tuple.
/// About a hundred bytes, where a whole TCB with its buffers and the application's pipes would be kilobytes.
/// </summary>
internal struct TimeWaitRecord
{
    public SeqNumber Iss;
    public SeqNumber Irs;
    /// <summary>SND.NXT (= SND.MAX): our FIN's sequence number plus one.</summary>
    public SeqNumber SndNxt;
    /// <summary>RCV.NXT: the peer's FIN's sequence number plus one.</summary>
    public SeqNumber RcvNxt;
    public bool Timestamps;
    public uint TsRecent;
    public uint TsOffset;
    /// <summary>The window field our ACKs carry.</summary>
    public ushort Window;
    /// <summary>RCV.WND in bytes: the window field scaled, what the acceptability test of §3.10.7.4 uses.</summary>
    public int WindowBytes;
    public long Deadline;
}

/// <summary>
/// The connections in TIME-WAIT, by 4-tuple, with their 2·MSL deadlines. Every deadline is "now + 2·MSL" when it is
/// set, so a FIFO queue keeps them in order; a restarted deadline leaves a stale entry behind that is skipped when it
/// surfaces.
/// </summary>
internal sealed class TimeWaitTable
{
    private readonly Dictionary<FourTuple, TimeWaitRecord> _records = new();
    private readonly Queue<(long Deadline, FourTuple Tuple)> _expiries = new();

    public int Count => _records.Count;

    /// <summary>The earliest deadline queued (possibly a stale one), or <see cref="Tcb.Never"/>.</summary>
    public long NextDeadline => _expiries.TryPeek(out var next) ? next.Deadline : Tcb.Never;

    public bool Contains(in FourTuple tuple) => _records.ContainsKey(tuple);

    public bool TryGet(in FourTuple tuple, out TimeWaitRecord record) => _records.TryGetValue(tuple, out record);

    public void Add(in FourTuple tuple, in TimeWaitRecord record)
    {
        _records[tuple] = record;
        _expiries.Enqueue((record.Deadline, tuple));
    }

    /// <summary>Restarts the 2·MSL timeout (a retransmitted FIN arrived).</summary>
    public void Restart(in FourTuple tuple, long deadline)
    {
        ref var record = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrNullRef(_records, tuple);
        if (System.Runtime.CompilerServices.Unsafe.IsNullRef(ref record)) return;
        record.Deadline = deadline;
        _expiries.Enqueue((deadline, tuple));
    }

    public bool Remove(in FourTuple tuple) => _records.Remove(tuple);

    /// <summary>Deletes every record whose deadline has passed; calls <paramref name="expired"/> for each.</summary>
    public void Expire(long now, Action<FourTuple, TimeWaitRecord> expired)
    {
        while (_expiries.TryPeek(out var next) && next.Deadline <= now)
        {
            _expiries.Dequeue();
            if (_records.TryGetValue(next.Tuple, out var record) && record.Deadline <= now)
            {
                _records.Remove(next.Tuple);
                expired(next.Tuple, record);
            }
        }
    }

    public IEnumerable<KeyValuePair<FourTuple, TimeWaitRecord>> Records => _records;
}
