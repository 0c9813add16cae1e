using System.IO.Pipelines;
using System.Text;
using Xunit;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

public sealed class EchoServiceTests
{
    [Fact]
    public void Describes_itself_as_RFC_862()
    {
        var echo = new EchoService();
        Assert.Equal("echo", echo.Name);
        Assert.Equal(7, echo.Port);
    }

    [Fact]
    public async Task Echoes_then_closes_after_the_peer_half_closes()
    {
        var echo = new EchoService();
        var h = ServiceHarness.Start(echo);

        await h.SendAsync("hello, ");
        await h.SendAsync("world\n");
        await h.CloseClientAsync();

        byte[] back = await h.ReadToEndAsync();
        Assert.Equal("hello, world\n", Encoding.ASCII.GetString(back));
        await h.WaitHandlerAsync();
        Assert.Equal(13, echo.BytesEchoed);
    }

    [Fact]
    public async Task Answers_each_write_before_the_peer_closes()
    {
        var h = ServiceHarness.Start(new EchoService());

        await h.SendAsync("ping");
        ReadResult first = await h.ClientInput.ReadAsync().AsTask().WaitAsync(ServiceHarness.Timeout);
        Assert.Equal("ping", Encoding.ASCII.GetString(first.Buffer));
        Assert.False(first.IsCompleted);
        h.ClientInput.AdvanceTo(first.Buffer.End);

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Round_trips_a_megabyte_byte_for_byte()
    {
        var echo = new EchoService();
        var h = ServiceHarness.Start(echo);
        byte[] data = new byte[1 << 20];
        new Random(862).NextBytes(data);

        // Read while writing: the pipes push back once 64 KiB is in flight.
        Task<byte[]> reading = h.ReadToEndAsync();
        for (int i = 0; i < data.Length; i += 10_000)
        {
            await h.SendAsync(data.AsMemory(i, Math.Min(10_000, data.Length - i)));
        }

        await h.CloseClientAsync();
        byte[] back = await reading.WaitAsync(ServiceHarness.Timeout);
        Assert.Equal(data, back);
        await h.WaitHandlerAsync();
        Assert.Equal(data.Length, echo.BytesEchoed);
    }

    [Fact]
    public async Task Returns_quietly_when_the_connection_is_reset()
    {
        var h = ServiceHarness.Start(new EchoService());
        await h.SendAsync("abc");
        await h.ClientOutput.CompleteAsync(new IOException("connection reset"));
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Returns_quietly_when_cancelled()
    {
        using var cts = new CancellationTokenSource();
        var h = ServiceHarness.Start(new EchoService(), cancellationToken: cts.Token);
        await h.SendAsync("abc");
        await cts.CancelAsync();
        await h.WaitHandlerAsync();
        Assert.True(h.Handler.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Stops_when_the_peer_no_longer_reads()
    {
        var h = ServiceHarness.Start(new EchoService());
        await h.ClientInput.CompleteAsync();
        await h.ClientOutput.WriteAsync("lost"u8.ToArray()).AsTask().WaitAsync(ServiceHarness.Timeout);
        await h.WaitHandlerAsync();
    }
}
