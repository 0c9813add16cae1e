using System.Buffers;

namespace TunStack.Host.Services;

/// <summary>
/// Discard protocol (RFC 863): everything received is thrown away; nothing is ever sent. Our side closes once the peer
/// has closed its side. Written on the public stream API (<see cref="TunStackStream"/>).
/// </summary>
public sealed class DiscardService : IStreamService
{
    private long _bytesDiscarded;

    /// <inheritdoc />
    public string Name => "discard";

    /// <inheritdoc />
    public ushort Port { get; init; } = 9;

    /// <summary>Total bytes received and dropped, over all connections.</summary>
    public long BytesDiscarded => Interlocked.Read(ref _bytesDiscarded);

    /// <inheritdoc />
    public async Task HandleAsync(Stream stream, Action completeWrites, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                Interlocked.Add(ref _bytesDiscarded, n);
            completeWrites();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset, abort or shutdown.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
