using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using TunStack.Host.Forwarding;
using TunStack.Tests.Api;

namespace TunStack.Host.Tests.Forwarding;

/// <summary>
/// The forwarder's relay without a TUN device: a client stack connects to 198.19.0.5 over a link to the forwarding
/// stack, which relays to a kernel socket on 127.0.0.1 (<c>--map 198.19.0.0/16=127.0.0.1</c>).
/// </summary>
public sealed class ForwarderRelayTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private static async Task<(LinkedStacks Stacks, Socket Upstream, CancellationTokenSource Stop, Task Running)> StartAsync(TimeSpan idle)
    {
        var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp);
        upstream.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        upstream.Listen();
        AddressMap.TryParse("198.19.0.0/16=127.0.0.1", out var map, out _);
        var forwarder = new Forwarder(new ForwardOptions { Maps = [map!], IdleTimeout = idle, ConnectTimeout = TimeSpan.FromSeconds(5) }, TextWriter.Null);
        var stacks = await LinkedStacks.StartAsync();
        var stop = new CancellationTokenSource();
        var running = forwarder.RunAsync(stacks.Server, stop.Token);
        return (stacks, upstream, stop, running);
    }

    private static IPEndPoint Routed(Socket upstream) => new(IPAddress.Parse("198.19.0.5"), ((IPEndPoint)upstream.LocalEndPoint!).Port);

    [Fact]
    public async Task Bytes_and_half_close_cross_the_relay_both_ways()
    {
        var (stacks, upstream, stop, running) = await StartAsync(TimeSpan.FromMinutes(1));
        await using var _ = stacks;
        using var __ = upstream;
        await using var client = await stacks.Client.ConnectAsync(Routed(upstream)).WaitAsync(Deadline);
        using var accepted = await upstream.AcceptAsync().WaitAsync(Deadline);

        var request = RandomNumberGenerator.GetBytes(500_000);
        var stream = client.GetStream();
        await stream.WriteAsync(request);
        stream.CompleteWrites();
        var received = new MemoryStream();
        await using (var network = new NetworkStream(accepted, ownsSocket: false))
            await network.CopyToAsync(received).WaitAsync(Deadline); // ends at the client's FIN, relayed
        Assert.Equal(request, received.ToArray());

        var answer = RandomNumberGenerator.GetBytes(300_000);
        await accepted.SendAsync(answer);
        accepted.Shutdown(SocketShutdown.Send);
        var back = new MemoryStream();
        await stream.CopyToAsync(back).WaitAsync(Deadline); // ends at the upstream's FIN, relayed
        Assert.Equal(answer, back.ToArray());
        await stop.CancelAsync();
        await running.WaitAsync(Deadline);
    }

    [Fact]
    public async Task An_idle_relay_is_reset_on_both_sides()
    {
        var (stacks, upstream, stop, running) = await StartAsync(TimeSpan.FromMilliseconds(300));
        await using var _ = stacks;
        using var __ = upstream;
        await using var client = await stacks.Client.ConnectAsync(Routed(upstream)).WaitAsync(Deadline);
        using var accepted = await upstream.AcceptAsync().WaitAsync(Deadline);
        var started = DateTime.UtcNow;

        var clientRead = Assert.ThrowsAsync<SocketException>(() => client.Input.ReadAsync().AsTask().WaitAsync(Deadline));
        var upstreamRead = Assert.ThrowsAsync<SocketException>(() => accepted.ReceiveAsync(new byte[10], SocketFlags.None).WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionReset, (await clientRead).SocketErrorCode);
        Assert.Equal(SocketError.ConnectionReset, (await upstreamRead).SocketErrorCode);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250), "reset before the idle timeout");
        await stop.CancelAsync();
        await running.WaitAsync(Deadline);
    }

    [Fact]
    public async Task A_refused_upstream_resets_the_client_after_the_handshake()
    {
        var (stacks, upstream, stop, running) = await StartAsync(TimeSpan.FromMinutes(1));
        await using var _ = stacks;
        var target = Routed(upstream);
        upstream.Dispose(); // nothing listens there any more: the kernel refuses
        await using var client = await stacks.Client.ConnectAsync(target).WaitAsync(Deadline); // our handshake succeeds
        var reset = await Assert.ThrowsAsync<SocketException>(() => client.Input.ReadAsync().AsTask().WaitAsync(Deadline));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);
        await stop.CancelAsync();
        await running.WaitAsync(Deadline);
    }
}
