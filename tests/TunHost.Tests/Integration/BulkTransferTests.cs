using System.Globalization;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// A gigabyte each way against the real kernel, at the Ethernet MTU and at the largest TUN MTU, each in its own
/// namespace: the download compared byte by byte with the pattern, the upload (content without a period) by the
/// SHA-256 the stack computes of what it received.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class BulkTransferTests(ITestOutputHelper output)
{
    private const long Gigabyte = 1L << 30;

    /// <summary>Generous for a loaded two-core machine; a fast engine needs a few seconds.</summary>
    private static readonly TimeSpan TimeLimit = TimeSpan.FromSeconds(120);

    [IntegrationTheory]
    [InlineData(1500)]
    [InlineData(65520)]
    public async Task A_gigabyte_download_arrives_intact(int mtu) =>
        await TransferAsync(TransferDirection.Download, mtu);

    [IntegrationTheory]
    [InlineData(1500)]
    [InlineData(65520)]
    public async Task A_gigabyte_upload_arrives_intact(int mtu) =>
        await TransferAsync(TransferDirection.Upload, mtu);

    private async Task TransferAsync(TransferDirection direction, int mtu)
    {
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Mtu = mtu });

        var transfer = new BulkTransfer
        {
            Direction = direction,
            Length = Gigabyte,
            TimeLimit = TimeLimit,
            Context = string.Create(CultureInfo.InvariantCulture, $"at MTU {mtu}"),
        };
        TransferReport report = await transfer.RunAsync(ns);
        output.WriteLine(report.Describe());
        host.Check(report.Succeeded, report.Describe());
    }
}
