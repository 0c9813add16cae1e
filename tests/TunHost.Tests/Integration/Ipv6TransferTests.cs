using System.Globalization;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// 100 MiB each way over IPv6 (<c>curl -6</c> to 2001:2::2) against the real kernel, exact by SHA-256: under
/// <c>--impair loss=1%,reorder=1%</c>, and with TUN offloads on (TSO6: super-packets both ways) and off. The kernel's
/// own IPv6 counters (<c>/proc/net/snmp6</c>) prove the data went over IPv6.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class Ipv6TransferTests(ITestOutputHelper output)
{
    private const long Length = 100L << 20;
    private const int MaxKernelTimeouts = 3;
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(60);

    [IntegrationTheory]
    [InlineData(TransferDirection.Download)]
    [InlineData(TransferDirection.Upload)]
    public async Task Over_ipv6_loss_and_reordering_are_recovered_and_every_byte_arrives(TransferDirection direction)
    {
        const string impair = "loss=1%,reorder=1%,seed=6";
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { ExtraArgs = ["--impair", impair] });

        var (report, ipv6Packets) = await TransferAsync(ns, direction, $"over IPv6 under --impair {impair}");
        host.Check(report.Succeeded, report.Describe());
        CheckCarriedByIpv6(host, report, ipv6Packets);
        host.Check(report.KernelTimeouts <= MaxKernelTimeouts,
            $"the kernel's retransmission timer expired {report.KernelTimeouts} times (at most {MaxKernelTimeouts})\n{report.Describe()}");
        string data = direction == TransferDirection.Download ? "outbound" : "inbound";
        long dropped = report.Stat("impairment", data, "dropped") ?? 0;
        long reordered = report.Stat("impairment", data, "reordered") ?? 0;
        host.Check(dropped > 0 && reordered > 0,
            $"expected loss and reordering on the {data} path, /stats shows {dropped} dropped, {reordered} reordered\n{report.Describe()}");
    }

    [IntegrationTheory]
    [InlineData("on", TransferDirection.Download)]
    [InlineData("on", TransferDirection.Upload)]
    [InlineData("off", TransferDirection.Download)]
    [InlineData("off", TransferDirection.Upload)]
    public async Task Over_ipv6_bytes_arrive_exactly_with_offloads_on_and_off(string offload, TransferDirection direction)
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { ExtraArgs = ["--offload", offload] });
        bool on = offload == "on";
        host.Check(host.Log.Contains(on ? "offload csum,tso4,tso6" : "offload off", StringComparison.Ordinal),
            $"the ready line does not say offload {offload}");

        var (report, ipv6Packets) = await TransferAsync(ns, direction, $"over IPv6 with --offload {offload}");
        host.Check(report.Succeeded, report.Describe());
        CheckCarriedByIpv6(host, report, ipv6Packets);

        // TSO6 really carried the data direction (super-packets sent or received), and nothing of the kind without offloads.
        long sent = report.Stat("counters", "superPacketsSent") ?? -1;
        long received = report.Stat("counters", "superPacketsReceived") ?? -1;
        if (!on)
            host.Check(sent == 0 && received == 0, $"super-packets without offloads: sent {sent}, received {received}");
        else if (direction == TransferDirection.Download)
            host.Check(sent > 100, $"a 100 MiB IPv6 download sent only {sent} super-packets (TSO6)\n{report.Describe()}");
        else
            host.Check(received > 100, $"a 100 MiB IPv6 upload brought only {received} super-packets\n{report.Describe()}");
    }

    /// <summary>Runs the transfer and returns its report with how many IPv6 packets the kernel moved the data's way.</summary>
    private async Task<(TransferReport Report, long Ipv6Packets)> TransferAsync(NetNamespace ns, TransferDirection direction, string context)
    {
        var before = await ReadSnmp6Async(ns);
        var transfer = new BulkTransfer
        {
            Direction = direction,
            Length = Length,
            TimeLimit = TimeLimit,
            Context = context,
            Ipv6 = true,
        };
        TransferReport report = await transfer.RunAsync(ns);
        var after = await ReadSnmp6Async(ns);
        output.WriteLine(report.Describe());
        // The kernel receives the download and sends the upload.
        string counter = direction == TransferDirection.Download ? "Ip6InReceives" : "Ip6OutRequests";
        long packets = after.GetValueOrDefault(counter) - before.GetValueOrDefault(counter);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kernel {counter} during the transfer: {packets}"));
        return (report, packets);
    }

    private static void CheckCarriedByIpv6(StackHost host, TransferReport report, long ipv6Packets) =>
        // Even as 64 KiB super-packets, 100 MiB is at least 1600 IPv6 packets.
        host.Check(ipv6Packets >= Length / 65536,
            $"the kernel counted only {ipv6Packets} IPv6 packets the data's way: the transfer did not go over IPv6\n{report.Describe()}");

    /// <summary>The namespace's IPv6 counters (<c>/proc/net/snmp6</c>: one "Name value" per line).</summary>
    private static async Task<Dictionary<string, long>> ReadSnmp6Async(NetNamespace ns)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(15), "cat", "/proc/net/snmp6");
        var counters = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!r.Succeeded)
            return counters;
        foreach (string line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 2 && long.TryParse(f[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long value))
                counters[f[0]] = value;
        }
        return counters;
    }
}
