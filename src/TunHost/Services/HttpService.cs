using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Unicode;
using TunStack;

namespace TunStack.Host.Services;

/// <summary>
/// A minimal HTTP/1.1 origin server (RFC 9110, RFC 9112) written directly over the connection's pipes.
/// </summary>
/// <remarks>
/// Resources: <c>/</c> (a page describing this connection's handshake; plain text with
/// <c>?format=text</c> or <c>Accept: text/plain</c>), <c>/bytes/N</c> (N pattern bytes, streamed),
/// <c>/stats</c> (JSON from the supplied provider), <c>/connections</c> (a plain-text table like <c>ss -tin</c>, from
/// <see cref="HttpService.ConnectionsProvider"/>), all GET and HEAD; and <c>POST /sha256</c>, which answers with the
/// SHA-256 of the request body, hashed as it streams in. Persistent connections and pipelining; request bodies
/// framed by Content-Length or chunked (RFC 9112 §7.1); other request bodies are read and dropped. A connection that
/// waits <see cref="IdleTimeout"/> for a request is closed (with 408 when part of one had come, RFC 9110 §15.5.9); one
/// whose peer takes no response data for that long is reset.
/// </remarks>
public sealed class HttpService : IConnectionService
{
    /// <summary>Largest N accepted by <c>/bytes/N</c>.</summary>
    public const long MaxBytesCount = 1_000_000_000_000;

    private readonly Func<string>? _statsProvider;
    private readonly TimeProvider _timeProvider;
    private long _requestsServed;
    private IdleMonitor? _idle;

