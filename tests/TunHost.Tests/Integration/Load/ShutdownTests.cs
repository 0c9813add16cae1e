using System.Diagnostics;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// SIGTERM and SIGINT with connections open: the host resets every one of them (the kernel's sockets see ECONNRESET at
/// once, rather than a peer that falls silent), removes the device it created and exits 0, for the NativeAOT build
/// (<c>./run-linux.sh publish</c>) and for the JIT build.
/// </summary>
[Collection(IntegrationCollection.Name)]
[Trait("Category", "Load")]
public sealed class ShutdownTests(ITestOutputHelper output)
{
    private const int Sigterm = 15;

    [IntegrationTheory]
    [InlineData("aot", "SIGTERM")]
    [InlineData("aot", "SIGINT")]
    [InlineData("jit", "SIGTERM")]
    public async Task A_signal_resets_the_open_connections_removes_the_device_and_exits_zero(string build, string signal)
    {
        string? executable = build == "aot" ? await AotHost.GetAsync(output) : null;
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output,
            new StackHostOptions { Mode = DeviceMode.Create, Executable = executable });

        // Three echo connections and one HTTP keep-alive connection, each used once and then idle.
        var client = ns.StartStreaming("python3", "-c", HoldingClient, StackHost.StackAddress);
        try
        {
            string? ready = await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            host.Check(ready == "ready 4", $"client: {ready}");

            var clock = Stopwatch.StartNew();
            host.Process.Note($"sending {signal}");
            host.Check(TestNative.Kill(host.Process.Pid, signal == "SIGINT" ? TestNative.SIGINT : Sigterm) == 0,
                $"kill failed: {TestNative.LastError()}");
            bool exited = await host.Process.WaitForExitAsync(TimeSpan.FromSeconds(5));
            host.Check(exited, $"tunstack still running 5 s after {signal}");
            output.WriteLine($"{signal}: exited with {host.Process.ExitCode} after {clock.Elapsed.TotalMilliseconds:F0} ms");
            host.Check(host.Process.ExitCode == 0, $"exit code {host.Process.ExitCode} after {signal}");
            string? stopped = await host.Process.WaitForStdoutLineAsync(l => l.StartsWith("tunstack stopped", StringComparison.Ordinal), TimeSpan.FromSeconds(5));
            host.Check(stopped is not null && stopped.Contains("4 connection(s) reset", StringComparison.Ordinal), $"last words: {stopped}");

            string? seen = await client.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10));
            host.Check(seen == "reset 4", $"the client saw: {seen} (expected a reset on all 4 connections)");

            var show = await ns.RunAsync(TimeSpan.FromSeconds(10), "ip", "link", "show", StackHost.Device);
            host.Check(show.ExitCode != 0, $"{StackHost.Device} still exists after tunstack exited: {show}");
        }
        finally
        {
            ProcessRunner.KillQuietly(client);
        }
    }

    /// <summary>
    /// Opens 3 echo connections and 1 HTTP connection, uses each once, prints "ready 4", then waits on all of them and
    /// prints "reset N" with the number that ended in ECONNRESET (an orderly FIN or a timeout would not count).
    /// </summary>
    private const string HoldingClient = """
        import selectors, socket, sys
        host = sys.argv[1]
        conns = []
        for _ in range(3):
            s = socket.create_connection((host, 7), timeout=10)
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            conns.append(s)
        s = socket.create_connection((host, 80), timeout=10)
        s.sendall(b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"0123456789"):
            data += s.recv(4096)
        conns.append(s)
        print(f"ready {len(conns)}", flush=True)
        sel = selectors.DefaultSelector()
        for c in conns:
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        reset = 0
        pending = len(conns)
        while pending:
            events = sel.select(timeout=10)
            if not events:
                break
            for key, _ in events:
                try:
                    key.fileobj.recv(4096)
                except ConnectionResetError:
                    reset += 1
                sel.unregister(key.fileobj)
                pending -= 1
        print(f"reset {reset}", flush=True)
        """;
}
