using System.Buffers;
using System.Text;

namespace TunStack.Host.Services;

internal enum HttpMethodKind : byte
{
    Get,
    Head,
    Post,
    Other,
}

/// <summary>How the request's message body is framed (RFC 9112 §6.3).</summary>
internal enum HttpBodyFraming : byte
{
    /// <summary>No Transfer-Encoding: the body is <see cref="HttpRequestHead.ContentLength"/> bytes (none without the field).</summary>
    Length,

    /// <summary>Transfer-Encoding: chunked (RFC 9112 §7.1).</summary>
    Chunked,

    /// <summary>A transfer coding other than chunked is applied: we cannot decode it (501, RFC 9112 §6.1).</summary>
    UnsupportedCoding,

    /// <summary>The body length cannot be determined: chunked is not the final coding, or is applied twice (400, RFC 9112 §6.3).</summary>
    Invalid,
}

/// <summary>What the server needs from a request's start line and header section (RFC 9112 §2-§6).</summary>
internal struct HttpRequestHead
{
    public HttpMethodKind Method;

    /// <summary>The request-target exactly as sent (ASCII, already checked for visible characters).</summary>
    public string Target;

    /// <summary>0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x, handled as 1.1 per RFC 9110 §2.5).</summary>
    public int MinorVersion;

    /// <summary>The message body length, or -1 when there is no Content-Length field.</summary>
    public long ContentLength;

    public bool HasTransferEncoding;

    /// <summary>Transfer codings named in Transfer-Encoding fields, in order (RFC 9112 §6.1); only counts are kept.</summary>
    public int TransferCodingCount;

    /// <summary>How many of those codings are <c>chunked</c>.</summary>
    public int ChunkedCodingCount;

    /// <summary>Whether the last coding listed is <c>chunked</c>.</summary>
    public bool LastCodingIsChunked;
    public bool ConnectionClose;
    public bool ConnectionKeepAlive;
    public int HostCount;
    public bool ExpectContinue;
    public bool ExpectUnsupported;
    public bool AcceptsPlainText;
    public bool AcceptsHtml;

    /// <summary>The framing the Transfer-Encoding fields ask for.</summary>
    public readonly HttpBodyFraming Framing =>
        !HasTransferEncoding ? HttpBodyFraming.Length
        : TransferCodingCount == 0 || !LastCodingIsChunked || ChunkedCodingCount > 1 ? HttpBodyFraming.Invalid
        : TransferCodingCount > 1 ? HttpBodyFraming.UnsupportedCoding
        : HttpBodyFraming.Chunked;
}

internal enum HttpParseStatus
{
    /// <summary>More bytes are needed.</summary>
    Incomplete,

    /// <summary>A whole start line and header section was parsed.</summary>
    Complete,

    /// <summary>The request is unusable; answer with the given status and close.</summary>
    Error,
}

/// <summary>
/// A small, strict HTTP/1.1 request-head parser over a <see cref="ReadOnlySequence{T}"/>. It never allocates
/// except for the request-target string, and never looks at more than <see cref="MaxHeaderBytes"/>
/// bytes of head.
/// </summary>
internal static class HttpRequestParser
{
    /// <summary>Upper bound for request line plus header fields plus the empty line.</summary>
    public const int MaxHeaderBytes = 16 * 1024;

