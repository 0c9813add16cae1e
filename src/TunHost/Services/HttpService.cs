using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using System.Text.Unicode;
using TunStack.Api;

namespace TunStack.Host.Services;

/// <summary>
/// A minimal HTTP/1.1 origin server (RFC 9110, RFC 9112) written directly over the connection's pipes.
/// </summary>
/// <remarks>
/// Resources: <c>/</c> (a page describing this connection's handshake; plain text with
/// <c>?format=text</c> or <c>Accept: text/plain</c>), <c>/bytes/N</c> (N pattern bytes, streamed),
/// <c>/stats</c> (JSON from the supplied provider). Only GET and HEAD; persistent connections and
/// pipelining; request bodies are read and dropped; chunked request bodies are refused.
/// </remarks>
public sealed class HttpService : IConnectionService
{
    /// <summary>Largest N accepted by <c>/bytes/N</c>.</summary>
    public const long MaxBytesCount = 1_000_000_000_000;

    private readonly Func<string>? _statsProvider;
    private readonly TimeProvider _timeProvider;
    private long _requestsServed;

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

    /// <summary>Responses written (including error responses), over all connections.</summary>
    public long RequestsServed => Interlocked.Read(ref _requestsServed);

    internal Func<string>? StatsProvider => _statsProvider;

    internal TimeProvider TimeProvider => _timeProvider;

    internal void CountResponse() => Interlocked.Increment(ref _requestsServed);

    public async Task HandleAsync(IDuplexPipe transport, ConnectionInfo info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(info);
        var connection = new HttpConnection(this, transport.Input, transport.Output, info, cancellationToken);
        bool linger = false;
        try
        {
            linger = await connection.ServeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Reset, abort, shutdown, or a peer that stopped reading: the connection is over.
        }
        finally
        {
            connection.ReleaseScratch();
            await PipeCompletion.CompleteQuietlyAsync(transport.Output).ConfigureAwait(false);
            if (linger)
            {
                await LingerAsync(transport.Input, cancellationToken).ConfigureAwait(false);
            }

            await PipeCompletion.CompleteQuietlyAsync(transport.Input).ConfigureAwait(false);
        }
    }

