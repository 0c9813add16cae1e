using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Xunit;
using TunStack;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

/// <summary>
/// Runs one service connection over two in-memory pipes; the test plays the client (the kernel's side
/// of the TCP connection). Every wait is bounded by <see cref="Timeout"/>.
/// </summary>
internal sealed class ServiceHarness
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static readonly TcpConnectionInfo DefaultInfo = new(
        new IPEndPoint(IPAddress.Parse("198.18.0.2"), 80),
        new IPEndPoint(IPAddress.Parse("198.18.0.1"), 54321),
        PeerInitialSequence: 1234567890u,
        LocalInitialSequence: 3141592653u,
        PeerMss: 1460,
        LocalMss: 1400);

    private readonly Pipe _toServer;
    private readonly Pipe _toClient;

    private ServiceHarness(IService service, TcpConnectionInfo info, PipeOptions? options, CancellationToken cancellationToken)
    {
        _toServer = new Pipe(options ?? PipeOptions.Default);
        _toClient = new Pipe(options ?? PipeOptions.Default);
        if (service is IStreamService streamService)
        {
            // As the stack's host does: the service gets a stream, and the connection is disposed after it returns.
            var stream = new PipeStream(_toServer.Reader, _toClient.Writer);
            Handler = Task.Run(async () =>
            {
                try
                {
                    await streamService.HandleAsync(stream, stream.CompleteWrites, cancellationToken);
                }
                finally
                {
                    await stream.DisposeAsync();
                }
            }, CancellationToken.None);
            return;
        }
        var transport = new DuplexPipe(_toServer.Reader, _toClient.Writer);
        Handler = Task.Run(() => ((IConnectionService)service).HandleAsync(transport, info, cancellationToken), CancellationToken.None);
    }

    /// <summary>The service's HandleAsync, running.</summary>
    public Task Handler { get; }

    /// <summary>What the client sends (the server's Input).</summary>
    public PipeWriter ClientOutput => _toServer.Writer;

    /// <summary>What the client receives (the server's Output).</summary>
    public PipeReader ClientInput => _toClient.Reader;

    public static ServiceHarness Start(
        IService service,
        TcpConnectionInfo? info = null,
        PipeOptions? options = null,
        CancellationToken cancellationToken = default) =>
        new(service, info ?? DefaultInfo, options, cancellationToken);

    public Task SendAsync(string ascii) => SendAsync(Encoding.ASCII.GetBytes(ascii));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        FlushResult result = await ClientOutput.WriteAsync(bytes).AsTask().WaitAsync(Timeout);
        Assert.False(result.IsCompleted, "server stopped reading");
    }

    /// <summary>The client's FIN.</summary>
    public Task CloseClientAsync() => ClientOutput.CompleteAsync().AsTask();

    public Task WaitHandlerAsync() => Handler.WaitAsync(Timeout);

    /// <summary>Asserts the server sent nothing more and closed its side (its FIN).</summary>
    public async Task AssertServerClosedAsync()
    {
        ReadResult result = await ClientInput.ReadAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal(string.Empty, Encoding.ASCII.GetString(result.Buffer));
        Assert.True(result.IsCompleted, "server output was not completed");
        ClientInput.AdvanceTo(result.Buffer.End);
    }

    /// <summary>Reads everything until the server closes its side.</summary>
    public async Task<byte[]> ReadToEndAsync()
    {
        var all = new ArrayBufferWriter<byte>();
        while (true)
        {
            ReadResult result = await ClientInput.ReadAsync().AsTask().WaitAsync(Timeout);
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                all.Write(segment.Span);
            }

            ClientInput.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return all.WrittenSpan.ToArray();
            }
        }
    }

    /// <summary>Reads one response head: status line and fields, through the empty line. The body stays in the pipe.</summary>
    public async Task<HttpResponse> ReadHeadAsync()
    {
        while (true)
        {
            ReadResult result = await ClientInput.ReadAsync().AsTask().WaitAsync(Timeout);
            ReadOnlySequence<byte> buffer = result.Buffer;
            SequencePosition? end = FindEmptyLine(buffer);
            if (end is null)
            {
                Assert.False(result.IsCompleted, $"server closed mid-head after: {Encoding.ASCII.GetString(buffer)}");
                ClientInput.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            string head = Encoding.ASCII.GetString(buffer.Slice(0, end.Value));
            ClientInput.AdvanceTo(end.Value);
            return HttpResponse.ParseHead(head);
        }
    }

    /// <summary>Reads exactly <paramref name="length"/> body bytes, passing each piece to <paramref name="sink"/>.</summary>
    public async Task ReadBodyAsync(long length, Action<ReadOnlySequence<byte>> sink)
    {
        long remaining = length;
        while (remaining > 0)
        {
            ReadResult result = await ClientInput.ReadAsync().AsTask().WaitAsync(Timeout);
            ReadOnlySequence<byte> piece = result.Buffer.Slice(0, Math.Min(remaining, result.Buffer.Length));
            sink(piece);
            remaining -= piece.Length;
            ClientInput.AdvanceTo(piece.End);
            Assert.False(remaining > 0 && result.IsCompleted, $"server closed with {remaining} body bytes missing");
        }
    }

    /// <summary>Reads a whole response; for a response to HEAD (or 1xx) pass <paramref name="hasBody"/> false.</summary>
    public async Task<HttpResponse> ReadResponseAsync(bool hasBody = true)
    {
        HttpResponse response = await ReadHeadAsync();
        if (hasBody && response.StatusCode >= 200)
        {
            long length = response.ContentLength ?? throw new InvalidOperationException("response without Content-Length");
            var body = new ArrayBufferWriter<byte>();
            await ReadBodyAsync(length, piece =>
            {
                foreach (ReadOnlyMemory<byte> segment in piece)
                {
                    body.Write(segment.Span);
                }
            });
            response.Body = body.WrittenSpan.ToArray();
        }

        return response;
    }

    private static SequencePosition? FindEmptyLine(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.TryReadTo(out ReadOnlySequence<byte> _, "\r\n\r\n"u8))
        {
            return reader.Position;
        }

        return null;
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}

/// <summary>A response as the test client saw it.</summary>
internal sealed class HttpResponse
{
    public required string Version { get; init; }

    public required int StatusCode { get; init; }

    public required string Reason { get; init; }

    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }

    public byte[] Body { get; set; } = [];

    public string BodyText => Encoding.UTF8.GetString(Body);

    public long? ContentLength => Header("Content-Length") is { } value ? long.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : null;

    public string? Header(string name)
    {
        string? found = null;
        foreach (KeyValuePair<string, string> field in Headers)
        {
            if (string.Equals(field.Key, name, StringComparison.OrdinalIgnoreCase))
            {
                Assert.True(found is null, $"header {name} appears twice");
                found = field.Value;
            }
        }

        return found;
    }

    public static HttpResponse ParseHead(string head)
    {
        string[] lines = head.Split("\r\n");
        Assert.Equal(string.Empty, lines[^1]);
        Assert.Equal(string.Empty, lines[^2]);
        string[] status = lines[0].Split(' ', 3);
        Assert.Equal(3, status.Length);
        var headers = new List<KeyValuePair<string, string>>();
        foreach (string line in lines[1..^2])
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            Assert.True(colon > 0, $"bad field line: {line}");
            headers.Add(new(line[..colon], line[(colon + 1)..].Trim()));
        }

        return new HttpResponse
        {
            Version = status[0],
            StatusCode = int.Parse(status[1], System.Globalization.CultureInfo.InvariantCulture),
            Reason = status[2],
            Headers = headers,
        };
    }
}
