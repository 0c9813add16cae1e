using System.Net;
using TunStack.Wire;
using TunStack.Tests.Api;

namespace TunStack.Tests.Sharding;

/// <summary>
/// The public API's whole contract again with multi-queue stacks: the server with three engine shards on three loop
/// threads, the client with four, and every packet dealt to the next queue in turn, so that most packets arrive on a
/// queue whose shard does not own their connection and must be handed over. Connections, half-closes, resets,
/// timeouts, listeners, backpressure and diagnostics must behave exactly as with one queue.
/// </summary>
public sealed class ShardedConnectionContractTests : ConnectionContractTests
{
    protected override int Queues => 3;
}

/// <inheritdoc cref="ShardedConnectionContractTests"/>
public sealed class ShardedFlowAndForwardingTests : FlowAndForwardingTests
{
    protected override int Queues => 3;
}

/// <summary>What only a multi-queue stack has: packets handed between shards, and limits and counters across them.</summary>
public sealed class ShardedHostTests
{
    [Fact]
    public async Task Packets_on_a_queue_of_another_shard_are_handed_over_and_every_byte_arrives()
    {
        await using var s = await LinkedStacks.StartAsync(queues: 3);
        await using var listener = await s.Server.ListenAsync(9);
        const int connections = 12;
        var received = new long[connections];
        var serving = Task.Run(async () =>
        {
            var readers = new List<Task>();
            for (int i = 0; i < connections; i++)
            {
                var connection = await listener.AcceptAsync();
                readers.Add(Task.Run(async () =>
                {
                    await using (connection)
                    {
                        var stream = connection.GetStream();
                        var buffer = new byte[16384];
                        int first = await stream.ReadAsync(buffer);
                        long total = first;
                        int n;
                        while ((n = await stream.ReadAsync(buffer)) > 0) total += n;
                        received[buffer[0]] = total; // each client's bytes start with its number
                    }
                }));
            }
            await Task.WhenAll(readers);
        });

        var sending = Enumerable.Range(0, connections).Select(i => Task.Run(async () =>
        {
            await using var connection = await s.Client.ConnectAsync(new IPEndPoint(LinkedStacks.ServerAddress, 9));
            var data = new byte[200_000 + i];
            Array.Fill(data, (byte)i);
            await connection.Output.WriteAsync(data);
            await connection.Output.CompleteAsync();
            await connection.Closed.WaitAsync(TimeSpan.FromSeconds(30));
        })).ToArray();
        await Task.WhenAll(sending).WaitAsync(TimeSpan.FromSeconds(60));
        await serving.WaitAsync(TimeSpan.FromSeconds(60));

        for (int i = 0; i < connections; i++)
            Assert.Equal(200_000 + i, received[i]);
        var server = await s.Server.GetDiagnosticsAsync();
        var client = await s.Client.GetDiagnosticsAsync();
        // Dealt one by one over three queues, about two packets in three land on a shard that does not own them.
        Assert.True(server.Counters.PacketsHandedOff > server.Counters.PacketsReceived / 3,
            $"server: {server.Counters.PacketsHandedOff} of {server.Counters.PacketsReceived} packets handed over");
        Assert.True(client.Counters.PacketsHandedOff > 0, "client: no packet handed over");
        Assert.Equal(0, server.Counters.Dropped(DropReason.ShardQueueFull));
        Assert.Equal(connections, server.Counters.PassiveOpens);
        Assert.Equal(connections, client.Counters.ActiveOpens);
    }

    [Fact]
    public async Task The_connection_limit_is_the_whole_stacks_not_each_shards()
    {
        await using var s = await LinkedStacks.StartAsync(queues: 3, server: new TunStackOptions { MaxConnections = 4 });
        await using var listener = await s.Server.ListenAsync(7);
        var open = new List<TunStackConnection>();
        for (int i = 0; i < 4; i++)
            open.Add(await s.Client.ConnectAsync(new IPEndPoint(LinkedStacks.ServerAddress, 7)).WaitAsync(TimeSpan.FromSeconds(10)));
        // The fifth SYN is refused whichever shard owns it (dropped and counted: the client times out).
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await Assert.ThrowsAnyAsync<Exception>(async () => await s.Client.ConnectAsync(new IPEndPoint(LinkedStacks.ServerAddress, 7), timeout.Token));
        var server = await s.Server.GetDiagnosticsAsync();
        Assert.True(server.Counters.Dropped(DropReason.ConnectionLimit) > 0, "no SYN refused for the connection limit");
        foreach (var connection in open)
            await connection.DisposeAsync();
    }
}
