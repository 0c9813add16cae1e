using System.IO.Pipelines;

namespace TunStack.Host.Services;

/// <summary>
/// Closes the connections of one service that wait too long for their peer: a read that gets no byte, or a flush that
/// cannot get rid of its data (the peer stopped reading and its window stays closed), for longer than
/// <see cref="Timeout"/>. One timer per service sweeps every watched connection, so a connection costs a small object
/// and no timer of its own (10,000 idle connections are 10,000 list entries, not 10,000 timers).
/// </summary>
/// <remarks>
/// A connection is closed between <see cref="Timeout"/> and <see cref="Timeout"/> plus one sweep period
/// (<see cref="SweepPeriod"/>: a quarter of the timeout, at most one second) after it started waiting. The service
/// learns of it as a cancelled read or flush (<see cref="PipeReader.CancelPendingRead"/>,
/// <see cref="PipeWriter.CancelPendingFlush"/>) with <see cref="IdleWatch.Expired"/> set, and decides how to end:
/// a FIN after an idle read, a reset after a stalled flush.
/// </remarks>
public sealed class IdleMonitor : IDisposable
{
    /// <summary>
    /// The services' default: two minutes, long enough for a client that keeps thousands of connections open between
    /// requests, short enough that abandoned ones do not pile up.
    /// </summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The error a service completes its output with when the peer stopped taking data: on a stack connection that
    /// is a reset (the data queued for the peer would otherwise keep the connection alive for ever).
    /// </summary>
    public static Exception StalledError() => new TimeoutException("The peer took no data for the idle timeout.");

    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private IdleWatch? _first;  // doubly linked list of watched connections, newest first
    private int _count;
    private ITimer? _timer;
    private bool _disposed;

    /// <param name="timeout">How long a read or flush may wait; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> never expires.</param>
    /// <param name="time">The clock; the system clock by default.</param>
    public IdleMonitor(TimeSpan timeout, TimeProvider? time = null)
    {
        if (timeout <= TimeSpan.Zero && timeout != System.Threading.Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The idle timeout must be positive (or infinite).");
        Timeout = timeout;
        _time = time ?? TimeProvider.System;
        SweepPeriod = timeout == System.Threading.Timeout.InfiniteTimeSpan
            ? System.Threading.Timeout.InfiniteTimeSpan
            : TimeSpan.FromTicks(Math.Clamp(timeout.Ticks / 4, TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerSecond));
    }

    /// <summary>How long a read or flush may wait for the peer.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>How often the watched connections are checked.</summary>
    public TimeSpan SweepPeriod { get; }

    /// <summary>Connections watched now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
                return _count;
        }
    }

    /// <summary>Watched connections waiting for their peer right now (a diagnostic; it walks the list).</summary>
    public int WaitingCount => CountWatches(static watch => watch.IsWaiting);

    /// <summary>Of those, the ones waiting for the peer to take data (in a flush), not to send some.</summary>
    public int FlushWaitingCount => CountWatches(static watch => watch.IsFlushing);

    private int CountWatches(Func<IdleWatch, bool> predicate)
    {
        int n = 0;
        lock (_gate)
        {
            for (var watch = _first; watch is not null; watch = watch.Next)
            {
                if (predicate(watch)) n++;
            }
        }
        return n;
    }

    /// <summary>Connections closed for waiting too long, since the monitor was made.</summary>
    public long Expirations => Interlocked.Read(ref _expirations);

    private long _expirations;

    /// <summary>
    /// Starts watching the connection whose application ends are <paramref name="input"/> and <paramref name="output"/>.
    /// Dispose the watch when the connection is over.
    /// </summary>
    /// <param name="stop">
    /// Cancels the connection's pending read and flush when it is cancelled (<see cref="IdleWatch.Stopped"/>). The
    /// service then reads and flushes without a token: one registration per connection instead of one per read.
    /// </param>
    public IdleWatch Watch(PipeReader input, PipeWriter output, CancellationToken stop = default) =>
        Add(new IdleWatch(this, input, output, null), stop);

    /// <summary>
    /// Starts watching a connection that the service reads and writes as a <see cref="Stream"/>: it passes
    /// <see cref="IdleWatch.Token"/> to every read and write, and an expired wait throws
    /// <see cref="OperationCanceledException"/> with <see cref="IdleWatch.Expired"/> set. Dispose the watch when the
    /// connection is over.
    /// </summary>
    public IdleWatch WatchStream(CancellationToken stop = default) =>
        Add(new IdleWatch(this, null, null, new CancellationTokenSource()), stop);

    private IdleWatch Add(IdleWatch watch, CancellationToken stop)
    {
        if (stop.CanBeCanceled)
            watch.StopRegistration = stop.UnsafeRegister(static state => ((IdleWatch)state!).Stop(), watch);
        if (Timeout == System.Threading.Timeout.InfiniteTimeSpan)
            return watch;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            watch.Next = _first;
            if (_first is not null) _first.Previous = watch;
            _first = watch;
            watch.Listed = true;
            if (_count++ == 0)
            {
                // The sweep runs only while there is something to watch: an idle host wakes up for nothing.
                _timer ??= _time.CreateTimer(static state => ((IdleMonitor)state!).Sweep(), this,
                    System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
                _timer.Change(SweepPeriod, SweepPeriod);
            }
        }
        return watch;
    }

    internal long Now => _time.GetTimestamp();

    internal void Unwatch(IdleWatch watch)
    {
        lock (_gate)
        {
            if (!watch.Listed) return;
            watch.Listed = false;
            if (watch.Previous is not null) watch.Previous.Next = watch.Next;
            else _first = watch.Next;
            if (watch.Next is not null) watch.Next.Previous = watch.Previous;
            watch.Next = watch.Previous = null;
            if (--_count == 0 && !_disposed)
                _timer?.Change(System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The timer: every connection that has been waiting for at least <see cref="Timeout"/> expires.</summary>
    private void Sweep()
    {
        long now = _time.GetTimestamp();
        long limit = (long)(Timeout.TotalSeconds * _time.TimestampFrequency);
        List<IdleWatch>? due = null;
        lock (_gate)
        {
            for (var watch = _first; watch is not null; watch = watch.Next)
            {
                if (watch.IsWaiting && now - watch.WaitingSince >= limit)
                    (due ??= []).Add(watch);
            }
        }
        if (due is null) return;
        foreach (var watch in due)
        {
            if (watch.Expire(now, limit))
                Interlocked.Increment(ref _expirations);
        }
    }

    /// <summary>Stops the sweep. Connections still watched are no longer closed for idleness.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _timer?.Dispose();
        }
    }
}

