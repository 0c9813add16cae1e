using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace TunStack.AspNetCore;

/// <summary>
/// Kestrel's transport for the stack's endpoints: binds an <see cref="IPEndPoint"/> whose address is one of the
/// stack's (<see cref="CanBind"/>), so that Kestrel keeps its socket transport for every other endpoint.
/// </summary>
public sealed class TunStackConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly TunStackHost _host;
    private readonly ILogger _logger;

    /// <summary>A transport for <paramref name="host"/>.</summary>
    public TunStackConnectionListenerFactory(TunStackHost host, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        _host = host;
        _logger = (ILogger?)loggerFactory?.CreateLogger("TunStack.AspNetCore") ?? NullLogger.Instance;
    }

    /// <summary>True for an <see cref="IPEndPoint"/> whose address is one of the stack's.</summary>
    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint ip && _host.IsLocalAddress(ip.Address);

    /// <inheritdoc />
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not IPEndPoint ip || !_host.IsLocalAddress(ip.Address))
            throw new NotSupportedException($"{endpoint} is not an address of the stack ({string.Join(", ", _host.Addresses)}).");
        var listener = await _host.ListenAsync(ip).AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        _logger.LogDebug("Kestrel listens on {EndPoint} over TunStack", ip);
        return new TunStackConnectionListener(listener, _logger);
    }
}