    /// <summary>
    /// Tries to parse one request head at the start of <paramref name="buffer"/>. On success
    /// <paramref name="consumed"/> is just past the empty line that ends the header section.
    /// </summary>
    /// <param name="scratch">Space to join a head that spans several buffer segments; rented on first need, the caller returns it.</param>
    public static HttpParseStatus TryParse(
        ReadOnlySequence<byte> buffer,
        ref byte[]? scratch,
        out HttpRequestHead head,
        out SequencePosition consumed,
        out int errorStatus)
    {
        head = default;
        consumed = buffer.Start;
        errorStatus = 0;
        var reader = new SequenceReader<byte>(buffer);

        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received before the request-line.
        while (true)
        {
            if (reader.Consumed > MaxHeaderBytes)
            {
                errorStatus = 400;
                return HttpParseStatus.Error;
            }

            if (!reader.TryPeek(out byte b))
            {
                return HttpParseStatus.Incomplete;
            }

            if (b == (byte)'\n')
            {
                reader.Advance(1);
            }
            else if (b == (byte)'\r')
            {
                if (!reader.TryPeek(1, out byte next))
                {
                    return HttpParseStatus.Incomplete;
                }

                if (next != (byte)'\n')
                {
                    errorStatus = 400;
                    return HttpParseStatus.Error;
                }

                reader.Advance(2);
            }
            else
            {
                break;
            }
        }

        long start = reader.Consumed;
        SequencePosition startPosition = reader.Position;
        bool sawLine = false;
        while (true)
        {
            if (!reader.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n'))
            {
                if (buffer.Length - start > MaxHeaderBytes)
                {
                    errorStatus = sawLine ? 431 : 414;
                    return HttpParseStatus.Error;
                }

                return HttpParseStatus.Incomplete;
            }

            if (reader.Consumed - start > MaxHeaderBytes)
            {
                errorStatus = sawLine ? 431 : 414;
                return HttpParseStatus.Error;
            }

            if (sawLine && (line.Length == 0 || (line.Length == 1 && line.FirstSpan[0] == (byte)'\r')))
            {
                break;
            }

            sawLine = true;
        }

        ReadOnlySequence<byte> block = buffer.Slice(startPosition, reader.Position);
        ReadOnlySpan<byte> span;
        if (block.IsSingleSegment)
        {
            span = block.FirstSpan;
        }
        else
        {
            scratch ??= ArrayPool<byte>.Shared.Rent(MaxHeaderBytes + 2);
            block.CopyTo(scratch);
            span = scratch.AsSpan(0, (int)block.Length);
        }

        errorStatus = ParseHead(span, out head);
        if (errorStatus != 0)
        {
            return HttpParseStatus.Error;
        }

        consumed = reader.Position;
        return HttpParseStatus.Complete;
    }

    /// <summary>Parses a whole head (every line ends in LF, the last line is empty). Returns 0 or an error status.</summary>
    internal static int ParseHead(ReadOnlySpan<byte> block, out HttpRequestHead head)
    {
        head = default;
        head.ContentLength = -1;
        head.Target = string.Empty;

        int newline = block.IndexOf((byte)'\n');
        if (!TryTakeLine(block[..newline], out ReadOnlySpan<byte> requestLine))
        {
            return 400;
        }

        int status = ParseRequestLine(requestLine, ref head);
        if (status != 0)
        {
            return status;
        }

        ReadOnlySpan<byte> rest = block[(newline + 1)..];
        while (true)
        {
            newline = rest.IndexOf((byte)'\n');
            if (!TryTakeLine(rest[..newline], out ReadOnlySpan<byte> line))
            {
                return 400;
            }

            rest = rest[(newline + 1)..];
            if (line.IsEmpty)
            {
                return 0;
            }

            status = ParseField(line, ref head);
            if (status != 0)
            {
                return status;
            }
        }
    }

    /// <summary>Strips the CR of a CRLF; a CR anywhere else is a bare CR (RFC 9112 §2.2), which we reject.</summary>
    private static bool TryTakeLine(ReadOnlySpan<byte> raw, out ReadOnlySpan<byte> line)
    {
        line = raw.Length > 0 && raw[^1] == (byte)'\r' ? raw[..^1] : raw;
        return !line.Contains((byte)'\r');
    }

    // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
    private static int ParseRequestLine(ReadOnlySpan<byte> line, ref HttpRequestHead head)
    {
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0)
        {
            return 400;
        }

        ReadOnlySpan<byte> method = line[..sp1];
        if (!IsToken(method))
        {
            return 400;
        }

        ReadOnlySpan<byte> rest = line[(sp1 + 1)..];
        int sp2 = rest.IndexOf((byte)' ');
        if (sp2 <= 0)
        {
            return 400;
        }

        ReadOnlySpan<byte> target = rest[..sp2];
        foreach (byte c in target)
        {
            // Visible ASCII only; no fragment in a request-target (RFC 9112 §3.2).
            if (c <= 0x20 || c >= 0x7F || c == (byte)'#')
            {
                return 400;
            }
        }

        ReadOnlySpan<byte> version = rest[(sp2 + 1)..];
        // HTTP-version = "HTTP" "/" DIGIT "." DIGIT (RFC 9112 §2.3), case-sensitive.
        if (version.Length != 8 || !version.StartsWith("HTTP/"u8) || !IsDigit(version[5]) ||
            version[6] != (byte)'.' || !IsDigit(version[7]))
        {
            return 400;
        }

        if (version[5] != (byte)'1')
        {
            return 505;
        }

        head.MinorVersion = version[7] == (byte)'0' ? 0 : 1;
        head.Method = method.SequenceEqual("GET"u8) ? HttpMethodKind.Get
            : method.SequenceEqual("HEAD"u8) ? HttpMethodKind.Head
            : method.SequenceEqual("POST"u8) ? HttpMethodKind.Post
            : HttpMethodKind.Other;
        head.Target = Encoding.ASCII.GetString(target);
        return 0;
    }