    /// <param name="statsProvider">Produces the JSON body of <c>/stats</c>; without it <c>/stats</c> is 404.</param>
    /// <param name="timeProvider">Clock for the Date header and the lingering close; the system clock by default.</param>
    public HttpService(Func<string>? statsProvider = null, TimeProvider? timeProvider = null)
    {
        _statsProvider = statsProvider;
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    public string Name => "http";

    public ushort Port { get; init; } = 80;

    /// <summary>
    /// After we decide to close (Connection: close, HTTP/1.0, an error), how long to keep reading and
    /// dropping input once our FIN is queued, so that unread client data does not turn the close into a
    /// reset that destroys the response in flight (RFC 9112 §9.6).
    /// </summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a connection may wait for its peer: for the next request on a persistent connection (RFC 9112 §9.5), for
    /// the rest of a request, or for the peer to take response data. Infinite: forever.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = IdleMonitor.DefaultTimeout;

    internal IdleMonitor Idle => LazyInitializer.EnsureInitialized(ref _idle, () => new IdleMonitor(IdleTimeout, _timeProvider));

    /// <summary>Responses written (including error responses), over all connections.</summary>
    public long RequestsServed => Interlocked.Read(ref _requestsServed);

    internal Func<string>? StatsProvider => _statsProvider;

    /// <summary>Produces the plain-text body of <c>/connections</c>; without it <c>/connections</c> is 404.</summary>
    public Func<string>? ConnectionsProvider { get; init; }

    internal TimeProvider TimeProvider => _timeProvider;

    internal void CountResponse() => Interlocked.Increment(ref _requestsServed);

    public Task HandleAsync(IDuplexPipe transport, TcpConnectionInfo info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(info);
        IdleWatch idle = Idle.Watch(transport.Input, transport.Output, cancellationToken);
        return new HttpConnection(this, transport.Input, transport.Output, info, idle).RunAsync();
    }

    /// <summary>Reads and drops input until the peer closes or <see cref="LingerTimeout"/> passes (RFC 9112 §9.6).</summary>
    internal async Task LingerAsync(PipeReader input)
    {
        try
        {
            using var timeout = new CancellationTokenSource(LingerTimeout, _timeProvider);
            while (true)
            {
                ReadResult result = await input.ReadAsync(timeout.Token).ConfigureAwait(false);
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception)
        {
            // Timed out, cancelled or reset: done lingering.
        }
    }
}

/// <summary>The state of one HTTP connection: the pipes, the handshake facts, and a scratch buffer.</summary>
internal sealed class HttpConnection
{
    private const string HtmlType = "text/html; charset=utf-8";
    private const string TextType = "text/plain; charset=utf-8";
    private const string JsonType = "application/json";
    private const string OctetType = "application/octet-stream";
    private const string BytesPrefix = "/bytes/";
    private const string GetAndHead = "GET, HEAD";
    private const string PostOnly = "POST";

    private readonly HttpService _service;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly TcpConnectionInfo _info;
    private readonly IdleWatch _idle;
    private byte[]? _scratch;
    private IncrementalHash? _hash;
    private ChunkedBodyDecoder? _chunked;

    // HTTP minor version of the request being answered: decides how keep-alive is announced.
    private int _minorVersion = 1;

    /// <param name="idle">Times the connection's waits; also cancels them when the service is told to stop.</param>
    public HttpConnection(HttpService service, PipeReader input, PipeWriter output, TcpConnectionInfo info, IdleWatch idle)
    {
        _service = service;
        _input = input;
        _output = output;
        _info = info;
        _idle = idle;
    }

    private enum Resource
    {
        NotFound,
        Page,
        Bytes,
        BadBytes,
        Stats,
        Connections,
        Sha256,
        Asterisk,
    }

    private enum BodyOutcome
    {
        Complete,
        PeerClosed,
        Malformed,
        TimedOut,
    }

    private void ReleaseScratch()
    {
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = null;
        }

        _hash?.Dispose();
        _hash = null;
    }

    /// <summary>
    /// Answers requests in order until one side ends the connection, then closes our side: lingering (reading and
    /// dropping input for <see cref="HttpService.LingerTimeout"/>) when we chose to close while the peer may still be
    /// sending, and with a reset when the peer stopped taking our data. One async method for the whole connection, so
    /// that an idle persistent connection holds one state machine.
    /// </summary>
    public async Task RunAsync()
    {
        bool linger = false;
        try
        {
            while (true)
            {
                ReadResult result = await ReadAsync().ConfigureAwait(false);
                _idle.EndWait();
                ReadOnlySequence<byte> buffer = result.Buffer;
                HttpParseStatus status = HttpRequestParser.TryParse(
                    buffer, ref _scratch, out HttpRequestHead head, out SequencePosition consumed, out int errorStatus);

                if (status == HttpParseStatus.Incomplete)
                {
                    bool truncated = !buffer.IsEmpty;
                    _input.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCanceled)
                    {
                        // Idle between requests: just close. In the middle of one: say so (RFC 9110 §15.5.9).
                        if (truncated && _idle.Expired)
                        {
                            await SendErrorAsync(408).ConfigureAwait(false);
                        }

                        break;
                    }

                    if (result.IsCompleted)
                    {
                        // FIN between requests is the normal end; FIN inside a request head is not.
                        if (truncated)
                        {
                            await SendErrorAsync(400).ConfigureAwait(false);
                        }

                        break;
                    }

                    continue;
                }

                if (status == HttpParseStatus.Error)
                {
                    _input.AdvanceTo(buffer.End);
                    await SendErrorAsync(errorStatus).ConfigureAwait(false);
                    linger = true;
                    break;
                }

                // Only consumed, not examined to the end: a pipelined request already buffered is read at once.
                _input.AdvanceTo(consumed);
                _minorVersion = head.MinorVersion;

                int framingError = FramingError(head);
                if (framingError != 0)
                {
                    // We cannot find the end of this body, so we cannot find the next request either.
                    await SendErrorAsync(framingError).ConfigureAwait(false);
                    linger = true;
                    break;
                }

                if (head.MinorVersion >= 1 && head.HostCount != 1)
                {
                    await SendErrorAsync(400).ConfigureAwait(false); // RFC 9112 §3.2
                    linger = true;
                    break;
                }

                if (head.ExpectUnsupported)
                {
                    await SendErrorAsync(417).ConfigureAwait(false); // RFC 9110 §10.1.1
                    linger = true;
                    break;
                }

                Resource resource = Route(head.Target, out string query, out long count);
                bool chunked = head.Framing == HttpBodyFraming.Chunked;
                if (chunked || head.ContentLength > 0)
                {
                    if (head.ExpectContinue && head.MinorVersion >= 1)
                    {
                        // RFC 9110 §10.1.1: the client waits for this (curl, a second) before it sends the content.
                        _output.Write("HTTP/1.1 100 Continue\r\n\r\n"u8);
                        if (!await FlushAsync().ConfigureAwait(false))
                        {
                            break;
                        }
                    }

                    IncrementalHash? hash = resource == Resource.Sha256 && head.Method == HttpMethodKind.Post ? Hash : null;
                    BodyOutcome outcome = chunked
                        ? await ReadChunkedBodyAsync(hash).ConfigureAwait(false)
                        : await ReadBodyAsync(head.ContentLength, hash).ConfigureAwait(false);
                    if (outcome == BodyOutcome.PeerClosed)
                    {
                        break;
                    }

                    if (outcome == BodyOutcome.TimedOut)
                    {
                        await SendErrorAsync(408).ConfigureAwait(false);
                        break;
                    }

                    if (outcome == BodyOutcome.Malformed)
                    {
                        await SendErrorAsync(400).ConfigureAwait(false); // RFC 9112 §7.1: the framing is broken
                        linger = true;
                        break;
                    }
                }

                bool keepAlive = head.MinorVersion >= 1
                    ? !head.ConnectionClose
                    : head.ConnectionKeepAlive && !head.ConnectionClose;

                if (!await RespondAsync(head, resource, query, count, keepAlive).ConfigureAwait(false))
                {
                    break;
                }

                if (!keepAlive)
                {
                    linger = true;
                    break;
                }
            }
    }
        catch (Exception)
        {
            // Reset, abort, shutdown, or a peer that stopped reading: the connection is over.
        }
        finally
        {
            ReleaseScratch();
            _idle.Dispose();
            await PipeCompletion.CompleteQuietlyAsync(_output, _idle.ExpiredInFlush ? IdleMonitor.StalledError() : null)
                .ConfigureAwait(false);
            if (linger && !_idle.Stopped)
            {
                await _service.LingerAsync(_input).ConfigureAwait(false);
            }

            await PipeCompletion.CompleteQuietlyAsync(_input).ConfigureAwait(false);
        }
    }

