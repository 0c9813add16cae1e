using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace TunStack;

/// <summary>
/// A <see cref="TunStackConnection"/> as a <see cref="Stream"/>, the way <see cref="NetworkStream"/> presents a
/// socket: reads return 0 at the peer's FIN, writes are sent as soon as the window allows, and failures are
/// <see cref="IOException"/>s whose inner exception is the <see cref="SocketException"/> (for example
/// <see cref="SocketError.ConnectionReset"/>). <see cref="CompleteWrites"/> half-closes (FIN), as
/// <see cref="Socket.Shutdown"/> with <see cref="SocketShutdown.Send"/> does. Disposing the stream disposes the
/// connection. One reader and one writer may use it at the same time.
/// </summary>
public sealed class TunStackStream : Stream
{
    private readonly TunStackConnection _connection;
    private int _writesCompleted;
    private bool _readerDone; // disposed: a read that fails because the pipe was completed under it returns 0

    internal TunStackStream(TunStackConnection connection) => _connection = connection;

    /// <summary>The connection this stream reads and writes.</summary>
    public TunStackConnection Connection => _connection;

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <inheritdoc />
    /// <remarks>
    /// A zero-byte read works as <see cref="System.Net.Sockets.NetworkStream"/>'s does: it completes (with 0) once data
    /// has arrived or the peer has finished, consuming nothing, so that a server can wait for a request without holding
    /// a buffer for it.
    /// </remarks>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var input = _connection.Input;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new IOException($"Unable to read data from the transport connection: {e.Message}.", e);
            }
            catch (InvalidOperationException) when (_connection.Closed.IsCompleted || Volatile.Read(ref _readerDone))
            {
                return 0; // the stream was disposed under a reader
            }
            var data = result.Buffer;
            if (buffer.IsEmpty)
            {
                input.AdvanceTo(data.Start, data.Start); // nothing consumed: the next read gets it all
                if (!data.IsEmpty || result.IsCompleted) return 0;
            }
            else if (!data.IsEmpty)
            {
                int n = (int)Math.Min(data.Length, buffer.Length);
                data.Slice(0, n).CopyTo(buffer.Span);
                input.AdvanceTo(data.GetPosition(n));
                return n;
            }
            else
            {
                input.AdvanceTo(data.End);
                if (result.IsCompleted) return 0;
            }
            if (result.IsCanceled) throw new OperationCanceledException(cancellationToken);
        }
    }

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        byte[] rented = ArrayPool<byte>.Shared.Rent(buffer.Length);
        try
        {
            int n = ReadAsync(rented.AsMemory(0, buffer.Length)).AsTask().GetAwaiter().GetResult();
            rented.AsSpan(0, n).CopyTo(buffer);
            return n;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _writesCompleted) != 0)
            throw new InvalidOperationException("Writing is complete (CompleteWrites was called).");
        FlushResult result;
        try
        {
            result = await _connection.Output.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new IOException($"Unable to write data to the transport connection: {e.Message}.", e);
        }
        if (result.IsCanceled) throw new OperationCanceledException(cancellationToken);
        if (result.IsCompleted)
            throw new IOException("Unable to write data to the transport connection: the connection is closed.",
                new SocketException((int)SocketError.Shutdown));
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override void Write(ReadOnlySpan<byte> buffer) => WriteAsync(buffer.ToArray()).AsTask().GetAwaiter().GetResult();

    /// <summary>Writes are sent as they are made; there is nothing to flush.</summary>
    public override void Flush() { }

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Half-close: no more writes; our FIN follows what was written. Reading goes on until the peer's FIN. The same as
    /// <c>QuicStream.CompleteWrites()</c> or <c>shutdown(SHUT_WR)</c>.
    /// </summary>
    public void CompleteWrites()
    {
        if (Interlocked.Exchange(ref _writesCompleted, 1) == 0)
            _connection.Output.Complete();
    }

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Disposes the connection: FIN after the data written, or RST if received data was left unread.</summary>
    public override async ValueTask DisposeAsync()
    {
        Volatile.Write(ref _readerDone, true);
        await _connection.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Volatile.Write(ref _readerDone, true);
            _connection.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        base.Dispose(disposing);
    }
}
