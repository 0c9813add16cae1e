using TunStack.Tcp;
using TunStack.Tcp.Congestion;
using Xunit.Abstractions;

namespace TunStack.Tests.Simulation;

/// <summary>
/// The engine against itself over seeded lossy links: for every seed the bytes arrive exactly and both sides close.
/// Each seed draws its own link (loss, duplication, corruption, reordering, delay, rate) and configuration (SACK and
/// timestamps on or off, CUBIC or NewReno, MTU, buffers, delayed ACKs). A failing seed is printed; replay it with
/// <see cref="Replay"/>. Set TUNSTACK_SIM_SEEDS to run more.
/// </summary>
public class SimulationTests(ITestOutputHelper output)
{
    private static int SeedCount =>
        int.TryParse(Environment.GetEnvironmentVariable("TUNSTACK_SIM_SEEDS"), out int n) && n > 0 ? n : 1000;

    [Fact]
    public void Every_seed_delivers_exact_bytes_both_ways_and_closes()
    {
        var failures = new List<string>();
        long simulated = 0;
        for (int seed = 1; seed <= SeedCount; seed++)
        {
            var (sim, description) = Build(seed);
            var outcome = sim.Run();
            simulated += outcome.EndMicros;
            if (!outcome.Succeeded)
                failures.Add($"seed {seed}: {outcome}\n    {description}");
            if (failures.Count >= 10) break;
        }
        output.WriteLine($"{SeedCount} seeds, {simulated / 1e6:F0} s of simulated time");
        Assert.True(failures.Count == 0, $"{failures.Count} failing seed(s); replay with Replay(seed):\n" + string.Join("\n", failures));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(142)]
    public void Replay(int seed)
    {
        var (sim, description) = Build(seed);
        output.WriteLine(description);
        // TUNSTACK_SIM_TRACE=FILE writes both stacks' --trace lines to FILE, for a seed that fails.
        if (Environment.GetEnvironmentVariable("TUNSTACK_SIM_TRACE") is { Length: > 0 } traceFile)
        {
            var writer = new StreamWriter(traceFile) { AutoFlush = true };
            sim.Client.Tracer = new TunStack.Diagnostics.TextTracer(writer);
            sim.Server.Tracer = new TunStack.Diagnostics.TextTracer(writer);
        }
        var outcome = sim.Run();
        output.WriteLine(outcome.ToString());
        output.WriteLine($"client: {Counters(sim.Client)}");
        output.WriteLine($"server: {Counters(sim.Server)}");
        Assert.True(outcome.Succeeded, outcome.ToString());
    }

    private static string Counters(NetStack s)
    {
        var c = s.Counters;
        return $"sent {c.SegmentsSent} retrans {c.Retransmissions} recoveries {c.FastRecoveries} timeouts {c.RetransmissionTimeouts} " +
            $"probes {c.LossProbes} ooo {c.OutOfOrderSegments} dup {c.DuplicateSegments} dsack {c.DsacksReceived} drops {c.TotalDropped}";
    }

    /// <summary>The simulation a seed stands for, and a description of it for the failure message.</summary>
    internal static (TransferSimulation, string) Build(int seed)
    {
        var r = new Random(seed);
        bool sack = r.NextDouble() < 0.8;
        bool timestamps = r.NextDouble() < 0.8;
        var cc = r.NextDouble() < 0.7 ? CongestionControlAlgorithm.Cubic : CongestionControlAlgorithm.NewReno;
        int mtu = new[] { 576, 1280, 1500, 1500, 9000 }[r.Next(5)];
        int buffer = new[] { 16 * 1024, 64 * 1024, 256 * 1024 }[r.Next(3)];
        long delayedAck = r.NextDouble() < 0.8 ? 40_000 : 0;
        LinkProfile Profile() => new()
        {
            Loss = r.NextDouble() < 0.2 ? 0 : r.NextDouble() * 0.08,
            Duplicate = r.NextDouble() * 0.02,
            Corrupt = r.NextDouble() * 0.01,
            Reorder = r.NextDouble() * 0.05,
            ReorderDelayMicros = 100 + r.Next(5_000),
            DelayMicros = 50 + r.Next(20_000),
            BytesPerSecond = r.NextDouble() < 0.3 ? 0 : 1_000_000 + r.NextInt64(200_000_000),
            MaxQueueMicros = 5_000 + r.Next(100_000),
        };
        var up = Profile();
        var down = Profile();
        int upload = r.Next(0, 300_000);
        int download = r.Next(0, 300_000);
        var clientOptions = TransferSimulation.Options(TransferSimulation.ClientAddress, seed, sack, timestamps, cc, mtu, buffer, delayedAck);
        // The server's own choices differ a little, so mismatched configurations meet too.
        var serverOptions = TransferSimulation.Options(TransferSimulation.ServerAddress, seed + 1_000_000,
            r.NextDouble() < 0.9 ? sack : !sack, r.NextDouble() < 0.9 ? timestamps : !timestamps, cc,
            new[] { 576, 1500, 9000 }[r.Next(3)], new[] { 16 * 1024, 64 * 1024, 256 * 1024 }[r.Next(3)], delayedAck);
        string description =
            $"client sack {clientOptions.Sack} ts {clientOptions.Timestamps} mtu {clientOptions.Mtu} buf {clientOptions.ReceiveBufferSize}; " +
            $"server sack {serverOptions.Sack} ts {serverOptions.Timestamps} mtu {serverOptions.Mtu} buf {serverOptions.ReceiveBufferSize}; " +
            $"{cc}, delack {delayedAck}, up {upload} B [{up}], down {download} B [{down}]";
        return (new TransferSimulation(clientOptions, serverOptions, up, down, upload, download, seed), description);
    }
}
