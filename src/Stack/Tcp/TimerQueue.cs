namespace TunStack.Tcp;

/// <summary>
/// The connections' timers in one min-heap keyed by deadline. A connection has at most one live entry, at the
/// earliest deadline it has asked for; moving a deadline later (the retransmission timer restarts on every ACK)
/// costs nothing here: when the early entry comes due, the connection is simply queued again at its real deadline.
/// Superseded entries are recognised and skipped when they surface.
/// </summary>
internal sealed class TimerQueue
{
    private readonly PriorityQueue<Tcb, long> _heap = new();

    /// <summary>The earliest deadline in the queue (possibly one that turns out to be stale), or Never.</summary>
    public long NextDeadline => _heap.TryPeek(out _, out long deadline) ? deadline : Tcb.Never;

    public int Count => _heap.Count;

    /// <summary>Makes sure <paramref name="tcb"/> is looked at no later than <paramref name="deadline"/>.</summary>
    public void Schedule(Tcb tcb, long deadline)
    {
        if (deadline >= tcb.QueuedDeadline)
            return;
        tcb.QueuedDeadline = deadline;
        _heap.Enqueue(tcb, deadline);
    }

    /// <summary>Fires every connection whose timer is due at <paramref name="now"/>.</summary>
    public void RunDue(long now, TcpLayer layer)
    {
        while (_heap.TryPeek(out var tcb, out long deadline) && deadline <= now)
        {
            _heap.Dequeue();
            if (deadline != tcb.QueuedDeadline)
                continue; // superseded by an earlier entry for the same connection
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
