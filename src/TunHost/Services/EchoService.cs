using System.Buffers;

namespace TunStack.Host.Services;

/// <summary>
/// Echo protocol (RFC 862): every byte received is sent back. When the peer half-closes, the remaining data is echoed
/// and then our side closes too. Written on the public stream API (<see cref="TunStackStream"/>), as any .NET
/// socket code would be.
/// </summary>
public sealed class EchoService : IStreamService
{
    private long _bytesEchoed;

    /// <inheritdoc />
    public string Name => "echo";

    /// <inheritdoc />
    public ushort Port { get; init; } = 7;

    /// <summary>Total bytes written back, over all connections.</summary>
    public long BytesEchoed => Interlocked.Read(ref _bytesEchoed);

    /// <inheritdoc />
    public async Task HandleAsync(Stream stream, Action completeWrites, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int n;
            // Not reading while the write waits for window is what pushes back on the sender.
            while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await stream.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                Interlocked.Add(ref _bytesEchoed, n);
            }
            // The peer's FIN: everything is echoed, now ours follows.
            completeWrites();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset, abort or shutdown: the connection is over either way.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
