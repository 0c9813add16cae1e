using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace TunStack.AspNetCore;

/// <summary>A Kestrel listener over a <see cref="TunStackListener"/>.</summary>
internal sealed class TunStackConnectionListener(TunStackListener listener, ILogger logger) : IConnectionListener
{
    private readonly CancellationTokenSource _unbound = new();

    public EndPoint EndPoint => listener.LocalEndPoint;

    /// <summary>The next connection, or null once the listener is unbound (Kestrel's contract).</summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
        try
        {
            var connection = await listener.AcceptAsync(both.Token).ConfigureAwait(false);
            logger.LogTrace("Accepted {Connection}", connection);
            return new TunStackConnectionContext(connection);
        }
        catch (OperationCanceledException) when (_unbound.IsCancellationRequested)
        {
            return null;
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        await _unbound.CancelAsync().ConfigureAwait(false);
        await listener.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        _unbound.Dispose();
    }
}
