namespace TunStack.Tcp;

/// <summary>
/// The connections' timers in one min-heap keyed by deadline. A connection has at most one live entry, at the
/// earliest deadline it has asked for; moving a deadline later (the retransmission timer restarts on every ACK)
/// costs nothing here: when the early entry comes due, the connection is simply queued again at its real deadline.
/// Superseded entries are recognised and skipped when they surface.
/// </summary>
/// <remarks>
/// The heap holds a small <see cref="Entry"/> per connection rather than the TCB, so that a connection that ends with
/// a deadline still queued does not stay alive until that deadline: <see cref="Cancel"/> detaches the TCB (and with it
/// the application's pipes, its SACK scoreboard and the rest), and only the entry, a few bytes, waits to surface.
/// </remarks>
internal sealed class TimerQueue
{
    /// <summary>A connection's place in the heap; <see cref="Tcb"/> is null once the connection has ended.</summary>
    internal sealed class Entry(Tcb tcb)
    {
        public Tcb? Tcb = tcb;
    }

    private readonly PriorityQueue<Entry, long> _heap = new();

    /// <summary>The earliest deadline in the queue (possibly one that turns out to be stale), or Never.</summary>
    public long NextDeadline => _heap.TryPeek(out _, out long deadline) ? deadline : Tcb.Never;

    public int Count => _heap.Count;

    /// <summary>Makes sure <paramref name="tcb"/> is looked at no later than <paramref name="deadline"/>.</summary>
    public void Schedule(Tcb tcb, long deadline)
    {
        if (deadline >= tcb.QueuedDeadline)
            return;
        tcb.QueuedDeadline = deadline;
        _heap.Enqueue(tcb.TimerEntry ??= new Entry(tcb), deadline);
    }

    /// <summary>The connection has ended (closed, or handed to the TIME-WAIT table): its entries no longer hold it.</summary>
    public static void Cancel(Tcb tcb)
    {
        if (tcb.TimerEntry is { } entry)
            entry.Tcb = null;
        tcb.TimerEntry = null;
        tcb.QueuedDeadline = Tcb.Never;
    }

    /// <summary>Fires every connection whose timer is due at <paramref name="now"/>.</summary>
    public void RunDue(long now, TcpLayer layer)
    {
        while (_heap.TryPeek(out var entry, out long deadline) && deadline <= now)
        {
            _heap.Dequeue();
            if (entry.Tcb is not { } tcb || deadline != tcb.QueuedDeadline)
                continue; // the connection has ended, or this entry was superseded by an earlier one
            tcb.QueuedDeadline = Tcb.Never;
            if (tcb.State is TcpState.Closed or TcpState.TimeWait)
                continue; // gone, or handed over to the TIME-WAIT table
            if (tcb.NextDeadline <= now)
                layer.FireTimer(tcb);
            if (tcb.State is not (TcpState.Closed or TcpState.TimeWait) && tcb.NextDeadline != Tcb.Never)
                Schedule(tcb, tcb.NextDeadline);
        }
    }
}