/// <summary>
/// One connection under an <see cref="IdleMonitor"/>: the service brackets each wait for the peer with
/// <see cref="BeginWait"/> and <see cref="EndWait"/>; a wait longer than the monitor's timeout cancels the pending read
/// or flush and sets <see cref="Expired"/>. The service's stop token does the same and sets <see cref="Stopped"/>; either
/// way the service sees a cancelled read or flush and ends the connection.
/// </summary>
public sealed class IdleWatch : IDisposable
{
    private readonly IdleMonitor _monitor;
    private readonly PipeReader? _input;
    private readonly PipeWriter? _output;
    private readonly CancellationTokenSource? _cancel; // a stream's reads and writes, instead of the pipes
    private const int Reading = 1, Flushing = 2;

    private long _waitingSince;
    private int _waiting;   // 0, Reading or Flushing
    private int _expired;   // 0, or what was waiting when it last expired
    private volatile bool _stopped;

    internal IdleWatch(IdleMonitor monitor, PipeReader? input, PipeWriter? output, CancellationTokenSource? cancel)
    {
        _monitor = monitor;
        _input = input;
        _output = output;
        _cancel = cancel;
    }

    /// <summary>
    /// For a watch made by <see cref="IdleMonitor.WatchStream"/>: the token to pass to every read and write; it is
    /// cancelled when a wait expires or the service is told to stop. Otherwise <see cref="CancellationToken.None"/>.
    /// </summary>
    public CancellationToken Token => _cancel?.Token ?? CancellationToken.None;

    // The monitor's list, under its lock.
    internal IdleWatch? Next;
    internal IdleWatch? Previous;
    internal bool Listed;
    internal CancellationTokenRegistration StopRegistration;

    /// <summary>True once the service was told to stop: the pending read and flush were cancelled.</summary>
    public bool Stopped => _stopped;

    internal bool IsWaiting => Volatile.Read(ref _waiting) != 0;
    internal bool IsFlushing => Volatile.Read(ref _waiting) == Flushing;
    internal long WaitingSince => Volatile.Read(ref _waitingSince);

    /// <summary>True once the connection waited too long; the read or flush that was waiting was cancelled.</summary>
    public bool Expired => Volatile.Read(ref _expired) != 0;

    /// <summary>True when the wait that expired was a flush: the peer is not taking our data.</summary>
    public bool ExpiredInFlush => Volatile.Read(ref _expired) == Flushing;

    /// <summary>The service is about to wait for the peer: a read (<paramref name="flush"/> false) or a flush.</summary>
    public void BeginWait(bool flush = false)
    {
        Volatile.Write(ref _waitingSince, _monitor.Now);
        Volatile.Write(ref _waiting, flush ? Flushing : Reading);
    }

    /// <summary>The wait is over (the peer sent something, took our data, or the pipe completed).</summary>
    public void EndWait() => Volatile.Write(ref _waiting, 0);

    /// <summary>Cancels the wait if it is still the one that began more than <paramref name="limit"/> ticks before <paramref name="now"/>.</summary>
    internal bool Expire(long now, long limit)
    {
        int waiting = Volatile.Read(ref _waiting);
        if (waiting == 0 || now - WaitingSince < limit)
            return false;
        // Taking the wait over (rather than latching a flag) means a wait the service has ended is never cancelled, and
        // a later wait can expire again. If the peer's bytes came just now and the service has not ended its wait yet,
        // its next read returns cancelled instead: the connection was idle for the whole timeout up to that moment.
        if (Interlocked.CompareExchange(ref _waiting, 0, waiting) != waiting)
            return false;
        Volatile.Write(ref _expired, waiting);
        if (_cancel is not null)
            Cancel();
        else if (waiting == Flushing)
            _output!.CancelPendingFlush();
        else
            _input!.CancelPendingRead();
        return true;
    }

    internal void Stop()
    {
        _stopped = true;
        if (_cancel is not null)
        {
            Cancel();
            return;
        }
        _input!.CancelPendingRead();
        _output!.CancelPendingFlush();
    }

    private void Cancel()
    {
        try
        {
            _cancel!.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The connection is over already.
        }
    }

    /// <summary>Stops watching.</summary>
    public void Dispose()
    {
        StopRegistration.Dispose();
        _monitor.Unwatch(this);
        _cancel?.Dispose();
    }
}