    // field-line = field-name ":" OWS field-value OWS (RFC 9112 §5)
    private static int ParseField(ReadOnlySpan<byte> line, ref HttpRequestHead head)
    {
        if (line[0] is (byte)' ' or (byte)'\t')
        {
            return 400; // obs-fold (RFC 9112 §5.2)
        }

        int colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return 400;
        }

        ReadOnlySpan<byte> name = line[..colon];
        if (!IsToken(name))
        {
            return 400; // includes whitespace between name and colon (RFC 9112 §5.1)
        }

        ReadOnlySpan<byte> value = TrimOws(line[(colon + 1)..]);
        foreach (byte c in value)
        {
            if ((c < 0x20 && c != (byte)'\t') || c == 0x7F)
            {
                return 400; // CTLs are not field-vchar (RFC 9110 §5.5)
            }
        }

        if (Ascii.EqualsIgnoreCase(name, "host"u8))
        {
            head.HostCount++;
        }
        else if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
        {
            return ParseContentLength(value, ref head);
        }
        else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
        {
            // Transfer-Encoding = #transfer-coding; several field lines form one list (RFC 9110 §5.3).
            head.HasTransferEncoding = true;
            foreach (Range range in new ListSplitter(value))
            {
                ReadOnlySpan<byte> coding = TrimOws(value[range]);
                if (coding.IsEmpty)
                {
                    continue; // empty list elements are ignored (RFC 9110 §5.6.1.2)
                }

                int semicolon = coding.IndexOf((byte)';');
                ReadOnlySpan<byte> codingName = TrimOws(semicolon < 0 ? coding : coding[..semicolon]);
                if (!IsToken(codingName))
                {
                    return 400;
                }

                bool chunked = Ascii.EqualsIgnoreCase(codingName, "chunked"u8);
                if (chunked && semicolon >= 0)
                {
                    return 400; // chunked has no parameters (RFC 9112 §7)
                }

                head.TransferCodingCount++;
                head.ChunkedCodingCount += chunked ? 1 : 0;
                head.LastCodingIsChunked = chunked;
            }
        }
        else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
        {
            foreach (Range range in new ListSplitter(value))
            {
                ReadOnlySpan<byte> option = TrimOws(value[range]);
                if (Ascii.EqualsIgnoreCase(option, "close"u8))
                {
                    head.ConnectionClose = true;
                }
                else if (Ascii.EqualsIgnoreCase(option, "keep-alive"u8))
                {
                    head.ConnectionKeepAlive = true;
                }
            }
        }
        else if (Ascii.EqualsIgnoreCase(name, "expect"u8))
        {
            if (Ascii.EqualsIgnoreCase(value, "100-continue"u8))
            {
                head.ExpectContinue = true;
            }
            else
            {
                head.ExpectUnsupported = true;
            }
        }
        else if (Ascii.EqualsIgnoreCase(name, "accept"u8))
        {
            foreach (Range range in new ListSplitter(value))
            {
                ReadOnlySpan<byte> mediaRange = value[range];
                int semicolon = mediaRange.IndexOf((byte)';');
                if (semicolon >= 0)
                {
                    mediaRange = mediaRange[..semicolon];
                }

                mediaRange = TrimOws(mediaRange);
                if (Ascii.EqualsIgnoreCase(mediaRange, "text/plain"u8))
                {
                    head.AcceptsPlainText = true;
                }
                else if (Ascii.EqualsIgnoreCase(mediaRange, "text/html"u8))
                {
                    head.AcceptsHtml = true;
                }
            }
        }

