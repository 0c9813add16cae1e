using System.Diagnostics;
using System.Security.Cryptography;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// The samples against the real kernel: ASP.NET Core over the stack (samples/KestrelOverTun) answers curl over HTTP/1.1
/// and h2c, and samples/ConnectOut fetches from a kernel HTTP server through the stack's active open.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class SampleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private const string Stack = StackHost.StackAddress;

    /// <summary>A sample's built program, next to the test assembly's configuration (samples/NAME/bin/CONFIG/net10.0/NAME.dll).</summary>
    public static string SampleDll(string name)
    {
        var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = testDir.Name, configuration = testDir.Parent!.Name;
        var root = testDir;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "TunStack.sln")))
            root = root.Parent;
        if (root is null)
            throw new InvalidOperationException($"TunStack.sln not found above {AppContext.BaseDirectory}");
        string dll = Path.Combine(root.FullName, "samples", name, "bin", configuration, framework, name + ".dll");
        if (!File.Exists(dll))
            throw new InvalidOperationException($"{dll} not found: build the solution first (dotnet build TunStack.sln -c {configuration})");
        return dll;
    }

    /// <summary>tun0 made beforehand with the kernel side 198.18.0.1/24 up, as a user would before starting a sample.</summary>
    public static async Task AttachedDeviceAsync(NetNamespace ns)
    {
        await ns.IpAsync("tuntap", "add", "dev", StackHost.Device, "mode", "tun");
        await ns.IpAsync("addr", "add", StackHost.PeerAddress + "/24", "dev", StackHost.Device);
        await ns.IpAsync("link", "set", StackHost.Device, "up");
    }

    private async Task<BackgroundProcess> StartKestrelSampleAsync(NetNamespace ns)
    {
        await AttachedDeviceAsync(ns);
        var sample = ns.Start(StackHost.DotnetPath, SampleDll("KestrelOverTun"), "--tun", StackHost.Device, "--address", Stack);
        string? ready = await sample.WaitForStdoutLineAsync(line => line.StartsWith("KestrelOverTun ready", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30));
        if (ready is null)
        {
            await sample.DisposeAsync();
            throw new InvalidOperationException($"KestrelOverTun did not get ready: {sample.Log}");
        }
        return sample;
    }

    [IntegrationFact]
    public async Task Kestrel_over_the_stack_answers_http11_and_h2c_with_the_tcp_details()
    {
        await using var ns = new NetNamespace(output);
        await using var sample = await StartKestrelSampleAsync(ns);

        var h1 = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "20", "-w", "%{http_version}", $"http://{Stack}/");
        Assert.True(h1.Succeeded, $"{h1}\n{sample.Log}");
        Assert.Contains("over TunStack (HTTP/1.1)", h1.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"You are 198\.18\.0\.1:\d+, we are 198\.18\.0\.2:80; state Established", h1.Stdout);
        Assert.Matches(@"Your ISN \d+, ours \d+; MSS yours 1460, ours 1460; SACK True, timestamps True", h1.Stdout);
        Assert.EndsWith("1.1", h1.Stdout, StringComparison.Ordinal);

        var h2 = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "20", "--http2-prior-knowledge", "-w", "%{http_version}",
            $"http://{Stack}:8080/");
        Assert.True(h2.Succeeded, $"{h2}\n{sample.Log}");
        Assert.Contains("over TunStack (HTTP/2)", h2.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"we are 198\.18\.0\.2:8080", h2.Stdout);
        Assert.EndsWith("2", h2.Stdout, StringComparison.Ordinal);

        // The same upload hashed over both protocols.
        var upload = RandomNumberGenerator.GetBytes(3 << 20);
        string expected = Convert.ToHexStringLower(SHA256.HashData(upload));
        foreach (var (name, args) in new[] { ("http/1.1", new[] { $"http://{Stack}/sha256" }), ("h2c", new[] { "--http2-prior-knowledge", $"http://{Stack}:8080/sha256" }) })
        {
            var post = await ns.RunAsync(["curl", "-sS", "-m", "30", "--data-binary", "@-", "-H", "Content-Type: application/octet-stream", .. args],
                CommandTimeout, upload);
            Assert.True(post.Succeeded, $"{name}: {post}");
            Assert.Equal(expected, post.Stdout.Trim());
        }
    }

    [IntegrationFact]
    public async Task Kestrel_over_the_stack_streams_100_MiB_with_the_right_sha256_over_http11_and_h2c()
    {
        const long length = 100L * 1024 * 1024;
        await using var ns = new NetNamespace(output);
        await using var sample = await StartKestrelSampleAsync(ns);
        string expected = ExpectedBytes.Sha256(length);

        foreach (string url in new[] { $"http://{Stack}/bytes/{length}", $"--http2-prior-knowledge http://{Stack}:8080/bytes/{length}" })
        {
            var clock = Stopwatch.StartNew();
            var r = await ns.RunAsync(CommandTimeout, "sh", "-c", $"curl -sS -m 50 {url} | sha256sum");
            Assert.True(r.Succeeded, $"{url}: {r}\n{sample.Log}");
            Assert.Equal(expected, r.Stdout.Split(' ')[0]);
            output.WriteLine($"{url}: 100 MiB in {clock.Elapsed.TotalSeconds:F2} s");
        }
    }

    [IntegrationFact]
    public async Task ConnectOut_fetches_from_a_kernel_server_through_the_stack()
    {
        await using var ns = new NetNamespace(output);
        await AttachedDeviceAsync(ns);
        string www = Directory.CreateTempSubdirectory("tunstack-www-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(www, "hello.txt"), "hello from the kernel\n");
            await using var server = await KernelServers.HttpServerAsync(ns, StackHost.PeerAddress, 8000, www);
            var r = await ns.RunAsync(CommandTimeout, StackHost.DotnetPath, SampleDll("ConnectOut"), "--tun", StackHost.Device,
                "--address", Stack, $"http://{StackHost.PeerAddress}:8000/hello.txt");
            Assert.True(r.Succeeded, r.ToString());
            Assert.StartsWith("HTTP/1.0 200 OK", r.Stdout, StringComparison.Ordinal);
            Assert.EndsWith("\r\n\r\nhello from the kernel\n", r.Stdout, StringComparison.Ordinal);
            Assert.Matches(@"connected 198\.18\.0\.2:\d+ -> 198\.18\.0\.1:8000", r.Stderr);

            var refused = await ns.RunAsync(CommandTimeout, StackHost.DotnetPath, SampleDll("ConnectOut"), "--tun", StackHost.Device,
                "--address", Stack, $"http://{StackHost.PeerAddress}:8001/");
            Assert.Equal(3, refused.ExitCode);
            Assert.Contains("ConnectionRefused", refused.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(www, recursive: true);
        }
    }
}

