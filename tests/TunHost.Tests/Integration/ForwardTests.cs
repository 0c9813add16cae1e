using System.Diagnostics;
using System.Security.Cryptography;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// <c>tunstack forward</c> in a namespace: 198.19.0.0/16 is routed into tun0, the stack accepts those connections and
/// relays them to kernel servers on 127.0.0.1 (<c>--map 198.19.0.0/16=127.0.0.1</c>), directly or through SOCKS5.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class ForwardTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private const string Routed = "198.19.0.5";

    /// <summary>Namespace, tun0, the route into it, and <c>tunstack forward</c> attached to it.</summary>
    private async Task<(NetNamespace Ns, BackgroundProcess Forwarder)> StartAsync(params string[] extra)
    {
        var ns = new NetNamespace(output);
        try
        {
            await SampleTests.AttachedDeviceAsync(ns);
            await ns.IpAsync("route", "add", "198.19.0.0/16", "dev", StackHost.Device);
            var forwarder = ns.Start([StackHost.DotnetPath, StackHost.HostDll, "forward", "--tun", StackHost.Device,
                "--address", StackHost.StackAddress, "--map", "198.19.0.0/16=127.0.0.1", "--connect-timeout", "3", .. extra]);
            string? ready = await forwarder.WaitForStdoutLineAsync(line => line.StartsWith(StackHost.ReadyPrefix, StringComparison.Ordinal),
                TimeSpan.FromSeconds(30));
            if (ready is null)
                throw new InvalidOperationException($"tunstack forward did not get ready: {forwarder.Log}");
            Assert.Contains("forwarding map 198.19.0.0/16=127.0.0.1", ready, StringComparison.Ordinal);
            return (ns, forwarder);
        }
        catch
        {
            await ns.DisposeAsync();
            throw;
        }
    }

    [IntegrationFact]
    public async Task Curl_to_a_routed_address_reaches_the_kernel_server_100_MiB_exactly_and_the_stack_still_serves_its_own()
    {
        const int length = 100 * 1024 * 1024;
        var (ns, forwarder) = await StartAsync();
        await using var _ = ns;
        string www = Directory.CreateTempSubdirectory("tunstack-fwd-").FullName;
        try
        {
            var content = RandomNumberGenerator.GetBytes(length);
            await File.WriteAllBytesAsync(Path.Combine(www, "file"), content);
            await using var server = await KernelServers.HttpServerAsync(ns, "127.0.0.1", 8000, www);

            var clock = Stopwatch.StartNew();
            var r = await ns.RunAsync(CommandTimeout, "sh", "-c", $"curl -sS -m 50 http://{Routed}:8000/file | sha256sum");
            Assert.True(r.Succeeded, $"{r}\n{forwarder.Log}");
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), r.Stdout.Split(' ')[0]);
            output.WriteLine($"100 MiB down through the forwarder in {clock.Elapsed.TotalSeconds:F2} s");

            var own = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", $"http://{StackHost.StackAddress}/");
            Assert.True(own.Succeeded, own.ToString());
            Assert.Contains("TunStack", own.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(www, recursive: true);
        }
    }

    [IntegrationFact]
    public async Task An_upload_of_100_MiB_arrives_exactly_and_half_close_travels_both_ways()
    {
        const int length = 100 * 1024 * 1024;
        var (ns, forwarder) = await StartAsync();
        await using var _ = ns;
        // Upstream: reads until the client's FIN (which arrives as EOF only if half-close is relayed), answers the
        // SHA-256 of what it read and closes (which ends the client's read only if our FIN is relayed back).
        await using var server = await KernelServers.PythonAsync(ns, HashServer, "127.0.0.1", 9000);
        var upload = RandomNumberGenerator.GetBytes(length);

        var clock = Stopwatch.StartNew();
        var r = await ns.RunAsync(["python3", "-c", HalfCloseClient, Routed, "9000"], CommandTimeout, upload);
        Assert.True(r.Succeeded, $"{r}\n{server.Log}\n{forwarder.Log}");
        Assert.Equal($"{Convert.ToHexStringLower(SHA256.HashData(upload))} {length}", r.Stdout.Trim());
        output.WriteLine($"100 MiB up through the forwarder in {clock.Elapsed.TotalSeconds:F2} s");
    }

    [IntegrationFact]
    public async Task A_reset_on_either_side_resets_the_other()
    {
        var (ns, forwarder) = await StartAsync();
        await using var _ = ns;
        await using var server = await KernelServers.PythonAsync(ns, ResetWatcher, "127.0.0.1", 9001);

        // The client resets: the upstream connection is reset too.
        var clientReset = await ns.RunAsync(CommandTimeout, "python3", "-c", ResettingClient, Routed, "9001");
        Assert.True(clientReset.Succeeded, clientReset.ToString());
        string? seen = await server.WaitForStdoutLineAsync(line => line.StartsWith("upstream ", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.True(seen == "upstream saw 5 bytes then reset", $"{seen}\n{server.Log}\n{forwarder.Log}");

        // The upstream resets (the watcher answers "reset me" with SO_LINGER 0): the client is reset.
        var upstreamReset = await ns.RunAsync(CommandTimeout, "python3", "-c", ResetMeClient, Routed, "9001");
        Assert.True(upstreamReset.Succeeded, $"{upstreamReset}\n{server.Log}\n{forwarder.Log}");
        Assert.Equal("client reset", upstreamReset.Stdout.Trim());
    }

    /// <summary>
    /// The README's recipe without <c>--map</c>: every unmarked packet is routed into tun0 by policy (<c>ip rule add not
    /// fwmark 0x1 table 100</c>), and the forwarder's direct upstream sockets carry SO_MARK 0x1 (<c>--mark 0x1</c>), so
    /// they leave by the main table to the real server (in a second namespace behind a veth pair) instead of looping
    /// back into tun0. The server sees the connection come from the veth address, not from the client.
    /// </summary>
    [IntegrationFact]
    public async Task With_mark_and_policy_routing_a_direct_upstream_leaves_by_the_main_table_and_does_not_loop()
    {
        const string upstreamAddress = "198.19.1.2", localAddress = "198.19.1.1";
        await using var ns = new NetNamespace(output);
        await using var upstream = new NetNamespace(output);
        await SampleTests.AttachedDeviceAsync(ns);
        await ns.IpAsync("link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", upstream.Name);
        await ns.IpAsync("addr", "add", localAddress + "/24", "dev", "va");
        await ns.IpAsync("link", "set", "va", "up");
        await upstream.IpAsync("addr", "add", upstreamAddress + "/24", "dev", "vb");
        await upstream.IpAsync("link", "set", "vb", "up");
        await ns.IpAsync("route", "add", "default", "dev", StackHost.Device, "table", "100");
        await ns.IpAsync("rule", "add", "not", "fwmark", "0x1", "table", "100");

        string www = Directory.CreateTempSubdirectory("tunstack-fwd-mark-").FullName;
        try
        {
            var content = RandomNumberGenerator.GetBytes(3 << 20);
            await File.WriteAllBytesAsync(Path.Combine(www, "file"), content);
            await using var server = await KernelServers.HttpServerAsync(upstream, upstreamAddress, 8000, www);
            await using var forwarder = ns.Start([StackHost.DotnetPath, StackHost.HostDll, "forward", "--tun", StackHost.Device,
                "--address", StackHost.StackAddress, "--mark", "0x1", "--connect-timeout", "3"]);
            string? ready = await forwarder.WaitForStdoutLineAsync(line => line.StartsWith(StackHost.ReadyPrefix, StringComparison.Ordinal),
                TimeSpan.FromSeconds(30));
            Assert.True(ready is not null, $"tunstack forward did not get ready: {forwarder.Log}");
            Assert.Contains("mark 0x1", ready, StringComparison.Ordinal);

            // The client's own route to the server is tun0 (policy table 100), so only the forwarder can reach it.
            var route = await ns.RunAsync(CommandTimeout, "ip", "route", "get", upstreamAddress);
            Assert.Contains("dev " + StackHost.Device, route.Stdout, StringComparison.Ordinal);
            var marked = await ns.RunAsync(CommandTimeout, "ip", "route", "get", upstreamAddress, "mark", "0x1");
            Assert.Contains("dev va", marked.Stdout, StringComparison.Ordinal);

            var r = await ns.RunAsync(CommandTimeout, "sh", "-c", $"curl -sS -m 20 http://{upstreamAddress}:8000/file | sha256sum");
            Assert.True(r.Succeeded, $"{r}\n{forwarder.Log}\n{server.Log}");
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), r.Stdout.Split(' ')[0]);
            // http.server logs the client's address: the forwarder's marked socket on va, not the client on tun0.
            Assert.Contains(localAddress + " - - ", server.Log, StringComparison.Ordinal);
            Assert.DoesNotContain(StackHost.PeerAddress + " - - ", server.Log, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(www, recursive: true);
        }
    }

    [IntegrationFact]
    public async Task A_refused_upstream_resets_the_client_after_its_handshake()
    {
        var (ns, forwarder) = await StartAsync();
        await using var _ = ns;
        var r = await ns.RunAsync(CommandTimeout, "python3", "-c", ConnectThenRead, Routed, "8001");
        Assert.True(r.Succeeded, $"{r}\n{forwarder.Log}");
        Assert.Equal("connected, then reset", r.Stdout.Trim());
        Assert.Contains("upstream 127.0.0.1:8001 failed", forwarder.Log, StringComparison.Ordinal);

        // Again and again: never refused at the SYN (curl would say 7 for both, so it cannot tell them apart).
        for (int i = 0; i < 5; i++)
        {
            var again = await ns.RunAsync(CommandTimeout, "python3", "-c", ConnectThenRead, Routed, "8001");
            Assert.Equal("connected, then reset", again.Stdout.Trim());
        }
    }

    [IntegrationFact]
    public async Task Through_a_socks5_proxy_the_bytes_arrive_exactly()
    {
        var (ns, forwarder) = await StartAsync("--socks5", "127.0.0.1:1080");
        await using var _ = ns;
        await using var proxy = await KernelServers.PythonAsync(ns, Socks5Proxy, "127.0.0.1", 1080);
        await using var server = await KernelServers.PythonAsync(ns, HashServer, "127.0.0.1", 9000);
        var upload = RandomNumberGenerator.GetBytes(8 << 20);

        var r = await ns.RunAsync(["python3", "-c", HalfCloseClient, Routed, "9000"], CommandTimeout, upload);
        Assert.True(r.Succeeded, $"{r}\n{proxy.Log}\n{forwarder.Log}");
        Assert.Equal($"{Convert.ToHexStringLower(SHA256.HashData(upload))} {upload.Length}", r.Stdout.Trim());
        Assert.Contains("socks5 CONNECT 127.0.0.1:9000", proxy.Log, StringComparison.Ordinal);

        // A CONNECT the proxy cannot make (nothing on 127.0.0.1:8002) resets the client.
        var refused = await ns.RunAsync(CommandTimeout, "python3", "-c", ConnectThenRead, Routed, "8002");
        Assert.Equal("connected, then reset", refused.Stdout.Trim());
        Assert.Contains("connection refused", forwarder.Log, StringComparison.Ordinal);
    }

    // Reads to EOF on each connection, answers "<sha256> <length>\n", closes. Serves forever.
    private const string HashServer = """
        import hashlib, socket, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 9000)); s.listen(16)
        def serve(c):
            h, n = hashlib.sha256(), 0
            while True:
                b = c.recv(1 << 20)
                if not b: break
                h.update(b); n += len(b)
            c.sendall(f"{h.hexdigest()} {n}\n".encode()); c.close()
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """;

    // argv: host port. Sends stdin, half-closes (shutdown SHUT_WR), prints what comes back until EOF.
    private const string HalfCloseClient = """
        import socket, sys, threading
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=50)
        data = sys.stdin.buffer.read()
        def send():
            c.sendall(data); c.shutdown(socket.SHUT_WR)
        t = threading.Thread(target=send); t.start()
        out = b""
        while True:
            b = c.recv(65536)
            if not b: break
            out += b
        t.join(); sys.stdout.write(out.decode())
        """;

    // Port 9001: a connection that sends "reset me" is closed with SO_LINGER 0 (RST); otherwise it reports how it ended.
    private const string ResetWatcher = """
        import socket, struct, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 9001)); s.listen(16)
        def serve(c):
            n = 0
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        print(f"upstream saw {n} bytes then eof", flush=True); break
                    n += len(b)
                    if b"reset me" in b:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); break
            except ConnectionResetError:
                print(f"upstream saw {n} bytes then reset", flush=True)
            c.close()
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """;

    // Sends 5 bytes, waits a moment for them to be relayed, then closes with SO_LINGER 0 (RST).
    private const string ResettingClient = """
        import socket, struct, sys, time
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
        c.sendall(b"hello"); time.sleep(0.5)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
        """;

    // Asks the watcher to reset; reports whether the reset reached us.
    private const string ResetMeClient = """
        import socket, sys
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
        c.sendall(b"reset me")
        try:
            while c.recv(65536): pass
            print("client eof")
        except ConnectionResetError:
            print("client reset")
        """;

    // The handshake with the stack succeeds; then the relay's failure arrives as a reset.
    // Connects and reads. A reset that lands before connect() has returned fails connect() itself with ECONNRESET,
    // never ECONNREFUSED, which only a RST in answer to the SYN gives: so "reset" is the handshake completed and then
    // reset, whichever the kernel reports it through, and "refused" the SYN refused.
    private const string ConnectThenRead = """
        import socket, sys
        try:
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
        except ConnectionRefusedError:
            print("refused"); sys.exit(0)
        except (ConnectionResetError, BrokenPipeError):
            print("connected, then reset"); sys.exit(0)
        try:
            b = c.recv(100)
            print("connected, then eof" if not b else "connected, then data")
        except ConnectionResetError:
            print("connected, then reset")
        """;

    // A SOCKS5 proxy (RFC 1928, no authentication, CONNECT to IPv4) on 127.0.0.1:1080 that logs each CONNECT.
    private const string Socks5Proxy = """
        import socket, struct, threading
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 1080)); s.listen(16)
        def exact(c, n):
            b = b""
            while len(b) < n:
                x = c.recv(n - len(b))
                if not x: raise EOFError
                b += x
            return b
        def pump(a, b):
            try:
                while True:
                    x = a.recv(65536)
                    if not x: break
                    b.sendall(x)
                b.shutdown(socket.SHUT_WR)
            except OSError: pass
        def serve(c):
            try:
                ver, n = exact(c, 2); exact(c, n); c.sendall(b"\x05\x00")
                ver, cmd, _, atyp = exact(c, 4)
                host = socket.inet_ntoa(exact(c, 4)); port = struct.unpack("!H", exact(c, 2))[0]
                print(f"socks5 CONNECT {host}:{port}", flush=True)
                try:
                    u = socket.create_connection((host, port))
                except ConnectionRefusedError:
                    c.sendall(b"\x05\x05\x00\x01" + bytes(6)); c.close(); return
                c.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", u.getsockname()[1]))
                t = threading.Thread(target=pump, args=(u, c)); t.start(); pump(c, u); t.join()
                u.close(); c.close()
            except (EOFError, OSError): c.close()
        while True:
            c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
        """;
}
