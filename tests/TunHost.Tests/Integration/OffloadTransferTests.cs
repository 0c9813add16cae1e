using System.Globalization;
using System.Text.Json;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// TUN offloads against the real kernel: with the virtio-net header (checksum and TCP segmentation offload) the
/// kernel hands the stack super-packets and the stack sends them, and without it every packet is one segment — either
/// way every byte arrives exactly, in both directions.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class OffloadTransferTests(ITestOutputHelper output)
{
    private const long Length = 100L << 20;
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(60);

    [IntegrationTheory]
    [InlineData("on", TransferDirection.Download)]
    [InlineData("on", TransferDirection.Upload)]
    [InlineData("off", TransferDirection.Download)]
    [InlineData("off", TransferDirection.Upload)]
    public async Task Bytes_arrive_exactly_with_offloads_on_and_off(string offload, TransferDirection direction)
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { ExtraArgs = ["--offload", offload] });
        bool on = offload == "on";
        host.Check(host.Log.Contains(on ? "offload csum,tso4,tso6" : "offload off", StringComparison.Ordinal),
            $"the ready line does not say offload {offload}");

        var transfer = new BulkTransfer
        {
            Direction = direction,
            Length = Length,
            TimeLimit = TimeLimit,
            Context = string.Create(CultureInfo.InvariantCulture, $"with --offload {offload}"),
        };
        TransferReport report = await transfer.RunAsync(ns);
        output.WriteLine(report.Describe());
        host.Check(report.Succeeded, report.Describe());

        // The super-packets really flowed the way of the data (and none at all without offloads).
        var stats = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sS", "-m", "5", $"http://{StackHost.StackAddress}/stats");
        host.Check(stats.Succeeded, $"/stats failed: {stats}");
        using var doc = JsonDocument.Parse(stats.Stdout);
        var counters = doc.RootElement.GetProperty("counters");
        long sent = counters.GetProperty("superPacketsSent").GetInt64();
        long received = counters.GetProperty("superPacketsReceived").GetInt64();
        if (!on)
            host.Check(sent == 0 && received == 0, $"super-packets without offloads: sent {sent}, received {received}");
        else if (direction == TransferDirection.Download)
            host.Check(sent > 100, $"a 100 MiB download sent only {sent} super-packets");
        else
            host.Check(received > 100, $"a 100 MiB upload brought only {received} super-packets");
    }

    [IntegrationFact]
    public async Task A_device_made_beforehand_without_offloads_is_attached_with_them()
    {
        // `ip tuntap add` makes a device without vnet_hdr; attaching with IFF_VNET_HDR and TUNSETOFFLOAD still works
        // (the flags belong to the attachment), so the default --offload on works on devices made by hand too.
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, DeviceMode.Attach);
        host.Check(host.Log.Contains("offload csum,tso4,tso6", StringComparison.Ordinal), "offloads not granted on an attached device");
        var features = await ns.RunAsync(TimeSpan.FromSeconds(10), "ethtool", "-k", StackHost.Device);
        if (features.Succeeded)
            host.Check(features.Stdout.Contains("tcp-segmentation-offload: on", StringComparison.Ordinal),
                $"the kernel does not segment-offload to tun0:\n{features.Stdout}");
        var r = await ns.RunAsync(TimeSpan.FromSeconds(30), "curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
            $"http://{StackHost.StackAddress}/bytes/3000000");
        host.Check(r.Succeeded && r.Stdout == "200", $"curl failed: {r}");
    }
}
