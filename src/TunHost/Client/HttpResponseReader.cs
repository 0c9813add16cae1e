using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;

namespace TunStack.Host.Client;

/// <summary>The status line and the headers the client acts on.</summary>
public sealed record HttpResponseHead(int Status, string Reason, long? ContentLength, bool Chunked, bool ConnectionClose);

/// <summary>Why a response could not be read.</summary>
public sealed class HttpResponseException(string message) : Exception(message);

/// <summary>
/// Reads an HTTP/1.1 response from a pipe (RFC 9112): the status line and header fields, then the body framed by
/// Transfer-Encoding: chunked (§7.1), Content-Length (§6.2), or the end of the connection (§6.3 item 8). Interim 1xx
/// responses are skipped. Only what a GET client needs; anything malformed is an <see cref="HttpResponseException"/>.
/// </summary>
public static class HttpResponseReader
{
    private const int MaxHeadBytes = 64 * 1024;

    public static async Task<HttpResponseHead> ReadHeadAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            string head = await ReadUntilBlankLineAsync(input, cancellationToken).ConfigureAwait(false);
            var response = ParseHead(head);
            if (response.Status is >= 100 and < 200)
                continue; // interim response (RFC 9110 §15.2)
            return response;
        }
    }

    public static HttpResponseHead ParseHead(string head)
    {
        var lines = head.Split("\r\n");
        var status = lines[0].Split(' ', 3);
        if (status.Length < 2 || !status[0].StartsWith("HTTP/1.", StringComparison.Ordinal)
            || status[1].Length != 3 || !int.TryParse(status[1], NumberStyles.None, CultureInfo.InvariantCulture, out int code))
            throw new HttpResponseException($"not an HTTP/1.x status line: \"{lines[0]}\"");
        long? length = null;
        bool chunked = false, close = false;
        foreach (string line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) throw new HttpResponseException($"malformed header field: \"{line}\"");
            string name = line[..colon].Trim();
            string value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || (length is long m && m != n))
                    throw new HttpResponseException($"bad Content-Length: \"{value}\"");
                length = n;
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                chunked = value.Split(',').Last().Trim().Equals("chunked", StringComparison.OrdinalIgnoreCase);
            }
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
            {
                close |= value.Split(',').Any(t => t.Trim().Equals("close", StringComparison.OrdinalIgnoreCase));
            }
        }
        return new HttpResponseHead(code, status.Length > 2 ? status[2] : "", length, chunked, close);
    }

    /// <summary>Copies the body to <paramref name="destination"/>; returns its length.</summary>
    public static async Task<long> CopyBodyAsync(PipeReader input, HttpResponseHead head, Stream destination,
        CancellationToken cancellationToken)
    {
        if (head.Status is 204 or 304)
            return 0;
        if (head.Chunked)
            return await CopyChunkedAsync(input, destination, cancellationToken).ConfigureAwait(false);
        if (head.ContentLength is long length)
        {
            await CopyExactlyAsync(input, destination, length, cancellationToken).ConfigureAwait(false);
            return length;
        }
        return await CopyToEndAsync(input, destination, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<long> CopyChunkedAsync(PipeReader input, Stream destination, CancellationToken cancellationToken)
    {
        long total = 0;
        while (true)
        {
            string line = await ReadLineAsync(input, cancellationToken).ConfigureAwait(false);
            string size = line.Split(';', 2)[0].Trim(); // chunk extensions are ignored (RFC 9112 §7.1.1)
            if (!long.TryParse(size, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long n) || n < 0)
                throw new HttpResponseException($"bad chunk size: \"{line}\"");
            if (n == 0)
            {
                while ((await ReadLineAsync(input, cancellationToken).ConfigureAwait(false)).Length > 0) { } // trailers
                return total;
            }
            await CopyExactlyAsync(input, destination, n, cancellationToken).ConfigureAwait(false);
            total += n;
            if ((await ReadLineAsync(input, cancellationToken).ConfigureAwait(false)).Length != 0)
                throw new HttpResponseException("chunk data not followed by CRLF");
        }
    }

    private static async Task CopyExactlyAsync(PipeReader input, Stream destination, long length, CancellationToken cancellationToken)
    {
        long remaining = length;
        while (remaining > 0)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var take = buffer.Slice(0, Math.Min(remaining, buffer.Length));
            foreach (var memory in take)
                await destination.WriteAsync(memory, cancellationToken).ConfigureAwait(false);
            remaining -= take.Length;
            input.AdvanceTo(take.End);
            if (remaining > 0 && result.IsCompleted)
                throw new HttpResponseException($"connection closed after {length - remaining} of {length} body bytes");
        }
    }

    private static async Task<long> CopyToEndAsync(PipeReader input, Stream destination, CancellationToken cancellationToken)
    {
        long total = 0;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            foreach (var memory in result.Buffer)
                await destination.WriteAsync(memory, cancellationToken).ConfigureAwait(false);
            total += result.Buffer.Length;
            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
                return total;
        }
    }

    private static async Task<string> ReadUntilBlankLineAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            var end = Find(buffer, "\r\n\r\n"u8);
            if (end is SequencePosition position)
            {
                string head = Encoding.Latin1.GetString(buffer.Slice(0, position));
                input.AdvanceTo(buffer.GetPosition(4, position));
                return head;
            }
            if (buffer.Length > MaxHeadBytes)
                throw new HttpResponseException($"response head longer than {MaxHeadBytes} bytes");
            if (result.IsCompleted)
                throw new HttpResponseException(buffer.IsEmpty ? "connection closed without a response" : "connection closed inside the response head");
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static async Task<string> ReadLineAsync(PipeReader input, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (Find(buffer, "\r\n"u8) is SequencePosition position)
            {
                string line = Encoding.Latin1.GetString(buffer.Slice(0, position));
                input.AdvanceTo(buffer.GetPosition(2, position));
                return line;
            }
            if (buffer.Length > MaxHeadBytes)
                throw new HttpResponseException("line too long in chunked body");
            if (result.IsCompleted)
                throw new HttpResponseException("connection closed inside the chunked body");
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static SequencePosition? Find(ReadOnlySequence<byte> buffer, ReadOnlySpan<byte> delimiter)
    {
        var reader = new SequenceReader<byte>(buffer);
        return reader.TryReadTo(out ReadOnlySequence<byte> _, delimiter, advancePastDelimiter: false) ? reader.Position : null;
    }
}
