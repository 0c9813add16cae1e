using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// 10,000 idle HTTP keep-alive connections at once: a Python client (<c>idle_connections.py</c>, its descriptor limit
/// raised) opens them 50 at a time, makes one request on each and keeps them all. The host holds them within 64 MB of
/// resident memory, then serves one more request on every one of them, still within 64 MB, and lets them all go when
/// the client closes them.
/// </summary>
[Collection(IntegrationCollection.Name)]
[Trait("Category", "Load")]
public sealed class IdleConnectionsTests(ITestOutputHelper output)
{
    private const int Connections = 10_000;
    private const int InProgress = 50;
    private const long LimitBytes = 64L * 1024 * 1024;

    [IntegrationFact]
    public async Task Ten_thousand_idle_keep_alive_connections_fit_in_64_megabytes_and_are_all_served_again()
    {
        string tunstack = await AotHost.GetAsync(output);
        await using var ns = new NetNamespace(output);
        await using var host = await StackHost.StartAsync(ns, output, new StackHostOptions { Executable = tunstack });
        var empty = HostMemory.Of(host);

        var client = ns.StartStreaming("python3", SynFloodTests.Script("idle_connections.py"), StackHost.StackAddress, "80",
            Connections.ToString(CultureInfo.InvariantCulture), InProgress.ToString(CultureInfo.InvariantCulture));
        try
        {
            string opened = await ReadLineAsync(client, host, "open ", TimeSpan.FromSeconds(180));
            var held = await HostMemory.SettledAsync(host, TimeSpan.FromSeconds(15));
            using (var stats = await HostStats.GetAsync(ns, host))
            {
                // The /stats request is one more established connection.
                host.Check(stats.State("Established") == Connections + 1,
                    $"{stats.State("Established")} established, expected {Connections} and the query: {stats.RootElement.GetProperty("connectionStates")}");
                host.Check(stats.RootElement.GetProperty("memory").GetProperty("applicationConnections").GetInt32() == Connections + 1,
                    "the services do not hold every connection");
                stats.CheckNoInternalError(host);
            }
            output.WriteLine($"{opened}: host empty {empty}; holding {Connections} idle connections {held}; " +
                $"{(held.ResidentBytes - empty.ResidentBytes) / (double)Connections:F0} bytes of resident memory each");
            host.Check(held.ResidentBytes <= LimitBytes, $"holding {Connections} idle connections: {held}, more than 64 MB");

            await client.StandardInput.WriteLineAsync("again");
            await client.StandardInput.FlushAsync();
            string served = await ReadLineAsync(client, host, "served ", TimeSpan.FromSeconds(180));
            var after = await HostMemory.SettledAsync(host, TimeSpan.FromSeconds(15));
            output.WriteLine($"{served}: {after}");
            host.Check(served.StartsWith($"served {Connections} ", StringComparison.Ordinal), $"client: {served}");
            host.Check(after.ResidentBytes <= LimitBytes, $"after serving all {Connections} again: {after}, more than 64 MB");

            await client.StandardInput.WriteLineAsync("close");
            await client.StandardInput.FlushAsync();
            await ReadLineAsync(client, host, "closed ", TimeSpan.FromSeconds(60));
            // 10,000 FINs at once overflow tun0's queue (500 packets): the kernel retransmits the lost ones, seconds
            // later. An orphaned socket the kernel gives up on under memory pressure sends one RST, and if that is lost
            // too, only the HTTP service's idle timeout (2 min) ends the connection: hence the long deadline.
            var drained = await ConnectionChurnTests.WaitForEmptyTableAsync(ns, host, TimeSpan.FromSeconds(150));
            output.WriteLine($"all closed; the table was empty {drained.TotalSeconds:F1} s later; {HostMemory.Of(host)}");
        }
        finally
        {
            ProcessRunner.KillQuietly(client);
        }
    }

    /// <summary>The client's next line, which must start with <paramref name="prefix"/> (it prints "error: ..." otherwise).</summary>
    private static async Task<string> ReadLineAsync(Process client, StackHost host, string prefix, TimeSpan timeout)
    {
        string? line;
        try
        {
            line = await client.StandardOutput.ReadLineAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            line = $"(nothing within {timeout.TotalSeconds:F0} s)";
        }
        if (line is null || !line.StartsWith(prefix, StringComparison.Ordinal))
        {
            string stderr = client.HasExited ? await client.StandardError.ReadToEndAsync() : "";
            host.Check(false, $"client said '{line}', expected '{prefix}...'; stderr: {stderr}");
        }
        return line!;
    }
}
