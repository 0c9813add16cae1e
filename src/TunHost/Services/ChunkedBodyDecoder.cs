using System.Buffers;

namespace TunStack.Host.Services;

/// <summary>What <see cref="ChunkedBodyDecoder.Decode"/> found.</summary>
internal enum ChunkedDecodeStatus
{
    /// <summary>Everything available was consumed; more bytes are needed.</summary>
    NeedMoreData,

    /// <summary>A piece of body data was produced (and consumed from the reader).</summary>
    Data,

    /// <summary>The last chunk and the trailer section were consumed: the body is complete.</summary>
    Done,

    /// <summary>The chunked framing is broken; the body (and with it the connection) cannot be used.</summary>
    Malformed,
}

/// <summary>
/// Decodes a chunked message body (RFC 9112 §7.1) incrementally, as bytes arrive, without buffering it: each
/// call hands out the chunk data available in the reader as slices of it. Chunk extensions (§7.1.1) and the
/// trailer section (§7.1.2) are checked for syntax and ignored. Lines must end in CRLF.
/// </summary>
internal sealed class ChunkedBodyDecoder
{
    /// <summary>Longest chunk-size line accepted (size, extensions and CRLF).</summary>
    public const int MaxChunkLineBytes = 4096;

    /// <summary>Largest trailer section accepted (all its field lines with their CRLFs).</summary>
    public const int MaxTrailerBytes = HttpRequestParser.MaxHeaderBytes;

    private State _state = State.ChunkLine;
    private long _chunkRemaining;
    private int _trailerBytes;

    private enum State
    {
        ChunkLine,
        ChunkData,
        ChunkDataEnd,
        Trailer,
        Done,
        Malformed,
    }

    /// <summary>Body data bytes produced so far (the decoded length, RFC 9112 §7.1.3).</summary>
    public long DecodedLength { get; private set; }

    /// <summary>Prepares for a new body.</summary>
    public void Reset()
    {
        _state = State.ChunkLine;
        _chunkRemaining = 0;
        _trailerBytes = 0;
        DecodedLength = 0;
    }

    /// <summary>
    /// Consumes framing from <paramref name="reader"/> until it produces data, reaches the end of the body, runs out
    /// of bytes or finds an error. With <see cref="ChunkedDecodeStatus.Data"/>, <paramref name="data"/> is a slice of
    /// the reader's sequence that the reader has already moved past. The reader never moves past the body's end.
    /// </summary>
    public ChunkedDecodeStatus Decode(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> data)
    {
        data = default;
        while (true)
        {
            switch (_state)
            {
                case State.ChunkLine:
                {
                    if (!TryReadLine(ref reader, MaxChunkLineBytes, out ReadOnlySequence<byte> line, out bool tooLong))
                    {
                        return tooLong ? Fail() : ChunkedDecodeStatus.NeedMoreData;
                    }

                    if (!TryParseChunkLine(line, out long size))
                    {
                        return Fail();
                    }

                    // last-chunk = 1*("0") [ chunk-ext ] CRLF, then the trailer section (§7.1).
                    _chunkRemaining = size;
                    _state = size == 0 ? State.Trailer : State.ChunkData;
                    break;
                }

                case State.ChunkData:
                {
                    if (reader.End)
                    {
                        return ChunkedDecodeStatus.NeedMoreData;
                    }

                    long take = Math.Min(_chunkRemaining, reader.Remaining);
                    data = reader.UnreadSequence.Slice(0, take);
                    reader.Advance(take);
                    _chunkRemaining -= take;
                    DecodedLength += take;
                    if (_chunkRemaining == 0)
                    {
                        _state = State.ChunkDataEnd;
                    }

                    return ChunkedDecodeStatus.Data;
                }

                case State.ChunkDataEnd:
                {
                    // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
                    if (!reader.TryPeek(out byte cr))
                    {
                        return ChunkedDecodeStatus.NeedMoreData;
                    }

                    if (cr != (byte)'\r')
                    {
                        return Fail();
                    }

                    if (!reader.TryPeek(1, out byte lf))
                    {
                        return ChunkedDecodeStatus.NeedMoreData;
                    }

                    if (lf != (byte)'\n')
                    {
                        return Fail();
                    }

                    reader.Advance(2);
                    _state = State.ChunkLine;
                    break;
                }

                case State.Trailer:
                {
                    // trailer-section = *( field-line CRLF ), then the CRLF that ends the body (§7.1.2).
                    int allowance = MaxTrailerBytes - _trailerBytes;
                    if (!TryReadLine(ref reader, allowance, out ReadOnlySequence<byte> line, out bool tooLong))
                    {
                        return tooLong ? Fail() : ChunkedDecodeStatus.NeedMoreData;
                    }

                    _trailerBytes += (int)line.Length + 2;
                    if (line.IsEmpty)
                    {
                        _state = State.Done;
                        return ChunkedDecodeStatus.Done;
                    }

                    if (!IsWellFormedFieldLine(line))
                    {
                        return Fail();
                    }

                    break;
                }

                case State.Done:
                    return ChunkedDecodeStatus.Done;

                default:
                    return ChunkedDecodeStatus.Malformed;
            }
        }
    }

