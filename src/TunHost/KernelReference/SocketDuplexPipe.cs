using System.IO.Pipelines;
using System.Net.Sockets;

namespace TunStack.Host.KernelReference;

/// <summary>
/// A connected kernel socket as an <see cref="IDuplexPipe"/> with the same semantics as the stack's
/// <c>TcpConnection</c>: <see cref="Input"/> completes at the peer's FIN; completing <see cref="Output"/> sends
/// our FIN after the data written so far (<c>shutdown(SHUT_WR)</c>), so half-close works; completing it with an
/// exception resets the connection.
/// </summary>
internal sealed class SocketDuplexPipe : IDuplexPipe, IAsyncDisposable
{
    /// <summary>
    /// Bytes the reader asks for per read and the writer's buffer segment size, so one flush of the HTTP service's
    /// 64 KiB is one send() rather than four (the stack's loop moves up to 64 KiB at a time too).
    /// </summary>
    private const int BufferSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    public SocketDuplexPipe(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: BufferSize, minimumReadSize: BufferSize / 4, leaveOpen: true));
        Output = new ShutdownOnCompleteWriter(
            PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: BufferSize, leaveOpen: true)), this);
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    /// <summary>Resets the connection (RST) at once: SO_LINGER with a zero timeout, then close.</summary>
    public void Abort()
    {
        try
        {
            _socket.LingerState = new LingerOption(enable: true, seconds: 0);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }

        _socket.Dispose();
    }

    /// <summary>Completes both pipes (a graceful close if the output was not already completed), then closes the socket.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await Input.CompleteAsync().ConfigureAwait(false);
            await Output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // The peer reset the connection while the last bytes were being written.
        }
        finally
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
            _socket.Dispose();
        }
    }

    private void ShutdownSend()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Reset by the peer or already closed: there is no sending side left to shut down.
        }
    }

    /// <summary>Writes through to the stream's pipe writer; completion also ends our sending direction.</summary>
    private sealed class ShutdownOnCompleteWriter(PipeWriter inner, SocketDuplexPipe owner) : PipeWriter
    {
        private bool _completed;

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
            inner.FlushAsync(cancellationToken);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
            inner.WriteAsync(source, cancellationToken);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Complete(Exception? exception = null)
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
            if (exception is not null)
            {
                inner.Complete(exception);
                owner.Abort();
                return;
            }

            try
            {
                inner.Complete(); // writes what is still buffered
            }
            finally
            {
                owner.ShutdownSend();
            }
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
            if (exception is not null)
            {
                await inner.CompleteAsync(exception).ConfigureAwait(false);
                owner.Abort();
                return;
            }

            try
            {
                await inner.CompleteAsync().ConfigureAwait(false);
            }
            finally
            {
                owner.ShutdownSend();
            }
        }
    }
}
