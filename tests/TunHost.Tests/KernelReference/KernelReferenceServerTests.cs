using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using TunStack.Host.KernelReference;
using TunStack.Host.Services;
using TunStack.Host.Tests.Services;

namespace TunStack.Host.Tests.KernelReference;

/// <summary>
/// The kernel reference server over loopback: the stack's services, unchanged, over kernel sockets. Its answers must
/// be the bytes the same service writes over the stack's pipes, and its pipes must close the way the stack's do.
/// </summary>
public sealed class KernelReferenceServerTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    // One clock for both servers so that the Date header matches.
    private static readonly TimeProvider Clock = new FixedClock(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    private readonly CancellationTokenSource _stop = new();
    private readonly EchoService _echo = new() { Port = 0 };
    private readonly DiscardService _discard = new() { Port = 0 };
    private readonly KernelReferenceServer _server;
    private Task _serving = Task.CompletedTask;

    public KernelReferenceServerTests()
    {
        _server = new KernelReferenceServer(
            IPAddress.Loopback, [new HttpService(timeProvider: Clock) { Port = 0 }, _echo, _discard], TextWriter.Null);
    }

    private IPEndPoint Http => _server.EndPoints[0];

    private IPEndPoint Echo => _server.EndPoints[1];

    private IPEndPoint Discard => _server.EndPoints[2];

    public Task InitializeAsync()
    {
        _server.Listen();
        _serving = _server.RunAsync(_stop.Token);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        await _server.DisposeAsync();
        await _serving.WaitAsync(Timeout);
        _stop.Dispose();
    }

    [Fact]
    public async Task Bytes_response_is_byte_identical_to_the_one_over_the_stacks_pipes()
    {
        const string request = "GET /bytes/300000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

        byte[] overKernel = await ExchangeAsync(Http, Encoding.ASCII.GetBytes(request), halfClose: false);

        var harness = ServiceHarness.Start(new HttpService(timeProvider: Clock));
        await harness.SendAsync(request);
        byte[] overPipes = await harness.ReadToEndAsync();

        Assert.StartsWith("HTTP/1.1 200 OK\r\n", Encoding.ASCII.GetString(overKernel, 0, 17));
        Assert.Equal(overPipes.Length, overKernel.Length);
        Assert.Equal(SHA256.HashData(overPipes), SHA256.HashData(overKernel));
    }

    [Fact]
    public async Task Front_page_has_the_length_the_stack_serves()
    {
        // ab counts a response of another length as failed, so both servers must serve pages of one length.
        const string request = "GET /?format=text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

        string overKernel = Encoding.UTF8.GetString(await ExchangeAsync(Http, Encoding.ASCII.GetBytes(request), halfClose: false));

        // The page names the server's address in its hints, so the stack's connection gets the same address.
        var info = ServiceHarness.DefaultInfo with
        {
            LocalEndPoint = new IPEndPoint(IPAddress.Loopback, 80),
            RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 54321),
        };
        var harness = ServiceHarness.Start(new HttpService(timeProvider: Clock), info);
        await harness.SendAsync(request);
        string overPipes = Encoding.UTF8.GetString(await harness.ReadToEndAsync());

        Assert.Contains($"server (us)   {Http}", overKernel, StringComparison.Ordinal);
        Assert.Contains("our ISN                0 (0x00000000)", overKernel, StringComparison.Ordinal);
        Assert.Equal(overPipes.Length, overKernel.Length);
    }

    [Fact]
    public async Task Echo_answers_everything_after_the_client_half_closes_then_closes()
    {
        byte[] data = new byte[3 << 20];
        new Random(862).NextBytes(data);

        // Input completes at our FIN; the echo service then completes its output, which must send its FIN.
        byte[] back = await ExchangeAsync(Echo, data, halfClose: true);

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(back));
        Assert.Equal(data.Length, _echo.BytesEchoed);
    }

    [Fact]
    public async Task Discard_reads_until_the_client_half_closes_then_closes_without_sending()
    {
        byte[] data = new byte[1 << 20];

        byte[] back = await ExchangeAsync(Discard, data, halfClose: true);

        Assert.Empty(back);
        Assert.Equal(data.Length, _discard.BytesDiscarded);
    }

    [Fact]
    public async Task Completing_the_output_sends_FIN_and_the_input_stays_open()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!).WaitAsync(Timeout);
        await using var pipe = new SocketDuplexPipe(await listener.AcceptAsync().WaitAsync(Timeout));

        await pipe.Output.WriteAsync("bye"u8.ToArray());
        await pipe.Output.CompleteAsync();

        // The client reads our data, then end of stream, while the socket stays open for its own data.
        byte[] fromServer = await ReadToEndAsync(client).WaitAsync(Timeout);
        Assert.Equal("bye", Encoding.ASCII.GetString(fromServer));
        await client.SendAsync("still here"u8.ToArray(), SocketFlags.None).WaitAsync(Timeout);
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("still here", Encoding.ASCII.GetString(await ReadInputToEndAsync(pipe)));
    }

    [Fact]
    public async Task Completing_the_output_with_an_error_resets_the_connection()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!).WaitAsync(Timeout);
        await using var pipe = new SocketDuplexPipe(await listener.AcceptAsync().WaitAsync(Timeout));

        await pipe.Output.CompleteAsync(new InvalidOperationException("the application failed"));

        var error = await Assert.ThrowsAsync<SocketException>(
            async () => await client.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(Timeout));
        Assert.Equal(SocketError.ConnectionReset, error.SocketErrorCode);
    }

    [Fact]
    public async Task Input_completes_at_the_peers_FIN_with_every_byte_before_it()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!).WaitAsync(Timeout);
        await using var pipe = new SocketDuplexPipe(await listener.AcceptAsync().WaitAsync(Timeout));

        await client.SendAsync("last words"u8.ToArray(), SocketFlags.None);
        client.Shutdown(SocketShutdown.Send);

        Assert.Equal("last words", Encoding.ASCII.GetString(await ReadInputToEndAsync(pipe)));
    }

    private static async Task<byte[]> ReadInputToEndAsync(SocketDuplexPipe pipe)
    {
        var received = new List<byte>();
        while (true)
        {
            var result = await pipe.Input.ReadAsync().AsTask().WaitAsync(Timeout);
            received.AddRange(System.Buffers.BuffersExtensions.ToArray(result.Buffer));
            pipe.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return received.ToArray();
            }
        }
    }

    /// <summary>Connects, sends <paramref name="request"/> while reading, optionally half-closes, and reads until the server's FIN.</summary>
    private static async Task<byte[]> ExchangeAsync(IPEndPoint server, byte[] request, bool halfClose)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server).WaitAsync(Timeout);
        Task<byte[]> reading = ReadToEndAsync(socket);
        await socket.SendAsync(request, SocketFlags.None).WaitAsync(Timeout);
        if (halfClose)
        {
            socket.Shutdown(SocketShutdown.Send);
        }

        return await reading.WaitAsync(Timeout);
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        using var all = new MemoryStream();
        byte[] buffer = new byte[64 * 1024];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
            if (n == 0)
            {
                return all.ToArray();
            }

            all.Write(buffer, 0, n);
        }
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
