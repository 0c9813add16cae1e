using System.Diagnostics.Metrics;

namespace TunStack.Tests.Diagnostics;

/// <summary>
/// Reads the instruments of one <see cref="Meter"/> the way dotnet-counters does, through a <see cref="MeterListener"/>:
/// observable instruments when <see cref="Collect"/> is called, histograms as the values are recorded.
/// </summary>
public sealed class MeterReader : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Lock _lock = new();
    private readonly List<(string Name, Dictionary<string, string?> Tags, long Value)> _observed = new();
    private readonly Dictionary<string, List<double>> _recorded = new();

    public MeterReader(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var map = new Dictionary<string, string?>();
            foreach (var tag in tags) map[tag.Key] = tag.Value?.ToString();
            lock (_lock) _observed.Add((instrument.Name, map, value));
        });
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            lock (_lock)
            {
                if (!_recorded.TryGetValue(instrument.Name, out var list))
                    _recorded[instrument.Name] = list = new List<double>();
                list.Add(value);
            }
        });
        _listener.Start();
    }

    /// <summary>Reads every observable instrument now (replacing what the previous collection read).</summary>
    public void Collect()
    {
        lock (_lock) _observed.Clear();
        _listener.RecordObservableInstruments();
    }

    /// <summary>The sum of <paramref name="name"/>'s measurements at the last <see cref="Collect"/>, over the tag given.</summary>
    public long Value(string name, string? tag = null, string? tagValue = null)
    {
        lock (_lock)
        {
            long sum = 0;
            foreach (var m in _observed)
            {
                if (m.Name != name) continue;
                if (tag is not null && (!m.Tags.TryGetValue(tag, out var v) || v != tagValue)) continue;
                sum += m.Value;
            }
            return sum;
        }
    }

    /// <summary>Every value <paramref name="name"/> recorded since this reader started.</summary>
    public double[] Recorded(string name)
    {
        lock (_lock) return _recorded.TryGetValue(name, out var list) ? list.ToArray() : [];
    }

    public void Dispose() => _listener.Dispose();
}
