using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// The client end of TCP against the real kernel: <c>tunstack fetch</c> opens connections itself (SYN-SENT) to kernel
/// servers in the namespace, and the server's own active close ends on time when the kernel peer never closes.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class FetchTests(ITestOutputHelper output)
{
    private const string KernelServer = StackHost.PeerAddress;
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    [IntegrationFact]
    public async Task Fetch_downloads_100_MiB_from_a_kernel_http_server_exactly()
    {
        const int length = 100 * 1024 * 1024;
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);
        using var www = new TemporaryDirectory();
        var content = new byte[length];
        new Random(6).NextBytes(content);
        await File.WriteAllBytesAsync(Path.Combine(www.Path, "file.bin"), content);
        await using var server = await StartKernelHttpServerAsync(ns, www.Path);

        string saved = Path.Combine(www.Path, "saved.bin");
        var r = await ns.RunAsync(CommandTimeout, Fetch("-o", saved, $"http://{KernelServer}:8000/file.bin"));
        Assert.True(r.Succeeded, $"fetch failed: {r}");
        var got = await File.ReadAllBytesAsync(saved);
        Assert.Equal(length, got.Length);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), Convert.ToHexStringLower(SHA256.HashData(got)));
        output.WriteLine($"100 MiB in {r.Elapsed.TotalSeconds:F2} s");
    }

    [IntegrationFact]
    public async Task Fetch_with_trace_shows_the_syn_sent_side_of_the_handshake_and_the_close()
    {
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);
        using var www = new TemporaryDirectory();
        await File.WriteAllTextAsync(Path.Combine(www.Path, "hello.txt"), "hello from the kernel\n");
        await using var server = await StartKernelHttpServerAsync(ns, www.Path);

        var r = await ns.RunAsync(CommandTimeout, Fetch("--trace", $"http://{KernelServer}:8000/hello.txt"));
        Assert.True(r.Succeeded, $"fetch failed: {r}");
        Assert.Equal("hello from the kernel\n", r.Stdout); // the body alone on standard output; the trace on standard error
        string trace = r.Stderr;
        Assert.Matches(@"connect\(\)  CLOSED -> SYN-SENT", trace);
        Assert.Matches(@"out 198\.18\.0\.2:\d+ > 198\.18\.0\.1:8000 S +seq 0 win \d+ len 0 \[mss 1460,sackOK,TS val \d+ ecr 0,wscale \d+\]  SYN-SENT", trace);
        Assert.Matches(@"in  198\.18\.0\.1:8000 > 198\.18\.0\.2:\d+ S\. +seq 0 ack 1 .*SYN-SENT -> ESTABLISHED", trace);
        Assert.Matches(@"out 198\.18\.0\.2:\d+ > 198\.18\.0\.1:8000 \. +seq 1 ack 1 ", trace);
        // The kernel's server closes first (Connection: close); we answer with our FIN from CLOSE-WAIT.
        Assert.Matches(@"CLOSE-WAIT -> LAST-ACK", trace);
        Assert.Matches(@"LAST-ACK -> CLOSED", trace);
    }

    [IntegrationFact]
    public async Task Fetch_with_explain_narrates_the_syn_sent_side_and_the_close()
    {
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);
        using var www = new TemporaryDirectory();
        await File.WriteAllTextAsync(Path.Combine(www.Path, "hello.txt"), "hello from the kernel\n");
        await using var server = await StartKernelHttpServerAsync(ns, www.Path);

        var r = await ns.RunAsync(CommandTimeout, Fetch("--trace", "--explain", $"http://{KernelServer}:8000/hello.txt"));
        Assert.True(r.Succeeded, $"fetch failed: {r}");
        Assert.Equal("hello from the kernel\n", r.Stdout); // the narration goes to standard error with the trace
        string[] lines = r.Stderr.Split('\n');
        int previous = -1;
        foreach (string step in new[]
        {
            "opening: our application connects to 198.18.0.1:8000", "opening, step 1 of 3: our SYN", "opening, step 2 of 3",
            "opening, step 3 of 3", "closing, step 1 of 4", "closing, step 4 of 4",
        })
        {
            int at = Array.FindIndex(lines, l => l.Contains(step, StringComparison.Ordinal));
            Assert.True(at > previous, $"'{step}' missing or out of order:\n{r.Stderr}");
            previous = at;
        }
        // The server closes first (Connection: close): ours is the passive close, without TIME-WAIT.
        Assert.Contains("SYN-SENT -> ESTABLISHED", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("LAST-ACK -> CLOSED", r.Stderr, StringComparison.Ordinal);
    }

    [IntegrationFact]
    public async Task Fetch_with_explain_says_why_a_closed_port_refuses()
    {
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);

        var r = await ns.RunAsync(CommandTimeout, Fetch("--explain", $"http://{KernelServer}:8001/"));
        Assert.Equal(3, r.ExitCode);
        Assert.Matches(@"## \[198\.18\.0\.2:\d+ <> 198\.18\.0\.1:8001\] opening refused: 198\.18\.0\.1:8001 answers our SYN with RST\+ACK", r.Stderr);
        Assert.Contains("SYN-SENT -> CLOSED", r.Stderr, StringComparison.Ordinal);
    }

    [IntegrationFact]
    public async Task Fetch_from_a_closed_port_fails_at_once_with_a_clear_message()
    {
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);

        var r = await ns.RunAsync(CommandTimeout, Fetch($"http://{KernelServer}:8001/"));
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("connection refused by 198.18.0.1:8001", r.Stderr, StringComparison.Ordinal);
        Assert.True(r.Elapsed < TimeSpan.FromSeconds(5), $"refusal took {r.Elapsed.TotalSeconds:F1} s");
        Assert.Empty(r.StdoutBytes);
    }

    [IntegrationFact]
    public async Task Fetch_explains_that_a_running_server_holds_the_device()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, Fetch($"http://{KernelServer}:8000/"));
        host.Check(r.ExitCode == 1, $"expected exit status 1: {r}");
        host.Check(r.Stderr.Contains("held by another process", StringComparison.Ordinal), $"no reason given: {r}");
    }

    [IntegrationFact]
    public async Task A_connection_we_closed_is_dropped_from_fin_wait_2_when_the_kernel_peer_never_closes()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach, "--fin-timeout", "1000");

        // The client asks for "Connection: close", reads our whole answer and our FIN — and never closes its side.
        await using var client = ns.Start("python3", "-u", "-c", SilentClient, StackHost.StackAddress);
        string? port = await client.WaitForStdoutLineAsync(line => line.StartsWith("port ", StringComparison.Ordinal), TimeSpan.FromSeconds(20));
        host.Check(port is not null, $"the client did not report its port: {client.Log}");
        string remote = $"{StackHost.PeerAddress}:{port!["port ".Length..]}";

        // We close first: FIN-WAIT-1, FIN-WAIT-2 once the kernel ACKs our FIN; after the service's 2 s linger the
        // application lets go, and 1 s later (--fin-timeout) the connection must be gone.
        var clock = Stopwatch.StartNew();
        var seen = new List<string>();
        while (true)
        {
            var state = await StateOfAsync(ns, remote);
            if (seen.Count == 0 || seen[^1] != state) seen.Add(state);
            if (state == "gone" && seen.Contains("FinWait2"))
                break;
            host.Check(clock.Elapsed < TimeSpan.FromSeconds(15), $"connection from {remote} still there after 15 s; states seen: {string.Join(" -> ", seen)}");
            await Task.Delay(100);
        }
        output.WriteLine($"states seen: {string.Join(" -> ", seen)} in {clock.Elapsed.TotalSeconds:F1} s");
        host.Check(clock.Elapsed > TimeSpan.FromSeconds(2.5), $"dropped after only {clock.Elapsed.TotalSeconds:F1} s (linger 2 s + timeout 1 s)");
    }

    private static async Task<string> StateOfAsync(NetNamespace ns, string remote)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "5", $"http://{StackHost.StackAddress}/stats");
        if (!r.Succeeded) return "(no answer)";
        using var doc = JsonDocument.Parse(r.Stdout);
        foreach (var c in doc.RootElement.GetProperty("connections").EnumerateArray())
        {
            if (c.GetProperty("remote").GetString() == remote)
                return c.GetProperty("state").GetString() ?? "";
        }
        return "gone";
    }

    private static string[] Fetch(params string[] args) => [StackHost.DotnetPath, StackHost.HostDll, "fetch", .. args];

    private static async Task AttachedDeviceAsync(NetNamespace ns)
    {
        await ns.IpAsync("tuntap", "add", "dev", StackHost.Device, "mode", "tun");
        await ns.IpAsync("addr", "add", StackHost.PeerAddress + "/24", "dev", StackHost.Device);
        await ns.IpAsync("link", "set", StackHost.Device, "up");
    }

    /// <summary>python3 -m http.server on 198.18.0.1:8000 in the namespace, returned once it accepts connections.</summary>
    private async Task<BackgroundProcess> StartKernelHttpServerAsync(NetNamespace ns, string directory)
    {
        var server = ns.Start("python3", "-m", "http.server", "-b", KernelServer, "8000", "--directory", directory);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var probe = await ns.RunAsync(TimeSpan.FromSeconds(5), "curl", "-s", "-o", "/dev/null", "-m", "2", $"http://{KernelServer}:8000/");
            if (probe.Succeeded) return server;
            await Task.Delay(100);
        }
        await server.DisposeAsync();
        throw new InvalidOperationException($"the kernel HTTP server did not start: {server.Log}");
    }

    // argv: host. Connects to port 80, prints its local port, asks for a page with Connection: close, reads to EOF
    // (our FIN) and then keeps the socket open without closing it.
    private const string SilentClient = """
        import socket, sys, time
        s = socket.create_connection((sys.argv[1], 80), timeout=30)
        print("port", s.getsockname()[1], flush=True)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        time.sleep(60)
        """;

    private sealed class TemporaryDirectory : IDisposable
    {
        public TemporaryDirectory() => Directory.CreateDirectory(Path);
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tunstack-" + Guid.NewGuid().ToString("N")[..8]);
        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }
    }
}