    private async Task LingerAsync(PipeReader input, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = new CancellationTokenSource(LingerTimeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
            while (true)
            {
                ReadResult result = await input.ReadAsync(linked.Token).ConfigureAwait(false);
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

    private readonly HttpService _service;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly ConnectionInfo _info;
    private readonly CancellationToken _ct;
    private byte[]? _scratch;

    // HTTP minor version of the request being answered: decides how keep-alive is announced.
    private int _minorVersion = 1;

    public HttpConnection(HttpService service, PipeReader input, PipeWriter output, ConnectionInfo info, CancellationToken ct)
    {
        _service = service;
        _input = input;
        _output = output;
        _info = info;
        _ct = ct;
    }

    private enum Resource
    {
        NotFound,
        Page,
        Bytes,
        BadBytes,
        Stats,
        Asterisk,
    }

    public void ReleaseScratch()
    {
        if (_scratch is not null)
        {
            ArrayPool<byte>.Shared.Return(_scratch);
            _scratch = null;
        }
    }

    /// <summary>
    /// Answers requests in order until one side ends the connection. Returns true when we chose to
    /// close while the peer may still be sending (so the caller should linger), false when the peer
    /// closed or went away.
    /// </summary>
    public async Task<bool> ServeAsync()
    {
        while (true)
        {
            ReadResult result = await _input.ReadAsync(_ct).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            HttpParseStatus status = HttpRequestParser.TryParse(
                buffer, ref _scratch, out HttpRequestHead head, out SequencePosition consumed, out int errorStatus);

            if (status == HttpParseStatus.Incomplete)
            {
                bool truncated = !buffer.IsEmpty;
                _input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCanceled)
                {
                    return false;
                }

                if (result.IsCompleted)
                {
                    // FIN between requests is the normal end; FIN inside a request head is not.
                    if (truncated)
                    {
                        await SendErrorAsync(400).ConfigureAwait(false);
                    }

                    return false;
                }

                continue;
            }

            if (status == HttpParseStatus.Error)
            {
                _input.AdvanceTo(buffer.End);
                await SendErrorAsync(errorStatus).ConfigureAwait(false);
                return true;
            }

            // Only consumed, not examined to the end: a pipelined request already buffered is read at once.
            _input.AdvanceTo(consumed);
            _minorVersion = head.MinorVersion;

            if (head.HasTransferEncoding)
            {
                // We cannot frame a chunked body, so we cannot find the next request (RFC 9112 §6.1).
                await SendErrorAsync(head.MinorVersion == 0 ? 400 : 501).ConfigureAwait(false);
                return true;
            }

            if (head.MinorVersion >= 1 && head.HostCount != 1)
            {
                await SendErrorAsync(400).ConfigureAwait(false); // RFC 9112 §3.2
                return true;
            }

            if (head.ExpectUnsupported)
            {
                await SendErrorAsync(417).ConfigureAwait(false); // RFC 9110 §10.1.1
                return true;
            }

            if (head.ContentLength > 0)
            {
                if (head.ExpectContinue && head.MinorVersion >= 1)
                {
                    _output.Write("HTTP/1.1 100 Continue\r\n\r\n"u8);
                    FlushResult flush = await _output.FlushAsync(_ct).ConfigureAwait(false);
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        return false;
                    }
                }

                if (!await SkipBodyAsync(head.ContentLength).ConfigureAwait(false))
                {
                    return false;
                }
            }

            bool keepAlive = head.MinorVersion >= 1
                ? !head.ConnectionClose
                : head.ConnectionKeepAlive && !head.ConnectionClose;

            if (!await RespondAsync(head, keepAlive).ConfigureAwait(false))
            {
                return false;
            }

            if (!keepAlive)
            {
                return true;
            }
        }
    }

    /// <summary>Reads and drops a request body. Returns false when the peer closed before sending all of it.</summary>
    private async ValueTask<bool> SkipBodyAsync(long length)
    {
        long remaining = length;
        while (remaining > 0)
        {
            ReadResult result = await _input.ReadAsync(_ct).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            long take = Math.Min(remaining, buffer.Length);
            _input.AdvanceTo(buffer.GetPosition(take));
            remaining -= take;
            if (remaining > 0 && (result.IsCompleted || result.IsCanceled))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Writes the response to one well-formed request. Returns false when the peer stopped reading.</summary>
    private async ValueTask<bool> RespondAsync(HttpRequestHead head, bool keepAlive)
    {
        bool isHead = head.Method == HttpMethodKind.Head;
        Resource resource = Route(head.Target, out string query, out long count);

        if (resource == Resource.Asterisk)
        {
            // "*" only means something to OPTIONS (RFC 9112 §3.2.4), which we do not implement.
            return head.Method == HttpMethodKind.Other
                ? await SendSimpleAsync(405, isHead, keepAlive, allow: true).ConfigureAwait(false)
                : await SendSimpleAsync(400, isHead, keepAlive).ConfigureAwait(false);
        }

        if (resource == Resource.NotFound)
        {
            return await SendSimpleAsync(404, isHead, keepAlive).ConfigureAwait(false);
        }

        if (head.Method == HttpMethodKind.Other)
        {
            return await SendSimpleAsync(405, isHead, keepAlive, allow: true).ConfigureAwait(false);
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

                return await BytePattern.WriteAsync(_output, count, _ct).ConfigureAwait(false);

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

            default:
            {
                bool text = QueryHas(query, "format", "text") || (head.AcceptsPlainText && !head.AcceptsHtml);
                bool hasStats = _service.StatsProvider is not null;
                string body = text ? ServicePages.Text(_info, hasStats) : ServicePages.Html(_info, hasStats);
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

        if (path.SequenceEqual("/stats"))
        {
            return _service.StatsProvider is null ? Resource.NotFound : Resource.Stats;
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

    private ValueTask<bool> SendSimpleAsync(int status, bool isHead, bool keepAlive, string? message = null, bool allow = false)
    {
        string body = message ?? $"{status} {ReasonPhrase(status)}\n";
        return SendBodyAsync(status, TextType, body, isHead, keepAlive, allow);
    }

    private async ValueTask<bool> SendBodyAsync(int status, string contentType, string body, bool isHead, bool keepAlive, bool allow = false)
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

    private async ValueTask<bool> FlushAsync()
    {
        FlushResult flush = await _output.FlushAsync(_ct).ConfigureAwait(false);
        return !flush.IsCompleted && !flush.IsCanceled;
    }

    private void WriteHead(int status, string contentType, long contentLength, bool keepAlive, bool allow = false)
    {
        // Our version is always HTTP/1.1 (RFC 9110 §6.2); an HTTP/1.0 client must be told when we keep the connection.
        string connection = !keepAlive ? "Connection: close\r\n"
            : _minorVersion == 0 ? "Connection: keep-alive\r\n"
            : string.Empty;
        string allowLine = allow ? "Allow: GET, HEAD\r\n" : string.Empty;
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
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    };
}
