using System.IO.Pipelines;

namespace TunStack.Host.Services;

/// <summary>
/// The body of <c>/bytes/N</c>: byte i is <c>Text[i % 64]</c>. Any slice of the stream can be checked
/// without knowing what came before, and a prefix of N bytes is easy to reproduce for a SHA-256 check.
/// </summary>
internal static class BytePattern
{
    /// <summary>The 64-byte period.</summary>
    public const string Text = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

    /// <summary>Largest run copied in one go.</summary>
    public const int MaxChunk = 64 * 1024;

    /// <summary>Requested from the writer per chunk.</summary>
    public const int ChunkHint = 16 * 1024;

    /// <summary>Bytes written between flushes, so that a flush (and its possible wait) is amortised over a large write.</summary>
    public const int FlushThreshold = 64 * 1024;

    // MaxChunk + one period: a run of up to MaxChunk bytes starting at any phase is a single slice.
    private static readonly byte[] Repeated = CreateRepeated();

    private static byte[] CreateRepeated()
    {
        byte[] period = System.Text.Encoding.ASCII.GetBytes(Text);
        byte[] buffer = new byte[MaxChunk + period.Length];
        for (int i = 0; i < buffer.Length; i += period.Length)
        {
            period.CopyTo(buffer, i);
        }

        return buffer;
    }

    /// <summary>Fills <paramref name="destination"/> with the stream's bytes starting at <paramref name="offset"/>.</summary>
    public static void Fill(Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int n = Math.Min(destination.Length, MaxChunk);
            Repeated.AsSpan((int)(offset & 63), n).CopyTo(destination);
            destination = destination[n..];
            offset += n;
        }
    }

    /// <summary>
    /// Streams bytes [0, <paramref name="count"/>) into <paramref name="output"/>, flushing every
    /// <see cref="FlushThreshold"/> bytes and at the end. Anything already written but unflushed (the
    /// response head) goes out with the first flush. Returns false when the reader is gone or the flush was cancelled.
    /// </summary>
    /// <param name="idle">Times each flush against the connection's idle timeout, when given.</param>
    public static async ValueTask<bool> WriteAsync(PipeWriter output, long count, CancellationToken cancellationToken, IdleWatch? idle = null)
    {
        long offset = 0;
        do
        {
            long pending = 0;
            while (offset < count && pending < FlushThreshold)
            {
                Memory<byte> memory = output.GetMemory(ChunkHint);
                int n = (int)Math.Min(Math.Min(memory.Length, MaxChunk), count - offset);
                Repeated.AsSpan((int)(offset & 63), n).CopyTo(memory.Span);
                output.Advance(n);
                offset += n;
                pending += n;
            }

            idle?.BeginWait(flush: true);
            FlushResult flush = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            idle?.EndWait();
            if (flush.IsCompleted || flush.IsCanceled)
            {
                return false;
            }
        }
        while (offset < count);

        return true;
    }
}