        return 0;
    }

    // Content-Length = 1*DIGIT; a list of identical values may be taken as one (RFC 9110 §8.6, RFC 9112 §6.3).
    private static int ParseContentLength(ReadOnlySpan<byte> value, ref HttpRequestHead head)
    {
        bool any = false;
        foreach (Range range in new ListSplitter(value))
        {
            ReadOnlySpan<byte> item = TrimOws(value[range]);
            if (item.IsEmpty)
            {
                return 400;
            }

            long length = 0;
            foreach (byte c in item)
            {
                if (!IsDigit(c) || length > (long.MaxValue - 9) / 10)
                {
                    return 400;
                }

                length = (length * 10) + (c - '0');
            }

            if (head.ContentLength >= 0 && head.ContentLength != length)
            {
                return 400;
            }

            head.ContentLength = length;
            any = true;
        }

        return any ? 0 : 400;
    }

    private static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> s)
    {
        int from = 0;
        int to = s.Length;
        while (from < to && s[from] is (byte)' ' or (byte)'\t')
        {
            from++;
        }

        while (to > from && s[to - 1] is (byte)' ' or (byte)'\t')
        {
            to--;
        }

        return s[from..to];
    }

    private static bool IsDigit(byte c) => c - (uint)'0' <= 9;

    /// <summary>Whether a field line (without its line end) is name ":" value with a token name and no CTLs (RFC 9112 §5).</summary>
    internal static bool IsWellFormedFieldLine(ReadOnlySpan<byte> line)
    {
        int colon = line.IndexOf((byte)':');
        if (colon <= 0 || !IsToken(line[..colon]))
        {
            return false;
        }

        foreach (byte c in line[(colon + 1)..])
        {
            if ((c < 0x20 && c != (byte)'\t') || c == 0x7F)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>token = 1*tchar (RFC 9110 §5.6.2).</summary>
    internal static bool IsToken(ReadOnlySpan<byte> s) => !s.IsEmpty && !s.ContainsAnyExcept(TokenChars);

    private static readonly SearchValues<byte> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"u8);

    /// <summary>Enumerates the comma-separated elements of a field value (empty elements included).</summary>
    private ref struct ListSplitter(ReadOnlySpan<byte> value)
    {
        private readonly ReadOnlySpan<byte> _value = value;
        private int _next;
        private Range _current;

        public readonly ListSplitter GetEnumerator() => this;

        public readonly Range Current => _current;

        public bool MoveNext()
        {
            if (_next > _value.Length)
            {
                return false;
            }

            int comma = _value[_next..].IndexOf((byte)',');
            int end = comma < 0 ? _value.Length : _next + comma;
            _current = _next..end;
            _next = end + 1;
            return true;
        }
    }
}