    /// <summary>The status for a request whose body cannot be framed (RFC 9112 §6.1, §6.3), or 0.</summary>
    private static int FramingError(in HttpRequestHead head)
    {
        if (!head.HasTransferEncoding)
        {
            return 0;
        }

        // An HTTP/1.0 message with Transfer-Encoding has faulty framing (§6.1). With Content-Length as well it may be
        // an attempt at request smuggling: we reject it and close (§6.1 allows either, but the close is a MUST).
        if (head.MinorVersion == 0 || head.ContentLength >= 0)
        {
            return 400;
        }

        return head.Framing switch
        {
            HttpBodyFraming.Chunked => 0,
            HttpBodyFraming.UnsupportedCoding => 501, // a transfer coding we do not understand (§6.1)
            _ => 400, // chunked is not the final coding, or is applied twice (§6.3, §7)
        };
    }

    private IncrementalHash Hash => _hash ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>
    /// Reads a body of <paramref name="length"/> bytes, adding it to <paramref name="hash"/> when there is one and
    /// otherwise dropping it, as it arrives.
    /// </summary>
    private async ValueTask<BodyOutcome> ReadBodyAsync(long length, IncrementalHash? hash)
    {
        long remaining = length;
        while (remaining > 0)
        {
            ReadResult result = await ReadAsync().ConfigureAwait(false);
            _idle.EndWait();
            if (result.IsCanceled && _idle.Expired)
            {
                _input.AdvanceTo(result.Buffer.Start);
                return BodyOutcome.TimedOut;
            }

            long take = Math.Min(remaining, result.Buffer.Length);
            ReadOnlySequence<byte> piece = result.Buffer.Slice(0, take);
            Append(hash, piece);
            remaining -= take;

            // After AdvanceTo the buffer's segments go back to the pool: nothing of it may be used past this line.
            _input.AdvanceTo(piece.End);
            if (remaining > 0 && (result.IsCompleted || result.IsCanceled))
            {
                return BodyOutcome.PeerClosed;
            }
        }

        return BodyOutcome.Complete;
    }

