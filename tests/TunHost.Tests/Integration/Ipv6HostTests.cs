using System.Diagnostics;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// The program over IPv6 against the real kernel: tun0 carries 2001:2::1/64 on the kernel's side and the stack
/// answers as 2001:2::2, through the same TCP engine as IPv4.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class Ipv6HostTests(ITestOutputHelper output)
{
    private const string Url = "http://[" + StackHost.StackAddress6 + "]";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    [IntegrationFact]
    public async Task Ten_megabytes_arrive_intact_over_ipv6()
    {
        const int length = 10 * 1024 * 1024;
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(TimeSpan.FromSeconds(90), "curl", "-6", "-g", "-sS", "-f", "-m", "60", $"{Url}/bytes/{length}");
        host.Check(r.Succeeded, $"curl -6 /bytes failed: exit {r.ExitCode}, {r.StdoutBytes.Length} bytes, {r.Stderr.Trim()}");
        host.Check(r.StdoutBytes.Length == length, $"expected {length} bytes, got {r.StdoutBytes.Length}");
        string actual = ExpectedBytes.Sha256Of(r.StdoutBytes);
        string expected = ExpectedBytes.Sha256(length);
        host.Check(actual == expected, $"SHA-256 {actual} != expected {expected}");
        output.WriteLine($"10 MiB over IPv6 in {r.Elapsed.TotalSeconds:F2} s");
    }

    [IntegrationFact]
    public async Task Ping6_is_answered()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1000", StackHost.StackAddress6);
        host.Check(r.Succeeded, $"ping -6 failed: {r}");
        host.Check(r.Stdout.Contains(" 0% packet loss", StringComparison.Ordinal), $"ping -6 lost packets: {r}");
        host.Check(r.Stdout.Contains("1008 bytes from 2001:2::2", StringComparison.Ordinal), $"unexpected replies: {r}");
    }

    [IntegrationFact]
    public async Task A_closed_port_is_refused_at_once_over_ipv6()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "curl", "-6", "-g", "-sS", "-m", "5", Url + ":81/");
        host.Check(r.ExitCode == 7, $"expected curl exit 7 (connection refused): {r}");
        host.Check(r.Elapsed < TimeSpan.FromSeconds(3), $"refusal took {r.Elapsed.TotalSeconds:F1} s: {r}");

        var py = await ns.RunAsync(CommandTimeout, "python3", "-c", RefusedClient, StackHost.StackAddress6, "81");
        host.Check(py.Succeeded && py.Stdout.Trim() == "refused", $"python connect() to a closed IPv6 port: {py}");
    }

    [IntegrationFact]
    public async Task Echo_over_ipv6_returns_every_byte_after_a_half_close()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "python3", "-c", EchoClient, StackHost.StackAddress6, "7", "300000");
        host.Check(r.Succeeded, $"echo client failed: {r}");
        string[] f = r.Stdout.Split(' ', StringSplitOptions.TrimEntries);
        host.Check(f.Length == 4 && f[0] == f[2] && f[1] == f[3], $"echo over IPv6 did not return what was sent: {r}");
    }

    /// <summary>
    /// Both families at once, and what the kernel does with IPv6 on a TUN link: in Create mode the host is
    /// attached before the link comes up, so it sees the router solicitation (and MLD reports) the kernel sends to
    /// multicast groups; those are counted as MulticastDestination and nothing is dropped as malformed. There is
    /// no neighbour discovery: the kernel sends straight to 2001:2::2.
    /// </summary>
    [IntegrationFact]
    public async Task Both_families_at_once_and_the_kernels_multicast_is_counted_apart()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Create);

        var v4 = await ns.RunAsync(CommandTimeout, "curl", "-4", "-sS", "-f", "-m", "10", "-o", "/dev/null", $"http://{StackHost.StackAddress}/");
        host.Check(v4.Succeeded, $"curl -4 failed: {v4}");
        var page = await ns.RunAsync(CommandTimeout, "curl", "-6", "-g", "-sS", "-f", "-m", "10", Url + "/");
        host.Check(page.Succeeded && page.Stdout.Contains("TunStack", StringComparison.Ordinal), $"curl -6 / failed: {page}");
        host.Check(page.Stdout.Contains(StackHost.PeerAddress6, StringComparison.Ordinal), $"the page does not show the IPv6 peer: {page}");

        // The router solicitation follows link-up by about a second (net.ipv6.conf.*.router_solicitation_delay).
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var stats = await ns.RunAsync(CommandTimeout, "curl", "-6", "-g", "-sS", "-f", "-m", "5", Url + "/stats");
            host.Check(stats.Succeeded, $"curl -6 /stats failed: {stats}");
            using var doc = JsonDocument.Parse(stats.Stdout);
            var drops = doc.RootElement.GetProperty("drops");
            var unexpected = drops.EnumerateObject().Select(p => p.Name)
                .Where(name => name is not ("MulticastDestination" or "NoListener")).ToList();
            host.Check(unexpected.Count == 0, $"unexpected drops {string.Join(", ", unexpected)}: {stats.Stdout}");
            bool remoteIsV6 = doc.RootElement.GetProperty("connections").EnumerateArray()
                .Any(c => c.GetProperty("remote").GetString()!.StartsWith($"[{StackHost.PeerAddress6}]:", StringComparison.Ordinal));
            host.Check(remoteIsV6, $"/stats does not list its own IPv6 connection as [{StackHost.PeerAddress6}]:port: {stats.Stdout}");
            if (drops.TryGetProperty("MulticastDestination", out var multicast) && multicast.GetInt64() > 0)
                return;
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
                host.Check(false, $"no multicast packet from the kernel counted within 15 s: {stats.Stdout}");
            await Task.Delay(250);
        }
    }

    private const string RefusedClient = """
        import socket, sys
        try:
            socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        except ConnectionRefusedError:
            print("refused")
        else:
            sys.exit("connected to a port that should be closed")
        """;

    // argv: host port count. Sends count pseudo-random bytes while reading, half-closes, reads to EOF,
    // prints "<sent> <sha256 sent> <received> <sha256 received>".
    private const string EchoClient = """
        import hashlib, random, socket, sys, threading
        host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        data = random.Random(20261201).randbytes(count)
        s = socket.create_connection((host, port), timeout=20)
        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send)
        t.start()
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        t.join()
        s.close()
        print(len(data), hashlib.sha256(data).hexdigest(), len(got), hashlib.sha256(got).hexdigest())
        """;
}