    private ChunkedDecodeStatus Fail()
    {
        _state = State.Malformed;
        return ChunkedDecodeStatus.Malformed;
    }

    /// <summary>
    /// Reads one line ending in CRLF, returning it without the CRLF. A LF without CR before it is an error, reported
    /// as <paramref name="tooLong"/> too (the caller fails either way); so is a line longer than <paramref name="limit"/>
    /// bytes with its CRLF, whether or not its end has arrived.
    /// </summary>
    private static bool TryReadLine(ref SequenceReader<byte> reader, int limit, out ReadOnlySequence<byte> line, out bool tooLong)
    {
        tooLong = false;
        SequenceReader<byte> probe = reader;
        if (!probe.TryReadTo(out ReadOnlySequence<byte> withCr, (byte)'\n'))
        {
            line = default;
            tooLong = reader.Remaining > limit;
            return false;
        }

        long length = withCr.Length + 1;
        if (length > limit || withCr.IsEmpty || LastByte(withCr) != (byte)'\r')
        {
            line = default;
            tooLong = true;
            return false;
        }

        line = withCr.Slice(0, withCr.Length - 1);
        reader = probe;
        return true;
    }

    private static byte LastByte(ReadOnlySequence<byte> sequence)
    {
        Span<byte> last = stackalloc byte[1];
        sequence.Slice(sequence.Length - 1).CopyTo(last);
        return last[0];
    }

    private static bool TryParseChunkLine(ReadOnlySequence<byte> line, out long size)
    {
        if (line.IsSingleSegment)
        {
            return TryParseChunkLine(line.FirstSpan, out size);
        }

        Span<byte> copy = stackalloc byte[MaxChunkLineBytes];
        line.CopyTo(copy);
        return TryParseChunkLine(copy[..(int)line.Length], out size);
    }

    /// <summary>chunk-size [ chunk-ext ] without the CRLF (RFC 9112 §7.1, §7.1.1).</summary>
    internal static bool TryParseChunkLine(ReadOnlySpan<byte> line, out long size)
    {
        size = 0;
        int i = 0;

        // chunk-size = 1*HEXDIG; leading zeros are allowed, a value beyond what we can count is not.
        int digit;
        while (i < line.Length && (digit = HexValue(line[i])) >= 0)
        {
            if (size > (long.MaxValue >> 4))
            {
                return false;
            }

            size = (size << 4) | (uint)digit;
            i++;
        }

        if (i == 0)
        {
            return false;
        }

        // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        while (i < line.Length)
        {
            i = SkipWhitespace(line, i);
            if (i == line.Length || line[i] != (byte)';')
            {
                return false;
            }

            i = SkipWhitespace(line, i + 1);
            int nameLength = TokenLength(line[i..]);
            if (nameLength == 0)
            {
                return false;
            }

            i += nameLength;
            int afterName = SkipWhitespace(line, i);
            if (afterName < line.Length && line[afterName] == (byte)'=')
            {
                // chunk-ext-val = token / quoted-string
                i = SkipWhitespace(line, afterName + 1);
                int valueLength = i < line.Length && line[i] == (byte)'"'
                    ? QuotedStringLength(line[i..])
                    : TokenLength(line[i..]);
                if (valueLength == 0)
                {
                    return false;
                }

                i += valueLength;
            }
        }

        return true;
    }

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };

    private static int SkipWhitespace(ReadOnlySpan<byte> s, int i)
    {
        while (i < s.Length && s[i] is (byte)' ' or (byte)'\t')
        {
            i++;
        }

        return i;
    }

    private static int TokenLength(ReadOnlySpan<byte> s)
    {
        int n = 0;
        while (n < s.Length && HttpRequestParser.IsToken(s.Slice(n, 1)))
        {
            n++;
        }

        return n;
    }

    /// <summary>
    /// Length of the quoted-string at the start of <paramref name="s"/> (RFC 9110 §5.6.4), or 0 when there is none.
    /// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text; quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
    /// </summary>
    private static int QuotedStringLength(ReadOnlySpan<byte> s)
    {
        for (int i = 1; i < s.Length; i++)
        {
            byte c = s[i];
            if (c == (byte)'"')
            {
                return i + 1;
            }

            if (c == (byte)'\\')
            {
                i++;
                if (i == s.Length || !IsQuotable(s[i]))
                {
                    return 0;
                }
            }
            else if (!IsQuotable(c))
            {
                return 0;
            }
        }

        return 0;
    }

    private static bool IsQuotable(byte c) => c is (byte)'\t' or >= 0x20 and not 0x7F;

    private static bool IsWellFormedFieldLine(ReadOnlySequence<byte> line)
    {
        if (line.IsSingleSegment)
        {
            return HttpRequestParser.IsWellFormedFieldLine(line.FirstSpan);
        }

        byte[] rented = ArrayPool<byte>.Shared.Rent((int)line.Length);
        try
        {
            line.CopyTo(rented);
            return HttpRequestParser.IsWellFormedFieldLine(rented.AsSpan(0, (int)line.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
