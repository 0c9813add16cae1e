using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// <c>--pcap FILE</c> against the real kernel: the capture of a curl is read back with tcpdump, which must see the
/// whole conversation with every checksum correct.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed partial class PcapHostTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);
    private const int Sigterm = 15;

    public enum Family { Ipv4, Ipv6 }

    /// <summary>A capture file named after the namespace, removed by Dispose.</summary>
    private sealed class CaptureFile(NetNamespace ns) : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{ns.Name}.pcap");
        public void Dispose() => File.Delete(Path);
    }

    private async Task<ProcessResult> TcpdumpAsync(NetNamespace ns, string file)
    {
        // Read in the namespace only to keep every command of the test there; reading a file needs no network.
        var r = await ns.RunAsync(CommandTimeout, "tcpdump", "-r", file, "-nn", "-vv");
        output.WriteLine(r.Stdout);
        return r;
    }

    [IntegrationTheory]
    [InlineData(Family.Ipv4, false)]
    [InlineData(Family.Ipv6, true)]
    public async Task A_curl_is_captured_whole_and_tcpdump_finds_every_checksum_correct(Family family, bool stopWithSigterm)
    {
        Assert.True(IntegrationEnvironment.FindOnPath("tcpdump") is not null,
            "tcpdump is not on PATH: ./run-linux.sh test installs it as root (apt-get install tcpdump)");
        await using var ns = new NetNamespace(output);
        using var capture = new CaptureFile(ns);
        // Offloads off: every packet a plain segment with its full checksum (with checksum offload the capture holds
        // the partial checksums the device completes; see the test below).
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach, "--pcap", capture.Path, "--offload", "off");

        bool v6 = family == Family.Ipv6;
        string url = v6 ? $"http://[{StackHost.StackAddress6}]/bytes/5000" : $"http://{StackHost.StackAddress}/bytes/5000";
        var curl = await ns.RunAsync(CommandTimeout, "curl", v6 ? "-6" : "-4", "-g", "-sS", "-f", "-m", "10", "-o", "/dev/null", url);
        host.Check(curl.Succeeded, $"curl failed: {curl}");

        // curl closes first; our FIN follows once the service has closed too. Wait for the kernel's socket to reach
        // TIME-WAIT (it has our FIN) before stopping the host, or the signal may beat the close.
        string server = v6 ? $"[{StackHost.StackAddress6}]:80" : $"{StackHost.StackAddress}:80";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var ss = await ns.RunAsync(CommandTimeout, "ss", "-tnH", "state", "time-wait");
            if (ss.Stdout.Contains(server, StringComparison.Ordinal)) break;
            host.Check(DateTime.UtcNow < deadline, $"the kernel's socket did not reach TIME-WAIT within 10 s: {ss.Stdout}");
            await Task.Delay(20);
        }

        // The file must be complete once the host has exited on the signal.
        if (stopWithSigterm)
        {
            host.Process.Note("sending SIGTERM");
            host.Check(TestNative.Kill(host.Process.Pid, Sigterm) == 0, $"kill -TERM failed: {TestNative.LastError()}");
            host.Check(await host.Process.WaitForExitAsync(StackHost.StopGrace), "tunstack did not exit on SIGTERM");
        }
        else
        {
            host.Check(await host.StopAsync(), "tunstack did not exit on SIGINT");
        }
        host.Check(host.Log.Contains("packets written to " + capture.Path, StringComparison.Ordinal), "no capture summary on exit");

        var dump = await TcpdumpAsync(ns, capture.Path);
        host.Check(dump.Succeeded, $"tcpdump -r failed: {dump}");
        host.Check(dump.Stderr.Contains("link-type RAW", StringComparison.Ordinal), $"tcpdump does not see raw IP: {dump.Stderr}");

        // The segments of curl's connection, in order, as tcpdump shows them.
        string stack = v6 ? StackHost.StackAddress6 : StackHost.StackAddress;
        var segments = TcpLine().Matches(dump.Stdout).Where(m => m.Groups["a"].Value == stack + ".80" || m.Groups["b"].Value == stack + ".80").ToList();
        host.Check(segments.Count >= 7, $"only {segments.Count} segments of the connection in the capture:\n{dump.Stdout}");
        string Flags(int i) => segments[i].Groups["flags"].Value;
        bool FromStack(int i) => segments[i].Groups["a"].Value == stack + ".80";
        host.Check(Flags(0) == "S" && !FromStack(0), $"first segment is not the kernel's SYN: {segments[0].Value}");
        host.Check(Flags(1) == "S." && FromStack(1), $"second segment is not our SYN-ACK: {segments[1].Value}");
        host.Check(Flags(2) == "." && !FromStack(2), $"third segment is not the kernel's ACK: {segments[2].Value}");
        host.Check(segments.Any(m => m.Groups["flags"].Value.Contains('F') && m.Groups["a"].Value == stack + ".80"), "no FIN from the stack");
        host.Check(segments.Any(m => m.Groups["flags"].Value.Contains('F') && m.Groups["b"].Value == stack + ".80"), "no FIN from the kernel");
        host.Check(segments.All(m => m.Value.Contains("(correct)", StringComparison.Ordinal)),
            $"a segment without a verified checksum:\n{string.Join('\n', segments.Where(m => !m.Value.Contains("(correct)")).Select(m => m.Value))}");
        // A point-to-point TUN link has no neighbour discovery: the kernel sends straight to our address.
        host.Check(!dump.Stdout.Contains("neighbor solicitation", StringComparison.Ordinal), $"the kernel solicited a neighbour:\n{dump.Stdout}");
        // A verified checksum also means the whole segment was in the capture. ("[|http]" is only tcpdump's HTTP
        // printer stopping at the end of a segment in the middle of a line, so it is not looked for.)
        foreach (string bad in new[] { "incorrect", "bad cksum", "truncated" })
            host.Check(!dump.Stdout.Contains(bad, StringComparison.Ordinal), $"tcpdump reports '{bad}':\n{dump.Stdout}");
    }

    [IntegrationFact]
    public async Task The_size_limit_stops_the_capture_with_a_message_and_a_readable_file()
    {
        Assert.True(IntegrationEnvironment.FindOnPath("tcpdump") is not null,
            "tcpdump is not on PATH: ./run-linux.sh test installs it as root (apt-get install tcpdump)");
        await using var ns = new NetNamespace(output);
        using var capture = new CaptureFile(ns);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach, "--pcap", capture.Path, "--pcap-limit", "1",
            "--offload", "off");

        var curl = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-f", "-m", "20", "-o", "/dev/null", $"http://{StackHost.StackAddress}/bytes/3000000");
        host.Check(curl.Succeeded, $"the download must not suffer from the capture stopping: {curl}");
        string? stopped = await host.Process.WaitForStdoutLineAsync(line => line.Contains("size limit", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        host.Check(stopped is not null, "no message about the size limit");
        host.Check(await host.StopAsync(), "tunstack did not exit on SIGINT");

        long size = new FileInfo(capture.Path).Length;
        host.Check(size is > 900_000 and <= 1_000_000, $"capture file is {size} bytes, expected just under 1 MB");
        var dump = await ns.RunAsync(CommandTimeout, "tcpdump", "-r", capture.Path, "-nn", "-q");
        host.Check(dump.Succeeded && !dump.Stderr.Contains("truncated", StringComparison.Ordinal), $"tcpdump cannot read the capped file: {dump.Stderr}");
        host.Check(dump.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length > 500, "too few packets in the capped file");
    }

    [IntegrationFact]
    public async Task With_offloads_super_packets_are_captured_whole_and_the_handshake_is_there()
    {
        Assert.True(IntegrationEnvironment.FindOnPath("tcpdump") is not null,
            "tcpdump is not on PATH: ./run-linux.sh test installs it as root (apt-get install tcpdump)");
        await using var ns = new NetNamespace(output);
        using var capture = new CaptureFile(ns);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach, "--pcap", capture.Path);
        host.Check(host.Log.Contains("offload csum,tso4", StringComparison.Ordinal), "offloads are not on");

        var curl = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-f", "-m", "10", "-o", "/dev/null", $"http://{StackHost.StackAddress}/bytes/1000000");
        host.Check(curl.Succeeded, $"curl failed: {curl}");
        host.Check(await host.StopAsync(), "tunstack did not exit on SIGINT");

        var dump = await ns.RunAsync(CommandTimeout, "tcpdump", "-r", capture.Path, "-nn");
        host.Check(dump.Succeeded && !dump.Stderr.Contains("truncated", StringComparison.Ordinal), $"tcpdump cannot read the capture: {dump}");
        var lines = dump.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string stack = StackHost.StackAddress + ".80";
        host.Check(lines.Any(l => l.Contains($"> {stack}: Flags [S]", StringComparison.Ordinal)), $"no SYN:\n{dump.Stdout}");
        host.Check(lines.Any(l => l.Contains($"{stack} > ", StringComparison.Ordinal) && l.Contains("Flags [S.]", StringComparison.Ordinal)), $"no SYN-ACK:\n{dump.Stdout}");
        // A super-packet goes into the capture as the stack wrote it: one record far larger than the MTU.
        var lengths = lines.Where(l => l.Contains($"{stack} > ", StringComparison.Ordinal))
            .Select(l => Regex.Match(l, @"length (\d+)")).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        host.Check(lengths.Count > 0 && lengths.Max() > 1500, $"no super-packet in the capture (largest payload {lengths.DefaultIfEmpty().Max()})");
    }

    /// <summary>
    /// The TCP part of one packet in tcpdump -vv output: "198.18.0.1.45000 > 198.18.0.2.80: Flags [S], cksum 0x1234
    /// (correct), ..." (for IPv4 it starts on the line after the IP header's, for IPv6 on the same line).
    /// </summary>
    [GeneratedRegex(@"(?<a>[0-9a-f:.]+\.\d+) > (?<b>[0-9a-f:.]+\.\d+): Flags \[(?<flags>[^\]]*)\][^\n]*")]
    private static partial Regex TcpLine();
}
