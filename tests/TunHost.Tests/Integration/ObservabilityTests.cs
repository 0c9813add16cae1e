using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.RegularExpressions;
using TunStack.Diagnostics;
using TunStack.Linux;
using TunStack.Host.Services;
using TunStack.Runtime;
using TunStack.Wire;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// What a learner watches, against the real kernel: <c>--explain</c> narrating a curl, <c>GET /connections</c> showing
/// the live connection, and the <c>TunStack</c> meter moving across a real curl.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class ObservabilityTests(ITestOutputHelper output)
{
    private const string Url = "http://" + StackHost.StackAddress;
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);

    [IntegrationFact]
    public async Task Explain_narrates_the_handshake_and_close_of_a_real_curl()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach, "--trace", "--explain");

        var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{local_port}", Url + "/");
        host.Check(r.Succeeded, $"curl failed: {r}");
        string peer = $"{StackHost.PeerAddress}:{r.Stdout.Trim()}";
        string tag = $"[{StackHost.StackAddress}:80 <> {peer}]";

        // curl closes first, so ours is the passive close; its last step is the kernel's ACK of our FIN.
        string? last = await host.Process.WaitForStdoutLineAsync(l => l.Contains($"{tag} closing, step 4 of 4", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10));
        host.Check(last is not null, $"no 'closing, step 4 of 4' narration for {peer}");
        string[] steps =
        [
            "opening, step 1 of 3", "opening, step 2 of 3", "opening, step 3 of 3",
            "closing, step 1 of 4", "closing, step 2 of 4", "closing, step 3 of 4", "closing, step 4 of 4",
        ];
        var lines = host.Log.Split('\n');
        int previous = -1;
        foreach (string step in steps)
        {
            int at = Array.FindIndex(lines, l => l.Contains($"{tag} {step}", StringComparison.Ordinal));
            host.Check(at > previous, $"'{step}' for {peer} missing or out of order");
            previous = at;
        }
        // Each narration follows the trace line it explains: the SYN, then step 1.
        int syn = Array.FindIndex(lines, l => Regex.IsMatch(l, $@"in  {Regex.Escape(peer)} > {Regex.Escape(StackHost.StackAddress)}:80 S "));
        int step1 = Array.FindIndex(lines, l => l.Contains($"{tag} opening, step 1 of 3", StringComparison.Ordinal));
        host.Check(syn >= 0 && step1 == syn + 1, $"the SYN's trace line ({syn}) should come just before step 1 ({step1})");
    }

    [IntegrationFact]
    public async Task Connections_lists_the_live_connection_that_asks()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output);

        // The request's own connection is live (ESTABLISHED) while the table is rendered.
        var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "10", "-w", "\n%{local_port} %{http_code} %{content_type}",
            Url + "/connections");
        host.Check(r.Succeeded, $"curl /connections failed: {r}");
        string text = r.Stdout;
        int cut = text.LastIndexOf('\n');
        string body = text[..cut];
        string[] trailer = text[(cut + 1)..].Split(' ', 3);
        host.Check(trailer[1] == "200", $"status {trailer[1]}: {r}");
        host.Check(trailer[2].StartsWith("text/plain", StringComparison.Ordinal), $"content type {trailer[2]}");
        string peer = $"{StackHost.PeerAddress}:{trailer[0]}";

        string[] lines = body.Split('\n');
        host.Check(Regex.IsMatch(lines[0], @"^\d+ live connections?, \d+ in TIME-WAIT"), $"first line: {lines[0]}");
        host.Check(Regex.IsMatch(lines[2], @"^State\s+Recv-Q\s+Send-Q\s+Local\s+Peer\s+rtt\(ms\)\s+rto\(ms\)\s+cwnd\s+ssthresh\s+inflight\s+retrans\s+mss\s+options$"),
            $"header: {lines[2]}");
        string? row = lines.FirstOrDefault(l => l.Contains(" " + peer + " ", StringComparison.Ordinal));
        host.Check(row is not null, $"no row for {peer}:\n{body}");
        // ESTABLISHED, our side 198.18.0.2:80, a measured RTT (the handshake's), the kernel's options and CUBIC.
        host.Check(Regex.IsMatch(row!, $@"^ESTABLISHED\s+\d+\s+\d+\s+{Regex.Escape(StackHost.StackAddress)}:80\s+{Regex.Escape(peer)}\s+[\d.]+\s+[\d.]+\s+\d+\s+(-|\d+)\s+\d+\s+\d+\s+1460\s+sack,ts,cubic$"),
            $"row: {row}");
    }

    [IntegrationFact]
    public async Task Metrics_move_across_a_real_curl()
    {
        const int length = 200_000;
        await using var ns = new NetNamespace(output);
        await ns.IpAsync("tuntap", "add", "dev", StackHost.Device, "mode", "tun");
        await ns.IpAsync("addr", "add", StackHost.PeerAddress + "/24", "dev", StackHost.Device);
        await ns.IpAsync("link", "set", StackHost.Device, "up");
        using var device = ns.InNamespace(() => TunDevice.Open(StackHost.Device, 1500));

        // The stack in this process, so that a MeterListener here reads its meter, as dotnet-counters would.
        var stack = new NetStack(new NetStackOptions { Address = IpAddress.Parse(StackHost.StackAddress), MslMicros = 200_000 });
        using var metrics = new StackMetrics(stack);
        using var reader = new MeterReader(metrics.Meter);
        using var loop = new EventLoop(stack, device);
        loop.Start();
        var listener = await loop.ListenAsync(new IPEndPoint(IPAddress.Any, 80), backlog: null);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var server = ServeOneAsync(listener, stop.Token);

        var r = await ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{size_download}", $"{Url}/bytes/{length}");
        Assert.True(r.Succeeded, $"curl failed: {r}");
        Assert.Equal(length.ToString(System.Globalization.CultureInfo.InvariantCulture), r.Stdout.Trim());
        await server.WaitAsync(stop.Token);

        // curl closes first: the connection ends in LAST-ACK -> CLOSED, moments after curl exits.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            reader.Collect();
            if (reader.Value("tunstack.tcp.closes", "reason", "normal") == 1) break;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the connection did not close within 10 s");
            await Task.Delay(20);
        }
        Assert.Equal(1, reader.Value("tunstack.tcp.opens", "kind", "passive"));
        Assert.Equal(1, reader.Value("tunstack.tcp.handshakes"));
        Assert.Equal(0, reader.Value("tunstack.tcp.connections"));
        Assert.Equal(0, reader.Value("tunstack.tcp.closes", "reason", "reset"));
        long segmentsOut = reader.Value("tunstack.tcp.segments", "direction", "out");
        long segmentsIn = reader.Value("tunstack.tcp.segments", "direction", "in");
        Assert.InRange(segmentsOut, length / 1460, length);            // at most MSS-sized segments, plus handshake and close
        Assert.InRange(segmentsIn, 4, segmentsOut + 8);                // SYN, ACK, request, ACKs (delayed: fewer than ours), FIN
        Assert.InRange(reader.Value("tunstack.ip.bytes", "direction", "out"), length + 40 * segmentsOut, length + 200 * segmentsOut);
        Assert.True(reader.Value("tunstack.ip.bytes", "direction", "in") >= 40 * segmentsIn);
        double[] rtts = reader.Recorded("tunstack.tcp.rtt");
        Assert.NotEmpty(rtts);                                         // the handshake's sample, and the data's
        Assert.All(rtts, rtt => Assert.InRange(rtt, 0, 5000));
        output.WriteLine($"segments in {segmentsIn}, out {segmentsOut}; {rtts.Length} RTT samples, median {rtts.Order().ElementAt(rtts.Length / 2):F3} ms");
        loop.Stop();
    }

    /// <summary>Accepts one connection and serves it with the HTTP service, as tunstack does.</summary>
    private static async Task ServeOneAsync(TunStackListener listener, CancellationToken cancellationToken)
    {
        var connection = await listener.AcceptAsync(cancellationToken);
        connection.NoDelay = true;
        await using (connection)
            await new HttpService().HandleAsync(connection, connection.Info, cancellationToken);
    }

    /// <summary>Reads one meter through a <see cref="MeterListener"/>, as dotnet-counters does.</summary>
    private sealed class MeterReader : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Lock _lock = new();
        private readonly List<(string Name, KeyValuePair<string, object?>[] Tags, long Value)> _observed = new();
        private readonly List<(string Name, double Value)> _recorded = new();

        public MeterReader(Meter meter)
        {
            _listener.InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter)) l.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => { lock (_lock) _observed.Add((i.Name, tags.ToArray(), v)); });
            _listener.SetMeasurementEventCallback<double>((i, v, _, _) => { lock (_lock) _recorded.Add((i.Name, v)); });
            _listener.Start();
        }

        public void Collect()
        {
            lock (_lock) _observed.Clear();
            _listener.RecordObservableInstruments();
        }

        public long Value(string name, string? tag = null, string? tagValue = null)
        {
            lock (_lock)
                return _observed.Where(m => m.Name == name
                        && (tag is null || m.Tags.Any(t => t.Key == tag && t.Value?.ToString() == tagValue)))
                    .Sum(m => m.Value);
        }

        public double[] Recorded(string name)
        {
            lock (_lock) return _recorded.Where(m => m.Name == name).Select(m => m.Value).ToArray();
        }

        public void Dispose() => _listener.Dispose();
    }
}
