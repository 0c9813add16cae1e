using System.Net;
using TunStack.Host.Forwarding;

namespace TunStack.Host.Tests.Forwarding;

public sealed class ForwardOptionsTests
{
    [Theory]
    [InlineData("198.19.0.0/16=127.0.0.1", "198.19.0.0/16", "127.0.0.1")]
    [InlineData("2001:2:1::/48=::1", "2001:2:1::/48", "::1")]
    public void A_map_parses_network_and_target(string text, string network, string target)
    {
        Assert.True(AddressMap.TryParse(text, out var map, out string? problem), problem);
        Assert.Equal(IPNetwork.Parse(network), map.Network);
        Assert.Equal(IPAddress.Parse(target), map.Target);
    }

    [Theory]
    [InlineData("198.19.0.0/16", "expected CIDR=ADDRESS")]
    [InlineData("198.19.0.0/33=127.0.0.1", "not a network")]
    [InlineData("198.19.0.0/16=localhost", "not an IP address")]
    public void A_bad_map_says_what_is_wrong(string text, string why)
    {
        Assert.False(AddressMap.TryParse(text, out _, out string? problem));
        Assert.Contains(why, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void The_first_matching_map_rewrites_the_address_and_keeps_the_port()
    {
        AddressMap.TryParse("198.19.1.0/24=127.0.0.2", out var narrow, out _);
        AddressMap.TryParse("198.19.0.0/16=127.0.0.1", out var wide, out _);
        var options = new ForwardOptions { Maps = [narrow!, wide!] };
        Assert.Equal(IPEndPoint.Parse("127.0.0.2:8000"), options.Upstream(IPEndPoint.Parse("198.19.1.9:8000")));
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:443"), options.Upstream(IPEndPoint.Parse("198.19.7.7:443")));
        Assert.Equal(IPEndPoint.Parse("203.0.113.1:80"), options.Upstream(IPEndPoint.Parse("203.0.113.1:80"))); // direct
    }

    [Fact]
    public async Task The_socks5_client_speaks_rfc_1928_and_reports_a_refusal()
    {
        using var proxy = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        proxy.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        proxy.Listen();
        var serving = Task.Run(async () =>
        {
            using var c = await proxy.AcceptAsync();
            var buffer = new byte[64];
            Assert.Equal(3, await c.ReceiveAsync(buffer.AsMemory(0, 3)));
            Assert.Equal(new byte[] { 5, 1, 0 }, buffer[..3]);       // VER, NMETHODS, no authentication
            await c.SendAsync(new byte[] { 5, 0 });
            Assert.Equal(10, await c.ReceiveAsync(buffer.AsMemory(0, 10)));
            Assert.Equal(new byte[] { 5, 1, 0, 1, 198, 19, 0, 5, 0x1F, 0x40 }, buffer[..10]); // CONNECT 198.19.0.5:8000
            await c.SendAsync(new byte[] { 5, 5, 0, 1, 0, 0, 0, 0, 0, 0 }); // REP 5: connection refused
        });
        using var client = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await client.ConnectAsync(proxy.LocalEndPoint!);
        var refused = await Assert.ThrowsAsync<Socks5Exception>(
            () => Socks5Client.ConnectAsync(client, IPEndPoint.Parse("198.19.0.5:8000"), CancellationToken.None));
        Assert.Equal(5, refused.Reply);
        Assert.Contains("connection refused", refused.Message, StringComparison.Ordinal);
        await serving.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
