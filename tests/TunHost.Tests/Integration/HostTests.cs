using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Xunit;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// The whole program against the real kernel: each test gets its own namespace and tunstack process, and
/// talks to 198.18.0.2 from inside the namespace with curl, Python sockets, nc and ping.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class HostTests(ITestOutputHelper output)
{
    private const string Url = "http://" + StackHost.StackAddress;
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    [IntegrationTheory]
    [InlineData(DeviceMode.Attach)]
    [InlineData(DeviceMode.Create)]
    public async Task Root_page_shows_the_handshake(DeviceMode mode)
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, mode);

        var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", "-w", "\n%{http_code}", Url + "/");
        host.Check(r.Succeeded, $"curl / failed: {r}");
        string text = r.Stdout;
        int lastLine = text.LastIndexOf('\n');
        string body = text[..Math.Max(lastLine, 0)];
        string status = text[(lastLine + 1)..];
        host.Check(status == "200", $"expected status 200, got '{status}': {r}");
        host.Check(body.Contains("TunStack", StringComparison.Ordinal), $"body does not mention TunStack: {r}");
        host.Check(body.Contains("ISN", StringComparison.Ordinal), $"body does not show the ISNs: {r}");
    }

    [IntegrationFact]
    public async Task Ten_megabytes_arrive_intact()
    {
        const int length = 10 * 1024 * 1024;
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(TimeSpan.FromSeconds(90), "curl", "-sS", "-f", "-m", "60", $"{Url}/bytes/{length}");
        host.Check(r.Succeeded, $"curl /bytes failed: {Summary(r)}");
        host.Check(r.StdoutBytes.Length == length, $"expected {length} bytes, got {r.StdoutBytes.Length}");
        string actual = ExpectedBytes.Sha256Of(r.StdoutBytes);
        string expected = ExpectedBytes.Sha256(length);
        host.Check(actual == expected, $"SHA-256 {actual} != expected {expected} (first difference at byte {FirstDifference(r.StdoutBytes)})");
        output.WriteLine($"10 MiB in {r.Elapsed.TotalSeconds:F2} s ({length / r.Elapsed.TotalSeconds / 1e6:F1} MB/s)");
    }

    [IntegrationFact]
    public async Task Echo_returns_every_byte_after_a_half_close()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "python3", "-c", EchoClient, StackHost.StackAddress, "7", "100000");
        host.Check(r.Succeeded, $"echo client failed: {r}");
        string[] f = r.Stdout.Split(' ', StringSplitOptions.TrimEntries);
        host.Check(f.Length == 4, $"unexpected echo client output: {r}");
        host.Check(f[0] == f[2] && f[1] == f[3], $"sent {f[0]} bytes (sha256 {f[1]}) but got back {f[2]} bytes (sha256 {f[3]})");
    }

    [IntegrationFact]
    public async Task Echo_works_with_netcat()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        byte[] input = Encoding.ASCII.GetBytes("hello, tunstack\nsecond line\n");
        var r = await ns.RunAsync(["nc", "-N", "-w", "10", StackHost.StackAddress, "7"], CommandTimeout, input);
        host.Check(r.Succeeded, $"nc failed: {r}");
        host.Check(r.StdoutBytes.AsSpan().SequenceEqual(input), $"nc got back something else: {r}");
    }

    [IntegrationFact]
    public async Task A_closed_port_is_refused_at_once()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "5", Url + ":81/");
        host.Check(r.ExitCode == 7, $"expected curl exit 7 (connection refused): {r}");
        host.Check(r.Elapsed < TimeSpan.FromSeconds(3), $"refusal took {r.Elapsed.TotalSeconds:F1} s: {r}");

        var py = await ns.RunAsync(CommandTimeout, "python3", "-c", RefusedClient, StackHost.StackAddress, "81");
        host.Check(py.Succeeded && py.Stdout.Trim() == "refused", $"python connect() to a closed port: {py}");
    }

    [IntegrationFact]
    public async Task Discard_swallows_a_megabyte_and_closes_cleanly()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "python3", "-c", DiscardClient, StackHost.StackAddress, "9", "1048576");
        host.Check(r.Succeeded && r.Stdout.Trim() == "ok", $"discard client failed: {r}");
    }

    [IntegrationFact]
    public async Task Connection_table_is_empty_after_the_clients_are_done()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        // Both close orders: curl closes first (our passive close, LAST-ACK), and with "Connection: close" we
        // close first (our active close, which ends in TIME-WAIT); plus an echo connection.
        for (int i = 0; i < 3; i++)
        {
            var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", "-o", "/dev/null", Url + "/");
            host.Check(r.Succeeded, $"curl / #{i} failed: {r}");
        }
        var close = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", "-o", "/dev/null", "-H", "Connection: close", Url + "/bytes/100000");
        host.Check(close.Succeeded, $"curl with Connection: close failed: {close}");
        var echo = await ns.RunAsync(CommandTimeout, "sh", "-c", "echo hello | nc -N -w 5 198.18.0.2 7");
        host.Check(echo.Succeeded && echo.Stdout.Trim() == "hello", $"echo failed: {echo}");
        // Aborts: SO_LINGER 0 makes close() send RST, once into echo and once in the middle of a large download.
        var abort = await ns.RunAsync(CommandTimeout, "python3", "-c", AbortClient, StackHost.StackAddress);
        host.Check(abort.Succeeded && abort.Stdout.Trim() == "aborted 2", $"abort client failed: {abort}");

        // With --msl 200 TIME-WAIT lasts 400 ms; allow generous slack, then only the /stats query itself may be left.
        var clock = Stopwatch.StartNew();
        string last = "(no answer yet)";
        while (true)
        {
            int port = Random.Shared.Next(42000, 44000);
            var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "5", "--local-port", port.ToString(CultureInfo.InvariantCulture), Url + "/stats");
            if (r.Succeeded)
            {
                last = r.Stdout;
                if (OnlyTheQueryIsLeft(last, port, out string why))
                    return;
                last = $"{why}: {last}";
            }
            else
            {
                last = r.ToString();
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(10))
                host.Check(false, $"connection table not down to the /stats query itself after 10 s; last: {last}");
            await Task.Delay(200);
        }
    }

    [IntegrationFact]
    public async Task Ping_is_answered()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        var r = await ns.RunAsync(CommandTimeout, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", StackHost.StackAddress);
        host.Check(r.Succeeded, $"ping failed: {r}");
        host.Check(r.Stdout.Contains(" 0% packet loss", StringComparison.Ordinal), $"ping lost packets: {r}");
    }

    [IntegrationFact]
    public async Task Sigint_stops_the_host_and_its_created_device_goes_away()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Create);

        bool exited = await host.StopAsync();
        host.Check(exited, $"tunstack did not exit within {StackHost.StopGrace.TotalSeconds:F0} s of SIGINT");
        var show = await ns.RunAsync(CommandTimeout, "ip", "link", "show", StackHost.Device);
        host.Check(show.ExitCode != 0, $"{StackHost.Device} still exists after the host that created it exited: {show}");
    }

    /// <summary>Accepts <c>{"connections":[{"local":..,"remote":"198.18.0.1:PORT","state":"Established"}], ...}</c>.</summary>
    private static bool OnlyTheQueryIsLeft(string json, int queryPort, out string why)
    {
        using var doc = JsonDocument.Parse(json);
        var connections = doc.RootElement.GetProperty("connections");
        int count = connections.GetArrayLength();
        if (count != 1)
        {
            why = $"{count} connections listed";
            return false;
        }
        var c = connections[0];
        string remote = c.GetProperty("remote").GetString() ?? "";
        string state = c.GetProperty("state").GetString() ?? "";
        string expectedRemote = $"{StackHost.PeerAddress}:{queryPort}";
        if (remote != expectedRemote || !state.Equals("Established", StringComparison.OrdinalIgnoreCase))
        {
            why = $"the one connection is {remote} in {state}, expected {expectedRemote} Established";
            return false;
        }
        if (doc.RootElement.GetProperty("drops").TryGetProperty("InternalError", out _))
        {
            why = "the stack counted an internal error";
            return false;
        }
        why = "";
        return true;
    }

    /// <summary>Resets two connections from the client side (SO_LINGER with a zero timeout).</summary>
    private const string AbortClient = """
        import socket, struct, sys
        host = sys.argv[1]
        linger0 = struct.pack('ii', 1, 0)
        s = socket.create_connection((host, 7), timeout=10)
        s.sendall(b'x' * 100000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        s.close()
        s = socket.create_connection((host, 80), timeout=10)
        s.sendall(b'GET /bytes/100000000 HTTP/1.1\r\nHost: t\r\n\r\n')
        assert s.recv(65536).startswith(b'HTTP/1.1 200'), 'the download did not start'
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
        s.close()
        print('aborted 2')
        """;

    private static string Summary(ProcessResult r) =>
        $"`{r.CommandLine}` exit {r.ExitCode}{(r.TimedOut ? " (timed out)" : "")}, {r.StdoutBytes.Length} bytes, stderr: {r.Stderr.Trim()}";

    private static string FirstDifference(byte[] data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            if (data[i] != (byte)ExpectedBytes.Pattern[i % 64])
                return i.ToString(CultureInfo.InvariantCulture);
        }
        return "(none within the received length)";
    }

    // argv: host port count. Sends count pseudo-random bytes while reading, half-closes, reads to EOF,
    // prints "<sent> <sha256 sent> <received> <sha256 received>".
    private const string EchoClient = """
        import hashlib, random, socket, sys, threading
        host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        data = random.Random(20240501).randbytes(count)
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

    // argv: host port count. Sends count bytes, half-closes, expects EOF with no data back.
    private const string DiscardClient = """
        import socket, sys
        host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(bytes(range(256)) * (count // 256))
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(65536)
        s.close()
        if rest:
            sys.exit("discard sent data back: %r" % rest[:64])
        print("ok")
        """;

    private const string RefusedClient = """
        import socket, sys
        try:
            socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        except ConnectionRefusedError:
            print("refused")
        else:
            sys.exit("connected to a port that should be closed")
        """;
}
