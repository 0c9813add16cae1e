using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// A SYN flood from the kernel's side of tun0: 20,000 SYNs at 5,000 a second from spoofed sources inside
/// 198.18.0.0/15, sent through a raw socket (<c>syn_flood.py</c>). The stack keeps 256 of them half-open and answers
/// the rest with SYN cookies (RFC 4987 §3.6), holding nothing for them; curl is served within a second throughout,
/// through a cookie of its own; the host's resident memory grows by at most 32 MB.
/// </summary>
/// <remarks>
/// The spoofed sources need no route for the SYNs to reach the stack: a raw IPv4 socket with IP_HDRINCL sends whatever
/// source it is given, routed by destination into tun0. The stack's SYN-ACKs to them come back out of tun0 to a kernel
/// that owns none of those addresses and does not forward, which counts each in IpInAddrErrors and drops it, as
/// spoofed hosts on the Internet would ignore them. The test reads that counter too: the kernel's own count of the
/// stack's answers.
/// </remarks>
[Collection(IntegrationCollection.Name)]
[Trait("Category", "Load")]
public sealed class SynFloodTests(ITestOutputHelper output)
{
    private const int Syns = 20_000;
    private const int Rate = 5_000;
    private const long MaxGrowthBytes = 32L * 1024 * 1024;
    private static readonly TimeSpan CurlLimit = TimeSpan.FromSeconds(1);