    /// <summary>Reads a chunked body (RFC 9112 §7.1), hashing or dropping its data as it arrives.</summary>
    private async ValueTask<BodyOutcome> ReadChunkedBodyAsync(IncrementalHash? hash)
    {
        _chunked ??= new ChunkedBodyDecoder();
        _chunked.Reset();
        while (true)
        {
            ReadResult result = await ReadAsync().ConfigureAwait(false);
            _idle.EndWait();
            if (result.IsCanceled && _idle.Expired)
            {
                _input.AdvanceTo(result.Buffer.Start);
                return BodyOutcome.TimedOut;
            }

            ReadOnlySequence<byte> buffer = result.Buffer;
            ChunkedDecodeStatus status = DecodeAvailable(_chunked, buffer, hash, out SequencePosition consumed);
            switch (status)
            {
                case ChunkedDecodeStatus.Done:
                    _input.AdvanceTo(consumed);
                    return BodyOutcome.Complete;

                case ChunkedDecodeStatus.Malformed:
                    _input.AdvanceTo(buffer.End);
                    return BodyOutcome.Malformed;

                default:
                    // Whatever is left is an incomplete line: look at it again once more bytes have come.
                    _input.AdvanceTo(consumed, buffer.End);
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        return BodyOutcome.PeerClosed;
                    }

                    break;
            }
        }
    }

    private static ChunkedDecodeStatus DecodeAvailable(
        ChunkedBodyDecoder decoder, ReadOnlySequence<byte> buffer, IncrementalHash? hash, out SequencePosition consumed)
    {
        var reader = new SequenceReader<byte>(buffer);
        ChunkedDecodeStatus status;
        while ((status = decoder.Decode(ref reader, out ReadOnlySequence<byte> data)) == ChunkedDecodeStatus.Data)
        {
            Append(hash, data);
        }

        consumed = reader.Position;
        return status;
    }

    private static void Append(IncrementalHash? hash, ReadOnlySequence<byte> data)
    {
        if (hash is null)
        {
            return;
        }

        foreach (ReadOnlyMemory<byte> segment in data)
        {
            hash.AppendData(segment.Span);
        }
    }

    /// <summary>The digest of the body just read, as the <c>/sha256</c> response body; resets the hash for the next request.</summary>
    private string TakeDigestLine()
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        Hash.GetHashAndReset(digest);
        return Convert.ToHexStringLower(digest) + "\n";
    }

    /// <summary>Writes the response to one well-formed request. Returns false when the peer stopped reading.</summary>
    private async ValueTask<bool> RespondAsync(HttpRequestHead head, Resource resource, string query, long count, bool keepAlive)
    {
        bool isHead = head.Method == HttpMethodKind.Head;
        bool isGetOrHead = head.Method is HttpMethodKind.Get or HttpMethodKind.Head;

        if (resource == Resource.Asterisk)
        {
            // "*" only means something to OPTIONS (RFC 9112 §3.2.4), which we do not implement.
            return !isGetOrHead
                ? await SendSimpleAsync(405, isHead, keepAlive, allow: GetAndHead).ConfigureAwait(false)
                : await SendSimpleAsync(400, isHead, keepAlive).ConfigureAwait(false);
        }

        if (resource == Resource.NotFound)
        {
            return await SendSimpleAsync(404, isHead, keepAlive).ConfigureAwait(false);
        }

        if (resource == Resource.Sha256)
        {
            // The body was hashed as it arrived; the digest is all that is left to send.
            return head.Method == HttpMethodKind.Post
                ? await SendBodyAsync(200, TextType, TakeDigestLine(), isHead: false, keepAlive).ConfigureAwait(false)
                : await SendSimpleAsync(405, isHead, keepAlive, allow: PostOnly).ConfigureAwait(false);
        }

        if (!isGetOrHead)
        {
            return await SendSimpleAsync(405, isHead, keepAlive, allow: GetAndHead).ConfigureAwait(false);
        }

        switch (resource)
        {
            case Resource.BadBytes:
                return await SendSimpleAsync(400, isHead, keepAlive, $"N must be a decimal integer from 0 to {HttpService.MaxBytesCount}\n").ConfigureAwait(false);

            case Resource.Bytes:
                WriteHead(200, OctetType, count, keepAlive);
                _service.CountResponse();
                if (isHead)
                {
                    return await FlushAsync().ConfigureAwait(false);
                }

                return await BytePattern.WriteAsync(_output, count, CancellationToken.None, _idle).ConfigureAwait(false);

            case Resource.Stats:
            {
                string json;
                try
                {
                    json = _service.StatsProvider!();
                }
                catch (Exception)
                {
                    return await SendSimpleAsync(500, isHead, keepAlive).ConfigureAwait(false);
                }

                return await SendBodyAsync(200, JsonType, json, isHead, keepAlive).ConfigureAwait(false);
            }

            case Resource.Connections:
            {
                string table;
                try
                {
                    table = _service.ConnectionsProvider!();
                }
                catch (Exception)
                {
                    return await SendSimpleAsync(500, isHead, keepAlive).ConfigureAwait(false);
                }

                return await SendBodyAsync(200, TextType, table, isHead, keepAlive).ConfigureAwait(false);
            }

            default:
            {
                bool text = QueryHas(query, "format", "text") || (head.AcceptsPlainText && !head.AcceptsHtml);
                bool hasStats = _service.StatsProvider is not null;
                bool hasConnections = _service.ConnectionsProvider is not null;
                string body = text
                    ? ServicePages.Text(_info, hasStats, hasConnections)
                    : ServicePages.Html(_info, hasStats, hasConnections);
                return await SendBodyAsync(200, text ? TextType : HtmlType, body, isHead, keepAlive).ConfigureAwait(false);
            }
        }
    }

    private Resource Route(string target, out string query, out long count)
    {
        query = string.Empty;
        count = 0;
        if (target == "*")
        {
            return Resource.Asterisk;
        }

        ReadOnlySpan<char> path = target;
        if (!path.StartsWith('/'))
        {
            // absolute-form (RFC 9112 §3.2.2): keep the path after the authority.
            int scheme = path.IndexOf("://", StringComparison.Ordinal);
            if (scheme <= 0)
            {
                return Resource.NotFound;
            }

            ReadOnlySpan<char> afterAuthority = path[(scheme + 3)..];
            int slash = afterAuthority.IndexOfAny('/', '?');
            path = slash < 0 ? "/" : afterAuthority[slash..];
            if (path[0] == '?')
            {
                query = path[1..].ToString();
                path = "/";
            }
        }

        int question = path.IndexOf('?');
        if (question >= 0)
        {
            query = path[(question + 1)..].ToString();
            path = path[..question];
        }

        if (path.SequenceEqual("/"))
        {
            return Resource.Page;
        }

        if (path.SequenceEqual("/sha256"))
        {
            return Resource.Sha256;
        }

        if (path.SequenceEqual("/stats"))
        {
            return _service.StatsProvider is null ? Resource.NotFound : Resource.Stats;
        }

        if (path.SequenceEqual("/connections"))
        {
            return _service.ConnectionsProvider is null ? Resource.NotFound : Resource.Connections;
        }

        if (path.StartsWith(BytesPrefix, StringComparison.Ordinal))
        {
            return TryParseCount(path[BytesPrefix.Length..], out count) ? Resource.Bytes : Resource.BadBytes;
        }

        return Resource.NotFound;
    }

    /// <summary>N = 1*DIGIT, 0 ≤ N ≤ <see cref="HttpService.MaxBytesCount"/>.</summary>
    internal static bool TryParseCount(ReadOnlySpan<char> digits, out long count)
    {
        count = 0;
        if (digits.IsEmpty)
        {
            return false;
        }

        foreach (char c in digits)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            count = (count * 10) + (c - '0');
            if (count > HttpService.MaxBytesCount)
            {
                return false;
            }
        }

        return true;
    }

    private static bool QueryHas(string query, string name, string value)
    {
        foreach (Range range in query.AsSpan().Split('&'))
        {
            ReadOnlySpan<char> pair = query.AsSpan(range);
            int eq = pair.IndexOf('=');
            if (eq > 0 && pair[..eq].SequenceEqual(name) && pair[(eq + 1)..].Equals(value, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>An error after which the connection closes.</summary>
    private ValueTask<bool> SendErrorAsync(int status) => SendSimpleAsync(status, isHead: false, keepAlive: false);

    private ValueTask<bool> SendSimpleAsync(int status, bool isHead, bool keepAlive, string? message = null, string? allow = null)
    {
        string body = message ?? $"{status} {ReasonPhrase(status)}\n";
        return SendBodyAsync(status, TextType, body, isHead, keepAlive, allow);
    }

    private async ValueTask<bool> SendBodyAsync(int status, string contentType, string body, bool isHead, bool keepAlive, string? allow = null)
    {
        int length = Encoding.UTF8.GetByteCount(body);
        WriteHead(status, contentType, length, keepAlive, allow);
        if (!isHead)
        {
            Span<byte> span = _output.GetSpan(length);
            Encoding.UTF8.GetBytes(body, span);
            _output.Advance(length);
        }

        _service.CountResponse();
        return await FlushAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Waits for the peer's next bytes under the idle timeout; the caller ends the wait (<see cref="IdleWatch.EndWait"/>)
    /// when the read returns. Not an async method: an idle connection waits here, and should hold no extra state box.
    /// </summary>
    private ValueTask<ReadResult> ReadAsync()
    {
        _idle.BeginWait();
        return _input.ReadAsync();
    }

    /// <summary>Sends what was written, under the idle timeout. False when the peer is gone or took nothing for too long.</summary>
    private async ValueTask<bool> FlushAsync()
    {
        _idle.BeginWait(flush: true);
        FlushResult flush;
        try
        {
            flush = await _output.FlushAsync().ConfigureAwait(false);
        }
        finally
        {
            _idle.EndWait();
        }

        return !flush.IsCompleted && !flush.IsCanceled;
    }

    /// <param name="allow">The methods for an Allow field (RFC 9110 §10.2.1), required with 405.</param>
    private void WriteHead(int status, string contentType, long contentLength, bool keepAlive, string? allow = null)
    {
        // Our version is always HTTP/1.1 (RFC 9110 §6.2); an HTTP/1.0 client must be told when we keep the connection.
        string connection = !keepAlive ? "Connection: close\r\n"
            : _minorVersion == 0 ? "Connection: keep-alive\r\n"
            : string.Empty;
        string allowLine = allow is null ? string.Empty : $"Allow: {allow}\r\n";
        DateTimeOffset now = _service.TimeProvider.GetUtcNow();

        Span<byte> span = _output.GetSpan(512);
        if (!Utf8.TryWrite(
                span,
                CultureInfo.InvariantCulture,
                $"HTTP/1.1 {status} {ReasonPhrase(status)}\r\nServer: TunStack\r\nDate: {now:r}\r\nContent-Type: {contentType}\r\nContent-Length: {contentLength}\r\n{allowLine}{connection}\r\n",
                out int written))
        {
            throw new InvalidOperationException("Response head does not fit its buffer.");
        }

        _output.Advance(written);
    }

    internal static string ReasonPhrase(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    };
}
