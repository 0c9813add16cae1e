using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// nmap against the stack (Debian's nmap, raw sockets in the test's namespace), on the open ports 7, 9, 80 and the closed
/// ports 81 and 443. The answers are RFC 9293's: a SYN to an open port gets a SYN-ACK (open) and to a closed port an
/// RST (closed, §3.10.7.1); a segment with neither SYN, ACK nor RST is dropped in LISTEN (§3.10.7.2: the stealth scans
/// see open|filtered) and reset on a closed port; an ACK is reset in both (unfiltered, the ACK scan). OS detection sends
/// stranger probes still. After every scan the host serves, and counted no internal error.
/// </summary>
[Collection(IntegrationCollection.Name)]
[Trait("Category", "Load")]
public sealed partial class PortScanTests(ITestOutputHelper output)
{
    private const string Ports = "7,9,80,81,443";
    private static readonly int[] Open = [7, 9, 80];
    private static readonly int[] Closed = [81, 443];

    [IntegrationTheory]
    [InlineData("-sS", "open", "closed")]
    [InlineData("-sN", "open|filtered", "closed")]
    [InlineData("-sF", "open|filtered", "closed")]
    [InlineData("-sX", "open|filtered", "closed")]
    [InlineData("-sA", "unfiltered", "unfiltered")]
    public async Task A_scan_sees_what_RFC_9293_says_it_should(string scan, string openState, string closedState)
    {
        RequireNmap();
        string tunstack = await AotHost.GetAsync(output);
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Executable = tunstack });

        var r = await ns.RunAsync(TimeSpan.FromSeconds(120), "nmap", "-n", "-Pn", scan, "-p", Ports, "--max-retries", "2",
            "-oG", "-", StackHost.StackAddress);
        host.Check(r.Succeeded, $"nmap {scan} failed: {r}");
        var states = ParseGrepable(r.Stdout);
        output.WriteLine($"nmap {scan}: {string.Join(", ", states.Select(p => $"{p.Key} {p.Value}"))} in {r.Elapsed.TotalSeconds:F1} s");
        foreach (int port in Open)
            host.Check(states.GetValueOrDefault(port) == openState, $"nmap {scan}: port {port} is '{states.GetValueOrDefault(port)}', expected {openState}: {r}");
        foreach (int port in Closed)
            host.Check(states.GetValueOrDefault(port) == closedState, $"nmap {scan}: port {port} is '{states.GetValueOrDefault(port)}', expected {closedState}: {r}");

        await AssertStillServingAsync(ns, host);
    }

    [IntegrationFact]
    public async Task Os_detection_probes_do_not_hurt_the_host()
    {
        RequireNmap();
        string tunstack = await AotHost.GetAsync(output);
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Executable = tunstack });

        // -O: SYNs with odd options, a null/SYN-FIN-URG-PSH/ACK probe to the open port, more to a closed port, ICMP
        // echoes with odd codes, a UDP probe (dropped: no UDP here), ECN.
        var r = await ns.RunAsync(TimeSpan.FromSeconds(180), "nmap", "-n", "-Pn", "-O", "-p", Ports, "--max-retries", "2",
            "-oG", "-", StackHost.StackAddress);
        host.Check(r.Succeeded, $"nmap -O failed: {r}");
        var states = ParseGrepable(r.Stdout);
        host.Check(Open.All(p => states.GetValueOrDefault(p) == "open") && Closed.All(p => states.GetValueOrDefault(p) == "closed"),
            $"nmap -O saw other port states: {r}");
        output.WriteLine($"nmap -O took {r.Elapsed.TotalSeconds:F1} s: {OsLine(r.Stdout)}");

        await AssertStillServingAsync(ns, host);
    }

    /// <summary>The page is served, /stats shows no internal error, and nothing of the scan is left in the table.</summary>
    private static async Task AssertStillServingAsync(NetNamespace ns, StackHost host)
    {
        var curl = await SynFloodTests.CurlAsync(ns, host);
        host.Check(curl.Ok, $"curl after the scan: {curl}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var stats = await HostStats.GetAsync(ns, host);
            stats.CheckNoInternalError(host);
            // The scanner's half-open connections are reset by its kernel, which knows nothing of them (RFC 9293
            // §3.10.7.3); what may remain is the /stats request itself.
            int count = stats.RootElement.GetProperty("connectionCount").GetInt32();
            if (count <= 1)
                return;
            host.Check(clock.Elapsed < TimeSpan.FromSeconds(30), $"{count} connections still open 30 s after the scan: {stats.RootElement}");
            await Task.Delay(250);
        }
    }

    /// <summary>Port states from nmap's grepable output: <c>Ports: 7/open/tcp//echo///, 81/closed/tcp//...</c>.</summary>
    internal static Dictionary<int, string> ParseGrepable(string grepable)
    {
        var states = new Dictionary<int, string>();
        foreach (Match m in PortEntry().Matches(grepable))
            states[int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)] = m.Groups[2].Value;
        return states;
    }

    private static string OsLine(string grepable) =>
        grepable.Split('\n').FirstOrDefault(l => l.Contains("OS:", StringComparison.Ordinal)) is { } line
            ? line[line.IndexOf("OS:", StringComparison.Ordinal)..].Trim()
            : "no OS line";

    private static void RequireNmap()
    {
        if (IntegrationEnvironment.FindOnPath("nmap") is null)
            throw new InvalidOperationException("nmap is not installed: apt-get install nmap (./run-linux.sh test installs it as root)");
    }

    [GeneratedRegex(@"(\d+)/([a-z|]+)/tcp/")]
    private static partial Regex PortEntry();
}
