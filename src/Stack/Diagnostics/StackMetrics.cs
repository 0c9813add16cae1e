using System.Diagnostics.Metrics;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

/// <summary>
/// The stack's metrics through <see cref="System.Diagnostics.Metrics"/>, under the meter <see cref="MeterName"/>, so that
/// <c>dotnet-counters monitor --counters TunStack -p PID</c> (or any OpenTelemetry exporter) shows them live.
/// </summary>
/// <remarks>
/// <para>Almost every instrument is observable: it reads <see cref="StackCounters"/> (or the connection table) only when
/// a listener collects, so the engine does no extra work for metrics. The exception is the RTT histogram, which the
/// engine feeds through <see cref="IStackObserver.OnRttSample"/> as it takes each sample (one null check when metrics are
/// off; without a listener, <see cref="Histogram{T}.Record(T)"/> returns at once).</para>
/// <para>Collection runs on the listener's thread, not on the engine's. Counters are single 64-bit fields that only
/// the engine writes, so a read is never torn, but it may be a moment behind. The connection census walks the
/// connection table while the engine may be changing it: a walk that trips over a concurrent change is retried, and
/// after a few tries the previous census is reported. Values are therefore up to date within one collection interval,
/// not an atomic snapshot — as with <c>nstat</c> on Linux.</para>
/// </remarks>
internal sealed class StackMetrics : IStackObserver, IDisposable
{
    /// <summary>The meter's name: <c>dotnet-counters monitor --counters TunStack</c>.</summary>
    public const string MeterName = "TunStack";

    private static readonly KeyValuePair<string, object?> In = new("direction", "in");
    private static readonly KeyValuePair<string, object?> Out = new("direction", "out");

    /// <summary>The states a connection can be counted in (CLOSED and LISTEN hold no connection).</summary>
    private static readonly TcpState[] CensusStates =
    [
        TcpState.SynSent, TcpState.SynReceived, TcpState.Established, TcpState.FinWait1, TcpState.FinWait2,
        TcpState.CloseWait, TcpState.Closing, TcpState.LastAck, TcpState.TimeWait,
    ];

    private static readonly KeyValuePair<string, object?>[] StateTags =
        Enum.GetValues<TcpState>().Select(s => new KeyValuePair<string, object?>("state", s.ToRfcName())).ToArray();

    private static readonly KeyValuePair<string, object?>[] DropTags =
        Enum.GetValues<DropReason>().Select(r => new KeyValuePair<string, object?>("reason", r.ToString())).ToArray();

    private readonly NetStack[] _stacks; // the engine shards (one for most stacks), counted together
    private readonly Meter _meter;
    private readonly Histogram<double> _rtt;
    private readonly Lock _censusLock = new();
    private readonly long[] _census = new long[StateTags.Length];

    /// <summary>
    /// Creates the instruments for <paramref name="stack"/> and makes this its <see cref="NetStack.Observer"/>. Create
    /// it before the engine runs (or on the engine's thread); dispose it to remove the instruments.
    /// </summary>
    public StackMetrics(NetStack stack) : this([stack])
    {
    }

    /// <summary>
    /// Creates the instruments for the shards of one multi-queue stack, each value the sum over <paramref name="shards"/>,
    /// and makes this the <see cref="NetStack.Observer"/> of each (RTT samples come from every shard's thread).
    /// </summary>
    public StackMetrics(IReadOnlyList<NetStack> shards)
    {
        _stacks = shards.ToArray();
        _meter = new Meter(MeterName);
        var c = new CounterSum(_stacks);

        _meter.CreateObservableCounter("tunstack.ip.packets",
            () => Pair(c.PacketsReceived, c.PacketsSent), "{packet}", "IP packets received and sent");
        _meter.CreateObservableCounter("tunstack.ip.bytes",
            () => Pair(c.BytesReceived, c.BytesSent), "By", "Bytes of IP packets received and sent, headers included");
        _meter.CreateObservableCounter("tunstack.tcp.segments",
            () => Pair(c.SegmentsReceived, c.SegmentsSent), "{segment}", "TCP segments received (valid) and sent");
        _meter.CreateObservableCounter("tunstack.tcp.retransmissions",
            () => c.Retransmissions, "{segment}", "Segments sent again (fast retransmit, RTO, loss probe, SYN)");
        _meter.CreateObservableCounter("tunstack.tcp.retransmission_timeouts",
            () => c.RetransmissionTimeouts, "{timeout}", "Retransmission timer expiries (RFC 6298 §5.4)");
        _meter.CreateObservableCounter("tunstack.tcp.fast_recoveries",
            () => c.FastRecoveries, "{recovery}", "Fast recoveries entered (RFC 6675, RFC 8985)");
        _meter.CreateObservableCounter("tunstack.drops",
            Drops, "{packet}", "Packets dropped, by reason (DropReason)");
        _meter.CreateObservableGauge("tunstack.tcp.connections",
            Census, "{connection}", "Connections by state (RFC 9293 names), TIME-WAIT included");
        _meter.CreateObservableCounter("tunstack.tcp.opens",
            () => new Measurement<long>[]
            {
                new(c.PassiveOpens, new KeyValuePair<string, object?>("kind", "passive")),
                new(c.ActiveOpens, new KeyValuePair<string, object?>("kind", "active")),
            }, "{connection}", "Connections opened: a SYN accepted by a listener (passive) or connect() (active)");
        _meter.CreateObservableCounter("tunstack.tcp.handshakes",
            () => c.ConnectionsEstablished, "{handshake}", "Three-way handshakes completed (ESTABLISHED reached)");
        _meter.CreateObservableCounter("tunstack.tcp.closes",
            () => new Measurement<long>[]
            {
                new(c.ConnectionsClosed, new KeyValuePair<string, object?>("reason", "normal")),
                new(c.ConnectionsAborted, new KeyValuePair<string, object?>("reason", "reset")),
                new(c.ConnectionsTimedOut, new KeyValuePair<string, object?>("reason", "timeout")),
            }, "{connection}", "Connections ended: with FINs (normal; TIME-WAIT counts here), by RST, or timed out");
        _meter.CreateObservableCounter("tunstack.tcp.resets",
            () => Pair(c.ResetsReceived, c.ResetsSent), "{segment}", "RST segments received (acceptable) and sent");
        _meter.CreateObservableCounter("tunstack.tcp.syn_cookies",
            () => new Measurement<long>[]
            {
                new(c.SynCookiesSent, new KeyValuePair<string, object?>("event", "sent")),
                new(c.SynCookiesAccepted, new KeyValuePair<string, object?>("event", "accepted")),
            }, "{segment}", "SYN cookies sent (half-open queue full) and returned valid (RFC 4987)");
        _rtt = _meter.CreateHistogram("tunstack.tcp.rtt", "ms", "Round-trip time samples (RFC 6298)", tags: null,
            advice: new InstrumentAdvice<double>
            {
                HistogramBucketBoundaries = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
            });

        foreach (var stack in _stacks)
            stack.Observer = this;
    }

