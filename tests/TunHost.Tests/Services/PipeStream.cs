using System.Buffers;
using System.IO.Pipelines;

namespace TunStack.Host.Tests.Services;

/// <summary>
/// A stream over two in-memory pipes with the semantics of <see cref="TunStackStream"/>: reads return 0 at the
/// writer's completion, writes fail with <see cref="IOException"/> once the reader is gone, <see cref="CompleteWrites"/>
/// completes the output (the FIN), and disposing completes both ends.
/// </summary>
internal sealed class PipeStream(PipeReader input, PipeWriter output) : Stream
{
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            if (!result.Buffer.IsEmpty)
            {
                int n = (int)Math.Min(result.Buffer.Length, buffer.Length);
                result.Buffer.Slice(0, n).CopyTo(buffer.Span);
                input.AdvanceTo(result.Buffer.GetPosition(n));
                return n;
            }
            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) return 0;
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var result = await output.WriteAsync(buffer, cancellationToken);
        if (result.IsCompleted) throw new IOException("the peer stopped reading");
    }

    public void CompleteWrites() => output.Complete();

    public override async ValueTask DisposeAsync()
    {
        await input.CompleteAsync();
        await output.CompleteAsync();
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
