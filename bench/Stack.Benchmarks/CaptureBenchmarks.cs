using BenchmarkDotNet.Attributes;
using TunStack.Diagnostics;
using TunStack.Tests.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// What <c>--pcap</c> costs the event loop per packet: the copy into a pooled buffer and the hand-off to the
/// background writer (here writing to Stream.Null). The loop's side must not allocate; the Allocated column also
/// counts the writer's thread. If the writer falls behind, the queue fills and some calls measure the drop path.
/// </summary>
[MemoryDiagnoser]
public class CaptureBenchmarks
{
    private PcapWriter _writer = null!;
    private byte[] _packet = [];
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        _writer = new PcapWriter(Stream.Null);
        _packet = LinuxCaptures.FullSizeData;
    }

    [GlobalCleanup]
    public void Cleanup() => _writer.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Description = "TryCapture of a 1500-byte packet")]
    public bool Capture1500() => _writer.TryCapture(_packet, ++_now);
}
