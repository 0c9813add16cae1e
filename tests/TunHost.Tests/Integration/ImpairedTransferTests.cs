using System.Globalization;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// 100 MiB each way with 1% loss and 1% reordering injected by <c>tunstack --impair</c> in both directions, for
/// three seeds, each in its own namespace. Recovery must come from SACK and fast retransmission, not from the
/// retransmission timer: the kernel may time out at most <see cref="MaxKernelTimeouts"/> times per transfer.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class ImpairedTransferTests(ITestOutputHelper output)
{
    private const long Length = 100L << 20;
    private const int MaxKernelTimeouts = 3;
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(60);

    [IntegrationTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task A_download_recovers_from_loss_and_reordering(int seed) =>
        await TransferAsync(TransferDirection.Download, seed);

    [IntegrationTheory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task An_upload_recovers_from_loss_and_reordering(int seed) =>
        await TransferAsync(TransferDirection.Upload, seed);

    private async Task TransferAsync(TransferDirection direction, int seed)
    {
        string impair = string.Create(CultureInfo.InvariantCulture, $"loss=1%,reorder=1%,seed={seed}");
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { ExtraArgs = ["--impair", impair] });
        host.Check(host.Log.Contains($"impair {impair}", StringComparison.Ordinal), $"the ready line does not show --impair {impair}");

        var transfer = new BulkTransfer
        {
            Direction = direction,
            Length = Length,
            TimeLimit = TimeLimit,
            Context = $"under --impair {impair}",
        };
        TransferReport report = await transfer.RunAsync(ns);
        output.WriteLine(report.Describe());
        host.Check(report.Succeeded, report.Describe());
        host.Check(report.KernelTimeouts <= MaxKernelTimeouts,
            $"the kernel's retransmission timer expired {report.KernelTimeouts} times (at most {MaxKernelTimeouts}): " +
            $"recovery should come from SACK and fast retransmission\n{report.Describe()}");

        // The data direction really was impaired: packets were lost and reordered on the way.
        string data = direction == TransferDirection.Download ? "outbound" : "inbound";
        long dropped = report.Stat("impairment", data, "dropped") ?? 0;
        long reordered = report.Stat("impairment", data, "reordered") ?? 0;
        host.Check(dropped > 0 && reordered > 0,
            $"expected loss and reordering on the {data} path, /stats shows {dropped} dropped, {reordered} reordered\n{report.Describe()}");
    }
}