/// <summary>Servers on the kernel side, inside a test's namespace.</summary>
public static class KernelServers
{
    /// <summary>python3 -m http.server on <paramref name="address"/>:<paramref name="port"/>, returned once it accepts connections.</summary>
    public static async Task<BackgroundProcess> HttpServerAsync(NetNamespace ns, string address, int port, string directory)
    {
        var server = ns.Start("python3", "-m", "http.server", "-b", address, port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--directory", directory);
        await WaitListeningAsync(ns, server, address, port);
        return server;
    }

    /// <summary>Starts a python3 script (passed with -c) and waits until <paramref name="address"/>:<paramref name="port"/> accepts.</summary>
    public static async Task<BackgroundProcess> PythonAsync(NetNamespace ns, string script, string address, int port, params string[] args)
    {
        var server = ns.Start(["python3", "-u", "-c", script, .. args]);
        await WaitListeningAsync(ns, server, address, port);
        return server;
    }

    private static async Task WaitListeningAsync(NetNamespace ns, BackgroundProcess server, string address, int port)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            // ss lists the listening socket once it exists; connecting to it would disturb one-shot servers.
            var probe = await ns.RunAsync(TimeSpan.FromSeconds(5), "ss", "-Hltn", $"sport = :{port}");
            if (probe.Succeeded && probe.Stdout.Contains($"{address}:{port}", StringComparison.Ordinal)) return;
            if (server.HasExited) break;
            await Task.Delay(100);
        }
        await server.DisposeAsync();
        throw new InvalidOperationException($"the kernel-side server on {address}:{port} did not start: {server.Log}");
    }
}
