using System.Buffers;

namespace TunStack.Host.Services;

/// <summary>
/// Echo protocol (RFC 862): every byte received is sent back. When the peer half-closes, the remaining data is echoed
/// and then our side closes too. Written on the public stream API (<see cref="TunStackStream"/>), as any .NET
/// socket code would be. A connection that sends nothing for <see cref="IdleTimeout"/> is closed (FIN);
/// one that stops reading its echo for that long is reset.
/// </summary>
public sealed class EchoService : IStreamService
{
    private long _bytesEchoed;
    private IdleMonitor? _idle;

    /// <inheritdoc />
    public string Name => "echo";

    /// <inheritdoc />
    public ushort Port { get; init; } = 7;

    /// <summary>How long a connection may wait for its peer (<see cref="IdleMonitor"/>); infinite: forever.</summary>
    public TimeSpan IdleTimeout { get; init; } = IdleMonitor.DefaultTimeout;

    /// <summary>The clock of the idle timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal IdleMonitor Idle => LazyInitializer.EnsureInitialized(ref _idle, () => new IdleMonitor(IdleTimeout, TimeProvider));

    /// <summary>Total bytes written back, over all connections.</summary>
    public long BytesEchoed => Interlocked.Read(ref _bytesEchoed);

    /// <inheritdoc />
    public async Task HandleAsync(Stream stream, Action completeWrites, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(completeWrites);
        // The watch times the waits, and cancels its token at the service's stop too.
        using IdleWatch idle = Idle.WatchStream(cancellationToken);
        var token = idle.Token;
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                idle.BeginWait();
                if (buffer is null)
                {
                    // A zero-byte read waits for data without a buffer: an idle connection holds none.
                    await stream.ReadAsync(Memory<byte>.Empty, token).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
                }
                int n = await stream.ReadAsync(buffer, token).ConfigureAwait(false);
                idle.EndWait();
                if (n == 0)
                    break;
                // Not reading while the write waits for window is what pushes back on the sender.
                idle.BeginWait(flush: true);
                await stream.WriteAsync(buffer.AsMemory(0, n), token).ConfigureAwait(false);
                idle.EndWait();
                Interlocked.Add(ref _bytesEchoed, n);
                ReleaseWhenDrained(ref buffer, n);
            }
            // The peer's FIN: everything is echoed, now ours follows.
            completeWrites();
        }
        catch (OperationCanceledException) when (idle is { Expired: true, Stopped: false })
        {
            // Nothing from the peer for IdleTimeout: our FIN. The peer took none of our data for that long: a reset,
            // or the data queued for it would keep the connection alive for ever.
            if (idle.ExpiredInFlush) Reset(stream);
            else completeWrites();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset, abort or shutdown: the connection is over either way.
        }
        finally
        {
            if (buffer is not null)
                ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// After a read of <paramref name="read"/> bytes: a read that did not fill the buffer took all there was, so the
    /// buffer goes back to the pool while the next wait (a zero-byte read) holds none.
    /// </summary>
    internal static void ReleaseWhenDrained(ref byte[]? buffer, int read)
    {
        if (buffer is null || read == buffer.Length) return;
        ArrayPool<byte>.Shared.Return(buffer);
        buffer = null;
    }

    /// <summary>
    /// Resets a stack connection (RST, RFC 9293 §3.10.5) rather than closing it: the data queued for a peer that reads
    /// nothing would otherwise keep it open. A stream of another kind is only closed.
    /// </summary>
    private static void Reset(Stream stream)
    {
        if (stream is TunStackStream tunStream)
            tunStream.Connection.Abort();
        else
            stream.Dispose();
    }
}