    /// <summary>The meter (one per instance, all named <see cref="MeterName"/>), e.g. to tell two stacks apart in a listener.</summary>
    public Meter Meter => _meter;

    public void OnRttSample(Tcb connection, long rttMicros) => _rtt.Record(rttMicros / 1000.0);

    public void Dispose()
    {
        foreach (var stack in _stacks)
            if (stack.Observer == this)
                stack.Observer = null;
        _meter.Dispose();
    }

    private static Measurement<long>[] Pair(long received, long sent) => [new(received, In), new(sent, Out)];

    private IEnumerable<Measurement<long>> Drops()
    {
        for (int i = 1; i < DropTags.Length; i++)
        {
            long n = 0;
            foreach (var stack in _stacks)
                n += stack.Counters.Dropped((DropReason)i);
            if (n != 0)
                yield return new Measurement<long>(n, DropTags[i]);
        }
    }

    private Measurement<long>[] Census()
    {
        lock (_censusLock)
        {
            TakeCensus();
            var result = new Measurement<long>[CensusStates.Length];
            for (int i = 0; i < CensusStates.Length; i++)
                result[i] = new Measurement<long>(_census[(int)CensusStates[i]], StateTags[(int)CensusStates[i]]);
            return result;
        }
    }

    /// <summary>
    /// Counts the connections by state into <see cref="_census"/>. The table belongs to the engine's thread: a walk that
    /// meets a concurrent change (the enumerator throws, or sees a half-written entry) is retried; after
    /// <see cref="CensusAttempts"/> tries the previous census stays.
    /// </summary>
    private void TakeCensus()
    {
        Span<long> counts = stackalloc long[_census.Length];
        for (int attempt = 0; attempt < CensusAttempts; attempt++)
        {
            counts.Clear();
            try
            {
                foreach (var stack in _stacks)
                {
                    foreach (var tcb in stack.Connections)
                    {
                        if (tcb is not null)
                            counts[(int)tcb.State]++;
                    }
                }
            }
            catch (Exception e) when (e is InvalidOperationException or IndexOutOfRangeException or NullReferenceException)
            {
                continue;
            }
            // A TCB that entered TIME-WAIT has left the table for a small record; the records are counted apart.
            long timeWait = 0;
            foreach (var stack in _stacks)
                timeWait += stack.TimeWaitCount;
            counts[(int)TcpState.TimeWait] = timeWait;
            counts.CopyTo(_census);
            return;
        }
    }

    private const int CensusAttempts = 4;

    /// <summary>The counters the instruments read, each the sum over the shards at the moment it is read.</summary>
    private sealed class CounterSum(NetStack[] stacks)
    {
        private long Sum(Func<StackCounters, long> counter)
        {
            long total = 0;
            foreach (var stack in stacks)
                total += counter(stack.Counters);
            return total;
        }

        public long PacketsReceived => Sum(c => c.PacketsReceived);
        public long PacketsSent => Sum(c => c.PacketsSent);
        public long BytesReceived => Sum(c => c.BytesReceived);
        public long BytesSent => Sum(c => c.BytesSent);
        public long SegmentsReceived => Sum(c => c.SegmentsReceived);
        public long SegmentsSent => Sum(c => c.SegmentsSent);
        public long Retransmissions => Sum(c => c.Retransmissions);
        public long RetransmissionTimeouts => Sum(c => c.RetransmissionTimeouts);
        public long FastRecoveries => Sum(c => c.FastRecoveries);
        public long PassiveOpens => Sum(c => c.PassiveOpens);
        public long ActiveOpens => Sum(c => c.ActiveOpens);
        public long ConnectionsEstablished => Sum(c => c.ConnectionsEstablished);
        public long ConnectionsClosed => Sum(c => c.ConnectionsClosed);
        public long ConnectionsAborted => Sum(c => c.ConnectionsAborted);
        public long ConnectionsTimedOut => Sum(c => c.ConnectionsTimedOut);
        public long ResetsReceived => Sum(c => c.ResetsReceived);
        public long ResetsSent => Sum(c => c.ResetsSent);
        public long SynCookiesSent => Sum(c => c.SynCookiesSent);
        public long SynCookiesAccepted => Sum(c => c.SynCookiesAccepted);
    }
}
