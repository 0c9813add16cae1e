using Xunit;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

public sealed class DiscardServiceTests
{
    [Fact]
    public void Describes_itself_as_RFC_863()
    {
        var discard = new DiscardService();
        Assert.Equal("discard", discard.Name);
        Assert.Equal(9, discard.Port);
    }

    [Fact]
    public async Task Drops_everything_counts_it_and_closes_after_the_peer()
    {
        var discard = new DiscardService();
        var h = ServiceHarness.Start(discard);
        byte[] chunk = new byte[40_000];
        for (int i = 0; i < 30; i++)
        {
            await h.SendAsync(chunk);
        }

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync(); // no byte ever comes back
        await h.WaitHandlerAsync();
        Assert.Equal(1_200_000, discard.BytesDiscarded);
    }

    [Fact]
    public async Task Counts_across_connections()
    {
        var discard = new DiscardService();
        var a = ServiceHarness.Start(discard);
        var b = ServiceHarness.Start(discard);
        await a.SendAsync("12345");
        await b.SendAsync("1234567");
        await a.CloseClientAsync();
        await b.CloseClientAsync();
        await a.AssertServerClosedAsync();
        await b.AssertServerClosedAsync();
        await Task.WhenAll(a.Handler, b.Handler).WaitAsync(ServiceHarness.Timeout);
        Assert.Equal(12, discard.BytesDiscarded);
    }

    [Fact]
    public async Task Returns_quietly_when_the_connection_is_reset()
    {
        var discard = new DiscardService();
        var h = ServiceHarness.Start(discard);
        await h.SendAsync("abc");
        await h.ClientOutput.CompleteAsync(new IOException("connection reset"));
        await h.WaitHandlerAsync();
        Assert.True(h.Handler.IsCompletedSuccessfully);
    }
}
