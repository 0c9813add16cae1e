using System.IO.Pipelines;

namespace TunStack.Host.Services;

/// <summary>A service that listens on one local TCP port of the stack (and, for the kernel reference, of the kernel).</summary>
public interface IService
{
    /// <summary>Short name for logs and the command line ("http", "echo", "discard").</summary>
    string Name { get; }

    /// <summary>The local TCP port the service listens on.</summary>
    ushort Port { get; }
}

/// <summary>
/// A service that answers each connection through its pipes (<see cref="TunStackConnection"/> is an
/// <see cref="IDuplexPipe"/>; so is the kernel reference's socket adapter).
/// </summary>
/// <remarks>
/// Pipe semantics: <see cref="IDuplexPipe.Input"/> completes when the peer sent FIN; completing
/// <see cref="IDuplexPipe.Output"/> makes the stack send FIN after the data written so far;
/// <c>FlushAsync</c> waits while the stack's send buffer is full. A handler never throws for a bad
/// request or a reset connection: it completes both pipes and returns.
/// </remarks>
public interface IConnectionService : IService
{
    /// <summary>Serves one connection until either side closes it. Completes both pipes before returning.</summary>
    Task HandleAsync(IDuplexPipe transport, TcpConnectionInfo info, CancellationToken cancellationToken);
}

/// <summary>
/// A service written against <see cref="Stream"/>, as code for <see cref="System.Net.Sockets.NetworkStream"/> is:
/// reads return 0 at the peer's FIN, and <c>completeWrites</c> half-closes (our FIN), as
/// <see cref="TunStackStream.CompleteWrites"/> or <c>shutdown(SHUT_WR)</c> does. The caller disposes the stream.
/// </summary>
public interface IStreamService : IService
{
    /// <summary>Serves one connection until either side closes it; never throws for a reset connection.</summary>
    Task HandleAsync(Stream stream, Action completeWrites, CancellationToken cancellationToken);
}