    [IntegrationFact]
    public async Task Twenty_thousand_spoofed_syns_get_cookies_while_curl_is_served_within_a_second()
    {
        string tunstack = await AotHost.GetAsync(output);
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Executable = tunstack });

        var warm = await CurlAsync(ns, host);
        host.Check(warm.Ok, $"curl before the flood: {warm}");
        using var before = await HostStats.GetAsync(ns, host);
        long kernelAddrErrorsBefore = await KernelIpCounterAsync(ns, host, "InAddrErrors");
        var memoryBefore = HostMemory.Of(host);

        var clock = Stopwatch.StartNew();
        var flood = ns.Start("python3", Script("syn_flood.py"), StackHost.StackAddress, "80",
            Syns.ToString(CultureInfo.InvariantCulture), Rate.ToString(CultureInfo.InvariantCulture));
        var during = new List<CurlResult>();
        while (!flood.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            during.Add(await CurlAsync(ns, host));
            await Task.Delay(100); // pacing between requests, not waiting for anything
        }
        string? sent = await flood.WaitForStdoutLineAsync(line => line.StartsWith("sent ", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        host.Check(sent is not null && flood.ExitCode == 0, $"the flood did not finish: exit {flood.ExitCode}\n{flood.Log}");
        string[] f = sent!.Split(' ');
        double seconds = double.Parse(f[2], CultureInfo.InvariantCulture);
        double rate = double.Parse(f[3], CultureInfo.InvariantCulture);
        var after = new List<CurlResult>();
        for (int i = 0; i < 5; i++)
            after.Add(await CurlAsync(ns, host));

        using var stats = await HostStats.GetAsync(ns, host);
        long kernelAddrErrors = await KernelIpCounterAsync(ns, host, "InAddrErrors") - kernelAddrErrorsBefore;
        var memory = HostMemory.Of(host);
        long segments = stats.Counter("segmentsReceived") - before.Counter("segmentsReceived");
        long cookies = stats.Counter("synCookiesSent") - before.Counter("synCookiesSent");
        long halfOpen = stats.Counter("passiveOpens") - before.Counter("passiveOpens");
        output.WriteLine($"flood: {Syns} SYNs in {seconds:F2} s ({rate:F0}/s); the stack received {segments} segments, " +
            $"sent {cookies} cookies, opened {halfOpen} connections ({stats.State("SynReceived")} still half-open); " +
            $"the kernel dropped {kernelAddrErrors} packets to addresses not its own");
        output.WriteLine($"curl during the flood: {during.Count} requests, slowest {during.Max(r => r.Seconds) * 1000:F1} ms; " +
            $"after: slowest {after.Max(r => r.Seconds) * 1000:F1} ms");
        output.WriteLine($"memory: before {memoryBefore}; after {memory}; growth {(memory.PeakResidentBytes - memoryBefore.ResidentBytes) / 1048576.0:F1} MB");

        // The flood was what it claims: 20,000 SYNs at about 5,000/s.
        host.Check(rate is > 4_000 and < 6_000 && seconds >= 3.2, $"the flood ran at {rate:F0}/s for {seconds:F2} s");
        // The stack saw every one and answered every one: a cookie, or a connection of the 256 in SYN-RECEIVED.
        host.Check(segments >= Syns && segments < Syns + 1_000, $"the stack received {segments} segments, expected {Syns} SYNs and curl's few");
        host.Check(cookies + halfOpen >= Syns, $"{cookies} cookies + {halfOpen} connections < {Syns} SYNs");
        host.Check(cookies >= Syns - 300, $"only {cookies} cookies: the half-open queue (256) should have been full at once");
        host.Check(stats.State("SynReceived") <= 256, $"{stats.State("SynReceived")} half-open connections, the limit is 256");
        // The half-open queue stays full (its SYN-ACKs are retransmitted for a minute), so curl's connections come in
        // through cookies too: most of them — the first few may race the flood's start on a loaded machine, before its
        // first 256 SYNs have filled the queue.
        long accepted = stats.Counter("synCookiesAccepted") - before.Counter("synCookiesAccepted");
        host.Check(accepted >= during.Count / 2, $"{accepted} cookies came back for {during.Count} curl requests during the flood");
        host.Check(kernelAddrErrors >= Syns - 1_000, $"the kernel saw only {kernelAddrErrors} SYN-ACKs to spoofed sources");
        // curl was served, quickly, all along.
        host.Check(during.Count >= 10, $"only {during.Count} curl requests during the flood");
        foreach (var r in during.Concat(after))
            host.Check(r.Ok && r.Seconds < CurlLimit.TotalSeconds, $"curl took {r.Seconds * 1000:F0} ms or failed: {r}");
        stats.CheckNoInternalError(host);
        host.Check(memory.PeakResidentBytes - memoryBefore.ResidentBytes <= MaxGrowthBytes,
            $"resident memory grew from {memoryBefore} to {memory}");
    }

    internal static string Script(string name) => Path.Combine(AppContext.BaseDirectory, "Integration", "Load", name);

    internal readonly record struct CurlResult(bool Ok, double Seconds, string Detail)
    {
        public override string ToString() => Detail;
    }

    /// <summary>curl / with a 1 s limit; Ok when it answered 200 with the page.</summary>
    internal static async Task<CurlResult> CurlAsync(NetNamespace ns, StackHost host)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sS", "-o", "/dev/null", "-m", "1",
            "-w", "%{http_code} %{time_total}", $"http://{StackHost.StackAddress}/");
        string[] f = r.Stdout.Split(' ');
        bool ok = r.Succeeded && f.Length == 2 && f[0] == "200";
        double seconds = f.Length == 2 && double.TryParse(f[1], CultureInfo.InvariantCulture, out double s) ? s : double.NaN;
        return new CurlResult(ok, ok ? seconds : double.PositiveInfinity, r.ToString());
    }

    /// <summary>A counter of the namespace's IP layer from /proc/net/snmp (what <c>nstat</c> shows as IpNAME).</summary>
    internal static async Task<long> KernelIpCounterAsync(NetNamespace ns, StackHost host, string name)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(10), "cat", "/proc/net/snmp");
        host.Check(r.Succeeded, $"reading /proc/net/snmp failed: {r}");
        string[][] ip = r.Stdout.Split('\n').Where(l => l.StartsWith("Ip: ", StringComparison.Ordinal))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        host.Check(ip.Length == 2, $"unexpected /proc/net/snmp: {r.Stdout}");
        int column = Array.IndexOf(ip[0], name);
        host.Check(column > 0, $"no Ip {name} in /proc/net/snmp");
        return long.Parse(ip[1][column], CultureInfo.InvariantCulture);
    }
}
