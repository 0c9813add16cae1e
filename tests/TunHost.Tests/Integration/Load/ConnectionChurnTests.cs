using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// 100,000 requests with ApacheBench, a new connection each (<c>ab -n 100000 -c 50</c>, HTTP/1.0 without keep-alive):
/// we close each connection first, so each ends in TIME-WAIT here, a small record that <c>--msl 200</c> lets go after
/// 400 ms. No request fails, the host's peak resident memory stays at most 64 MB, the connection table is empty once
/// TIME-WAIT is over, and resident memory comes back to within 16 MB of where it was after the warm-up.
/// </summary>
[Collection(IntegrationCollection.Name)]
[Trait("Category", "Load")]
public sealed partial class ConnectionChurnTests(ITestOutputHelper output)
{
    private const int Requests = 100_000;
    private const long PeakLimitBytes = 64L * 1024 * 1024;
    private const long ReturnSlackBytes = 16L * 1024 * 1024;

    [IntegrationFact]
    public async Task Ab_makes_a_hundred_thousand_connections_without_a_failure_in_bounded_memory()
    {
        if (IntegrationEnvironment.FindOnPath("ab") is null)
            throw new InvalidOperationException("ab is not installed: apt-get install apache2-utils (./run-linux.sh test installs it as root)");
        string tunstack = await AotHost.GetAsync(output);
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Executable = tunstack });
        var started = HostMemory.Of(host);

        // Warm-up: the code paths, pools and tables a run uses exist before the baseline is taken.
        var warmUp = await AbAsync(ns, host, 2_000);
        host.Check(warmUp.Failed == 0 && warmUp.Complete == 2_000, $"warm-up: {warmUp}");
        await WaitForEmptyTableAsync(ns, host);
        var warm = await HostMemory.SettledAsync(host, TimeSpan.FromSeconds(10));

        var run = await AbAsync(ns, host, Requests);
        var peak = HostMemory.Of(host);
        output.WriteLine($"ab -n {Requests} -c 50: {run.Complete} complete, {run.Failed} failed, {run.PerSecond:F0} requests/s, " +
            $"{run.Elapsed.TotalSeconds:F1} s");

        var emptied = await WaitForEmptyTableAsync(ns, host);
        using var stats = await HostStats.GetAsync(ns, host);
        var settled = await ReturnedAsync(host, warm.ResidentBytes + ReturnSlackBytes);
        output.WriteLine($"memory: at start {started}; after the warm-up {warm}; right after the run {peak}; " +
            $"{emptied.TotalSeconds:F1} s later the table was empty; then {settled}");

        host.Check(run.Complete == Requests && run.Failed == 0 && run.Non2xx == 0, $"ab: {run}");
        host.Check(peak.PeakResidentBytes <= PeakLimitBytes, $"peak resident memory {peak.PeakMegabytes:F1} MB > 64 MB");
        host.Check(settled.ResidentBytes <= warm.ResidentBytes + ReturnSlackBytes,
            $"resident memory {settled.ResidentMegabytes:F1} MB did not come back within 16 MB of {warm.ResidentMegabytes:F1} MB");
        host.Check(stats.Counter("passiveOpens") >= Requests + 2_000, $"only {stats.Counter("passiveOpens")} connections opened");
        foreach (string limit in new[] { "connectionLimitReached", "memoryLimitReached", "timeWaitLimitReached", "synCookiesSent" })
            host.Check(stats.Counter(limit) == 0, $"{limit} = {stats.Counter(limit)}: 50 connections at a time are within every limit");
        stats.CheckNoInternalError(host);
    }

    /// <summary>Polls /stats until only the query itself is open and TIME-WAIT is empty; returns how long it took.</summary>
    internal static async Task<TimeSpan> WaitForEmptyTableAsync(NetNamespace ns, StackHost host, TimeSpan? deadline = null)
    {
        var limit = deadline ?? TimeSpan.FromSeconds(15);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var stats = await HostStats.GetAsync(ns, host);
            int open = stats.RootElement.GetProperty("connectionCount").GetInt32();
            int timeWait = stats.RootElement.GetProperty("timeWaitCount").GetInt32();
            if (open <= 1 && timeWait == 0)
                return clock.Elapsed;
            host.Check(clock.Elapsed < limit,
                $"after {limit.TotalSeconds:F0} s still {open} connections and {timeWait} in TIME-WAIT: {stats.RootElement.GetProperty("connectionStates")}");
            await Task.Delay(200);
        }
    }

    /// <summary>Polls resident memory until it is at most <paramref name="target"/> or settled above it.</summary>
    private static async Task<HostMemory> ReturnedAsync(StackHost host, long target)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var memory = HostMemory.Of(host);
            if (memory.ResidentBytes <= target || clock.Elapsed > TimeSpan.FromSeconds(15))
                return memory;
            await Task.Delay(250);
        }
    }

    internal sealed record AbResult(long Complete, long Failed, long Non2xx, double PerSecond, TimeSpan Elapsed, string Output)
    {
        public override string ToString() => $"{Complete} complete, {Failed} failed, {Non2xx} non-2xx:\n{Output}";
    }

    internal static async Task<AbResult> AbAsync(NetNamespace ns, StackHost host, int requests)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(240), "ab", "-q", "-n", requests.ToString(CultureInfo.InvariantCulture),
            "-c", "50", $"http://{StackHost.StackAddress}/");
        host.Check(r.Succeeded, $"ab failed: {r}");
        return ParseAb(r.Stdout, r.Elapsed);
    }

    internal static AbResult ParseAb(string text, TimeSpan elapsed)
    {
        long Number(Regex pattern) => pattern.Match(text) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
        var rate = PerSecondLine().Match(text);
        return new AbResult(Number(CompleteLine()), Number(FailedLine()), Math.Max(0, Number(Non2xxLine())),
            rate.Success ? double.Parse(rate.Groups[1].Value, CultureInfo.InvariantCulture) : 0, elapsed, text);
    }

    [GeneratedRegex(@"Complete requests:\s+(\d+)")]
    private static partial Regex CompleteLine();

    [GeneratedRegex(@"Failed requests:\s+(\d+)")]
    private static partial Regex FailedLine();

    [GeneratedRegex(@"Non-2xx responses:\s+(\d+)")]
    private static partial Regex Non2xxLine();

    [GeneratedRegex(@"Requests per second:\s+([\d.]+)")]
    private static partial Regex PerSecondLine();
}
