using System.Net;
using System.Net.Sockets;
using TunStack;
using TunStack.Host.Services;

namespace TunStack.Host.KernelReference;

/// <summary>
/// Serves the stack's own services (<see cref="IConnectionService"/>, <see cref="IStreamService"/>) over ordinary kernel sockets, so that an end-to-end
/// benchmark can put the Linux TCP implementation beside ours with exactly the same application code on top.
/// </summary>
/// <remarks>
/// One accept loop per service; each accepted socket becomes a <see cref="SocketDuplexPipe"/> and is handed to the
/// service like a stack connection. The kernel does not expose a connection's initial sequence numbers, so
/// <see cref="TcpConnectionInfo"/> carries 0 for both; both MSS fields carry the kernel's effective send MSS
/// (TCP_MAXSEG). Sockets get TCP_NODELAY, as most servers set it.
/// </remarks>
internal sealed class KernelReferenceServer : IAsyncDisposable
{
    /// <summary>Pending connections per listening socket (load generators open tens at once).</summary>
    private const int Backlog = 1024;

    private const int IpProtoTcp = 6;
    private const int TcpMaxSeg = 2;

    private readonly IReadOnlyList<IService> _services;
    private readonly List<Socket> _listeners = [];
    private readonly TextWriter _log;

    public KernelReferenceServer(IPAddress address, IReadOnlyList<IService> services, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(address);
        Address = address;
        _services = services;
        _log = log;
    }

    public IPAddress Address { get; }

    /// <summary>Where each service listens, in the order of the services (known after <see cref="Listen"/>; port 0 binds an ephemeral port).</summary>
    public IReadOnlyList<IPEndPoint> EndPoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToArray();

    /// <summary>Binds and listens on every service's port. Throws <see cref="SocketException"/> when a port cannot be bound.</summary>
    public void Listen()
    {
        foreach (IService service in _services)
        {
            var listener = new Socket(Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                listener.Bind(new IPEndPoint(Address, service.Port));
                listener.Listen(Backlog);
            }
            catch
            {
                listener.Dispose();
                throw;
            }

            _listeners.Add(listener);
        }
    }

    /// <summary>Accepts and serves connections on every listener until <paramref name="cancellationToken"/> is cancelled.</summary>
    public Task RunAsync(CancellationToken cancellationToken)
    {
        if (_listeners.Count != _services.Count)
        {
            throw new InvalidOperationException("Listen() first.");
        }

        return Task.WhenAll(_services.Select((service, i) => AcceptLoopAsync(service, _listeners[i], cancellationToken)));
    }

    private async Task AcceptLoopAsync(IService service, Socket listener, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                continue; // the client gave up before we accepted it
            }

            _ = ServeAsync(service, socket, cancellationToken);
        }
    }

    private async Task ServeAsync(IService service, Socket socket, CancellationToken cancellationToken)
    {
        if (service is IStreamService streamService)
        {
            await ServeStreamAsync(streamService, socket, cancellationToken).ConfigureAwait(false);
            return;
        }
        var connectionService = (IConnectionService)service;
        var pipe = new SocketDuplexPipe(socket);
        TcpConnectionInfo? info = null;
        try
        {
            socket.NoDelay = true;
            info = Describe(socket);
            await connectionService.HandleAsync(pipe, info, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset by the peer or shutting down: nothing to report.
        }
        catch (Exception e)
        {
            _log.WriteLine($"tunstack kernel-reference: {service.Name} failed on {info?.RemoteEndPoint}: {e.Message}");
            pipe.Abort();
        }
        finally
        {
            await pipe.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A stream service over the socket as <see cref="NetworkStream"/>; half-close is shutdown(SHUT_WR).</summary>
    private async Task ServeStreamAsync(IStreamService service, Socket socket, CancellationToken cancellationToken)
    {
        try
        {
            socket.NoDelay = true;
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await service.HandleAsync(stream, () => socket.Shutdown(SocketShutdown.Send), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset by the peer or shutting down: nothing to report.
        }
        catch (Exception e)
        {
            _log.WriteLine($"tunstack kernel-reference: {service.Name} failed: {e.Message}");
        }
        finally
        {
            socket.Dispose();
        }
    }

    private static TcpConnectionInfo Describe(Socket socket)
    {
        Span<byte> value = stackalloc byte[sizeof(int)];
        int length = socket.GetRawSocketOption(IpProtoTcp, TcpMaxSeg, value);
        ushort mss = length == sizeof(int) ? (ushort)Math.Clamp(BitConverter.ToInt32(value), 0, ushort.MaxValue) : (ushort)0;
        return new TcpConnectionInfo(
            (IPEndPoint)socket.LocalEndPoint!,
            (IPEndPoint)socket.RemoteEndPoint!,
            PeerInitialSequence: 0,
            LocalInitialSequence: 0,
            PeerMss: mss,
            LocalMss: mss);
    }

    public ValueTask DisposeAsync()
    {
        foreach (Socket listener in _listeners)
        {
            listener.Dispose();
        }

        _listeners.Clear();
        return ValueTask.CompletedTask;
    }
}
