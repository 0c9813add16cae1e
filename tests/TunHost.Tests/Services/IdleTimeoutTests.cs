using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Xunit;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

/// <summary>
/// The idle timeout of the services, on a fake clock: a connection that waits longer than the timeout for its peer is
/// closed (HTTP answers 408 when part of a request had come), and one whose peer stopped taking data is ended with an
/// error (a reset on a stack connection). Before the timeout nothing happens.
/// </summary>
public sealed class IdleTimeoutTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(30);

    private static FakeTimeProvider NewClock() => new(DateTimeOffset.UnixEpoch + TimeSpan.FromDays(365));

    /// <summary>
    /// Moves the fake clock on by a timeout and a sweep at a time until <paramref name="until"/> completes (bounded in
    /// real time). A service runs on the thread pool, so the test cannot know at which instant of the fake clock it began
    /// waiting; each step is enough for any wait begun before it to expire. The monitor's own tests check the exact
    /// instant.
    /// </summary>
    private static async Task AdvanceUntilAsync(FakeTimeProvider clock, IdleMonitor monitor, Task until)
    {
        var deadline = DateTime.UtcNow + ServiceHarness.Timeout;
        while (!until.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, "the service did not act on the idle timeout");
            if (monitor.WaitingCount > 0)
                clock.Advance(monitor.Timeout + monitor.SweepPeriod);
            await Task.WhenAny(until, Task.Delay(10));
        }
    }

    [Fact]
    public async Task Monitor_cancels_a_read_that_waited_the_whole_timeout_and_not_before()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Idle, clock);
        var pipe = new Pipe();
        var output = new Pipe();
        using IdleWatch watch = monitor.Watch(pipe.Reader, output.Writer);
        Assert.Equal(1, monitor.Count);

        watch.BeginWait();
        var read = pipe.Reader.ReadAsync().AsTask();
        clock.Advance(Idle - TimeSpan.FromSeconds(1));
        Assert.False(read.IsCompleted);
        Assert.False(watch.Expired);

        clock.Advance(TimeSpan.FromSeconds(1) + monitor.SweepPeriod);
        ReadResult result = await read.WaitAsync(ServiceHarness.Timeout);
        Assert.True(result.IsCanceled);
        Assert.True(watch.Expired);
        Assert.False(watch.ExpiredInFlush);
        Assert.Equal(1, monitor.Expirations);
    }

    [Fact]
    public void Monitor_leaves_alone_a_connection_that_is_not_waiting()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Idle, clock);
        var pipe = new Pipe();
        var output = new Pipe();
        using IdleWatch watch = monitor.Watch(pipe.Reader, output.Writer);

        watch.BeginWait();
        watch.EndWait(); // the peer answered; the service is busy with it
        clock.Advance(Idle * 10);

        Assert.False(watch.Expired);
        Assert.Equal(0, monitor.Expirations);
        Assert.False(pipe.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Monitor_cancels_a_flush_the_peer_never_drains()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Idle, clock);
        var input = new Pipe();
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 10, resumeWriterThreshold: 5));
        using IdleWatch watch = monitor.Watch(input.Reader, output.Writer);

        output.Writer.Write(new byte[100].AsSpan());
        watch.BeginWait(flush: true);
        var flush = output.Writer.FlushAsync().AsTask();
        Assert.False(flush.IsCompleted);
        clock.Advance(Idle + monitor.SweepPeriod);

        FlushResult result = await flush.WaitAsync(ServiceHarness.Timeout);
        Assert.True(result.IsCanceled);
        Assert.True(watch.ExpiredInFlush);
    }

    [Fact]
    public async Task A_connection_can_expire_again_in_a_later_wait()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Idle, clock);
        var input = new Pipe();
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 10, resumeWriterThreshold: 5));
        using IdleWatch watch = monitor.Watch(input.Reader, output.Writer);

        watch.BeginWait();
        var read = input.Reader.ReadAsync().AsTask();
        clock.Advance(Idle + monitor.SweepPeriod);
        Assert.True((await read.WaitAsync(ServiceHarness.Timeout)).IsCanceled);
        watch.EndWait();

        output.Writer.Write(new byte[100].AsSpan());
        watch.BeginWait(flush: true);
        var flush = output.Writer.FlushAsync().AsTask();
        clock.Advance(Idle + monitor.SweepPeriod);
        Assert.True((await flush.WaitAsync(ServiceHarness.Timeout)).IsCanceled);
        Assert.True(watch.ExpiredInFlush);
        Assert.Equal(2, monitor.Expirations);
    }

    [Fact]
    public async Task The_stop_token_cancels_a_pending_read_once_per_connection()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Idle, clock);
        using var stop = new CancellationTokenSource();
        var pipe = new Pipe();
        var output = new Pipe();
        using IdleWatch watch = monitor.Watch(pipe.Reader, output.Writer, stop.Token);

        var read = pipe.Reader.ReadAsync().AsTask();
        await stop.CancelAsync();

        ReadResult result = await read.WaitAsync(ServiceHarness.Timeout);
        Assert.True(result.IsCanceled);
        Assert.True(watch.Stopped);
        Assert.False(watch.Expired);
    }

    [Fact]
    public void An_infinite_timeout_watches_nothing()
    {
        var clock = NewClock();
        using var monitor = new IdleMonitor(Timeout.InfiniteTimeSpan, clock);
        var pipe = new Pipe();
        var output = new Pipe();
        using IdleWatch watch = monitor.Watch(pipe.Reader, output.Writer);
        watch.BeginWait();
        clock.Advance(TimeSpan.FromDays(30));

        Assert.Equal(0, monitor.Count);
        Assert.False(watch.Expired);
        Assert.Throws<ArgumentOutOfRangeException>(() => new IdleMonitor(TimeSpan.Zero, clock));
    }

    [Fact]
    public async Task Http_closes_a_keep_alive_connection_idle_for_the_timeout()
    {
        var clock = NewClock();
        var http = new HttpService(timeProvider: clock) { IdleTimeout = Idle };
        var h = ServiceHarness.Start(http);

        await h.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, (await h.ReadResponseAsync()).StatusCode);

        // Less than the timeout later a second request is still served on the same connection.
        clock.Advance(Idle - TimeSpan.FromSeconds(2));
        await h.SendAsync("GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse second = await h.ReadResponseAsync();
        Assert.Equal("012", second.BodyText);

        // Then nothing for the whole timeout: our FIN, and not a byte more (between requests there is nothing to say).
        await AdvanceUntilAsync(clock, http.Idle, h.Handler);
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
        Assert.True(http.Idle.Expirations >= 1, "not ended by the idle timeout");
        Assert.Equal(0, http.Idle.Count);
    }

    [Fact]
    public async Task Http_answers_408_to_a_request_head_that_stops_coming()
    {
        var clock = NewClock();
        var http = new HttpService(timeProvider: clock) { IdleTimeout = Idle };
        var h = ServiceHarness.Start(http);

        await h.SendAsync("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: slow"); // no end of the head
        await AdvanceUntilAsync(clock, http.Idle, h.Handler);

        HttpResponse response = await h.ReadResponseAsync();
        Assert.Equal(408, response.StatusCode);
        Assert.Equal("Request Timeout", response.Reason);
        Assert.Equal("close", response.Header("Connection"));
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Http_answers_408_to_a_request_body_that_stops_coming()
    {
        var clock = NewClock();
        var http = new HttpService(timeProvider: clock) { IdleTimeout = Idle };
        var h = ServiceHarness.Start(http);

        await h.SendAsync("POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly forty bytes of the hundred promised");
        await AdvanceUntilAsync(clock, http.Idle, h.Handler);

        HttpResponse response = await h.ReadResponseAsync();
        Assert.Equal(408, response.StatusCode);
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Http_ends_with_an_error_a_download_the_peer_stopped_taking()
    {
        var clock = NewClock();
        var http = new HttpService(timeProvider: clock) { IdleTimeout = Idle };
        var h = ServiceHarness.Start(http);

        // The client asks for 10 MB and reads nothing: the server's flush waits on the full pipe.
        await h.SendAsync("GET /bytes/10000000 HTTP/1.1\r\nHost: x\r\n\r\n");
        await AdvanceUntilAsync(clock, http.Idle, h.Handler);
        await h.WaitHandlerAsync();
        Assert.True(http.Idle.Expirations >= 1, "not ended by the idle timeout");

        // Completed with an error, which a stack connection turns into a reset rather than a FIN behind the data.
        var e = await Assert.ThrowsAsync<TimeoutException>(() => h.ReadToEndAsync());
        Assert.Contains("idle timeout", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Echo_closes_an_idle_connection_and_resets_one_that_does_not_read()
    {
        var clock = NewClock();
        var echo = new EchoService { IdleTimeout = Idle, TimeProvider = clock };

        var idle = ServiceHarness.Start(echo);
        await idle.SendAsync("ping");
        ReadResult pong = await idle.ClientInput.ReadAsync().AsTask().WaitAsync(ServiceHarness.Timeout);
        Assert.Equal("ping", Encoding.ASCII.GetString(pong.Buffer));
        idle.ClientInput.AdvanceTo(pong.Buffer.End);
        await AdvanceUntilAsync(clock, echo.Idle, idle.Handler);
        await idle.AssertServerClosedAsync();
        await idle.WaitHandlerAsync();

        // A peer that sends but never reads: the echo's flush waits on the full pipe until the timeout.
        var stalled = ServiceHarness.Start(echo);
        _ = stalled.ClientOutput.WriteAsync(new byte[200_000]).AsTask();
        // Once the service waits in its flush (200 KB against a 64 KiB pipe), time it out there, not in the read before,
        // where the test's jump of the clock would race with the bytes arriving.
        var deadline = DateTime.UtcNow + ServiceHarness.Timeout;
        while (echo.Idle.FlushWaitingCount == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the echo did not start echoing");
            await Task.Delay(5);
        }
        await AdvanceUntilAsync(clock, echo.Idle, stalled.Handler);
        await stalled.WaitHandlerAsync();
        // On a stack connection that is a reset (TunStackConnection.Abort); this harness's stream is only closed, after
        // the bytes the echo had written before it gave up.
        byte[] echoed = await stalled.ReadToEndAsync();
        Assert.InRange(echoed.Length, 1, 200_000);
        Assert.True(echo.Idle.Expirations >= 2, $"{echo.Idle.Expirations} expirations");
    }

    [Fact]
    public async Task Discard_closes_a_connection_that_sends_nothing()
    {
        var clock = NewClock();
        var discard = new DiscardService { IdleTimeout = Idle, TimeProvider = clock };
        var h = ServiceHarness.Start(discard);

        await h.SendAsync("some bytes");
        await AdvanceUntilAsync(clock, discard.Idle, h.Handler);

        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
        Assert.Equal(10, discard.BytesDiscarded);
    }

    [Fact]
    public void Services_default_to_a_two_minute_idle_timeout()
    {
        Assert.Equal(TimeSpan.FromMinutes(2), new HttpService().IdleTimeout);
        Assert.Equal(TimeSpan.FromMinutes(2), new EchoService().IdleTimeout);
        Assert.Equal(TimeSpan.FromMinutes(2), new DiscardService().IdleTimeout);
    }
}
