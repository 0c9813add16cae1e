using System.IO.Pipelines;
using TunStack.Api;

namespace TunStack.Host.Services;

/// <summary>
/// An application that answers TCP connections accepted on one local port of the stack.
/// </summary>
/// <remarks>
/// Pipe semantics: <see cref="IDuplexPipe.Input"/> completes when the peer sent FIN; completing
/// <see cref="IDuplexPipe.Output"/> makes the stack send FIN after the data written so far;
/// <c>FlushAsync</c> waits while the stack's send buffer is full. A handler never throws for a bad
/// request or a reset connection: it completes both pipes and returns.
/// </remarks>
public interface IConnectionService
{
    /// <summary>Short name for logs and the command line ("http", "echo", "discard").</summary>
    string Name { get; }

    /// <summary>The local TCP port the service listens on.</summary>
    ushort Port { get; }

    /// <summary>Serves one connection until either side closes it. Completes both pipes before returning.</summary>
    Task HandleAsync(IDuplexPipe transport, ConnectionInfo info, CancellationToken cancellationToken);
}
