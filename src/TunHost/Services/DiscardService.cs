using System.Buffers;

namespace TunStack.Host.Services;

/// <summary>
/// Discard protocol (RFC 863): everything received is thrown away; nothing is ever sent. Our side closes once the peer
/// has closed its side, or when it sent nothing for <see cref="IdleTimeout"/>. Written on the
/// public stream API (<see cref="TunStackStream"/>).
/// </summary>
public sealed class DiscardService : IStreamService
{
    private long _bytesDiscarded;
    private IdleMonitor? _idle;

    /// <inheritdoc />
    public string Name => "discard";

    /// <inheritdoc />
    public ushort Port { get; init; } = 9;

    /// <summary>How long a connection may wait for its peer (<see cref="IdleMonitor"/>); infinite: forever.</summary>
    public TimeSpan IdleTimeout { get; init; } = IdleMonitor.DefaultTimeout;

    /// <summary>The clock of the idle timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal IdleMonitor Idle => LazyInitializer.EnsureInitialized(ref _idle, () => new IdleMonitor(IdleTimeout, TimeProvider));

    /// <summary>Total bytes received and dropped, over all connections.</summary>
    public long BytesDiscarded => Interlocked.Read(ref _bytesDiscarded);

    /// <inheritdoc />
    public async Task HandleAsync(Stream stream, Action completeWrites, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(completeWrites);
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
                Interlocked.Add(ref _bytesDiscarded, n);
                EchoService.ReleaseWhenDrained(ref buffer, n);
            }
            completeWrites();
        }
        catch (OperationCanceledException) when (idle is { Expired: true, Stopped: false })
        {
            completeWrites(); // nothing from the peer for IdleTimeout: our FIN
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset, abort or shutdown.
        }
        finally
        {
            if (buffer is not null)
                ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
