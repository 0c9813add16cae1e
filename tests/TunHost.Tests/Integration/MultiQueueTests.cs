using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// <c>--queues</c> against the real kernel: a multi-queue TUN device with one engine shard and thread per queue. The
/// kernel spreads flows over the queues by its own hash; a packet that arrives on a queue whose shard does not own its
/// connection is handed over. Many connections at once, both ways, every byte exact; each shard took connections.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class MultiQueueTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);
    private static string Url => $"http://{StackHost.StackAddress}";

    [IntegrationTheory]
    [InlineData("on")]
    [InlineData("off")]
    public async Task Two_queues_serve_many_connections_both_ways_with_every_byte_exact(string offload)
    {
        await using var ns = new NetNamespace(output);
        // The host makes tun0 itself, multi-queue; a device made by `ip tuntap add` without multi_queue has one queue.
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions
        {
            Mode = DeviceMode.Create,
            ExtraArgs = ["--queues", "2", "--offload", offload],
        });
        host.Check(host.Log.Contains("; 2 queues", StringComparison.Ordinal), "the ready line does not say 2 queues");

        // 12 downloads and 4 uploads at once, over fresh connections (fresh ports: the kernel hashes them apart).
        const int downloads = 12, uploads = 4;
        const int downloadLength = 8 << 20, uploadLength = 8 << 20;
        string uploadFile = Path.Combine(Path.GetTempPath(), $"tunstack-mq-{Guid.NewGuid():N}.bin");
        var data = new byte[uploadLength];
        new Random(7).NextBytes(data);
        await File.WriteAllBytesAsync(uploadFile, data);
        try
        {
            string expectedUpload = Convert.ToHexStringLower(SHA256.HashData(data));
            string expectedDownload = ExpectedBytes.Sha256(downloadLength);
            var work = Enumerable.Range(0, downloads).Select(_ => ns.RunAsync(CommandTimeout, "sh", "-c",
                    $"curl -sS -m 50 {Url}/bytes/{downloadLength} | sha256sum"))
                .Concat(Enumerable.Range(0, uploads).Select(_ => ns.RunAsync(CommandTimeout, "curl", "-sS", "-m", "50",
                    "--data-binary", "@" + uploadFile, "-H", "Content-Type: application/octet-stream", $"{Url}/sha256")))
                .ToArray();
            var results = await Task.WhenAll(work);
            for (int i = 0; i < downloads; i++)
            {
                host.Check(results[i].Succeeded, $"download {i} failed: {results[i]}");
                host.Check(results[i].Stdout.StartsWith(expectedDownload, StringComparison.Ordinal),
                    $"download {i}: sha256 {results[i].Stdout.Trim()}, expected {expectedDownload}");
            }
            for (int i = downloads; i < results.Length; i++)
            {
                host.Check(results[i].Succeeded, $"upload {i - downloads} failed: {results[i]}");
                host.Check(results[i].Stdout.Contains(expectedUpload, StringComparison.Ordinal),
                    $"upload {i - downloads}: the stack hashed {results[i].Stdout.Trim()}, expected {expectedUpload}");
            }
        }
        finally
        {
            File.Delete(uploadFile);
        }

        var stats = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "5", $"{Url}/stats");
        host.Check(stats.Succeeded, $"/stats failed: {stats}");
        using var doc = JsonDocument.Parse(stats.Stdout);
        var shards = doc.RootElement.GetProperty("shards").EnumerateArray().ToArray();
        host.Check(shards.Length == 2, $"{shards.Length} shards in /stats");
        string perShard = string.Join("; ", shards.Select(s => s.ToString()));
        output.WriteLine("shards: " + perShard);
        // 17 connections (16 and the /stats one) each land on a shard by their four-tuple's hash: both take some.
        foreach (var shard in shards)
            host.Check(shard.GetProperty("passiveOpens").GetInt64() > 0, $"a shard took no connection: {perShard}");
        var drops = doc.RootElement.GetProperty("drops");
        host.Check(!drops.TryGetProperty("ShardQueueFull", out _), $"packets dropped between shards: {drops}");
        host.Check(!drops.TryGetProperty("InternalError", out _), $"internal errors: {drops}");
    }

    [IntegrationFact]
    public async Task A_single_queue_device_made_beforehand_keeps_one_queue()
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { ExtraArgs = ["--queues", "2"] });
        host.Check(!host.Log.Contains("; 2 queues", StringComparison.Ordinal), "a single-queue tun0 got several queues");
        var r = await ns.RunAsync(CommandTimeout, "sh", "-c", $"curl -sS -m 20 {Url}/bytes/3000000 | sha256sum");
        host.Check(r.Succeeded && r.Stdout.StartsWith(ExpectedBytes.Sha256(3_000_000), StringComparison.Ordinal), $"curl: {r}");
    }
}
