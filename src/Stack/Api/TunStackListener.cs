using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using TunStack.Runtime;
using TunStack.Tcp;

namespace TunStack;

/// <summary>
/// A listening TCP endpoint on the stack, as <see cref="System.Net.Sockets.TcpListener"/> is for the kernel: take
/// connections whose three-way handshake has completed with <see cref="AcceptAsync"/>; dispose it to stop listening
/// (connections still waiting to be accepted are then reset). Made by <see cref="TunStackHost.ListenAsync(IPEndPoint, TunStackListenerOptions?)"/>
/// or, for forwarding, <see cref="TunStackHost.ListenAnyAsync"/>. Thread-safe.
/// </summary>
public sealed class TunStackListener : IAsyncDisposable
{
    private readonly Channel<TunStackConnection> _accepted;
    private readonly EventLoop[] _loops;          // one per engine shard; each delivers its own connections
    private readonly ListenBinding?[] _bindings;  // by shard: the engine's passive OPEN this listener is part of
    private readonly Func<IPEndPoint, bool>? _forwardFilter;
    private int _disposed;

    internal TunStackListener(EventLoop[] loops, IPEndPoint localEndPoint, Func<IPEndPoint, bool>? forwardFilter)
    {
        _loops = loops;
        _bindings = new ListenBinding?[loops.Length];
        _accepted = Channel.CreateUnbounded<TunStackConnection>(new UnboundedChannelOptions { SingleWriter = loops.Length == 1 });
        LocalEndPoint = localEndPoint;
        _forwardFilter = forwardFilter;
    }

    /// <summary>The binding on <paramref name="loop"/>'s shard, or null where it is not (or no longer) bound.</summary>
    internal ListenBinding? BindingOn(EventLoop loop) => _bindings[loop.Stack.ShardIndex];

    /// <summary>Loop thread of <paramref name="loop"/>.</summary>
    internal void SetBinding(EventLoop loop, ListenBinding binding) => _bindings[loop.Stack.ShardIndex] = binding;

    /// <summary>
    /// The endpoint listened on. <see cref="IPAddress.IPv6Any"/> takes connections to every address of the stack,
    /// <see cref="IPAddress.Any"/> to every IPv4 address, and an address of the stack only those to that address. For the
    /// forwarding listener this is [::]:0.
    /// </summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>True for the forwarding listener of <see cref="TunStackHost.ListenAnyAsync"/>.</summary>
    public bool IsForwarding => _forwardFilter is not null;

    /// <summary>
    /// Waits for the next established connection and takes it from the accept queue. Throws
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled and
    /// <see cref="ObjectDisposedException"/> once the listener or its host is disposed.
    /// </summary>
    public async ValueTask<TunStackConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        TunStackConnection connection;
        try
        {
            connection = await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(TunStackListener));
        }
        var tcb = connection.Tcb;
        var loop = connection.Loop;
        loop.Post(() => loop.Stack.Accepted(tcb)); // it leaves the engine's accept queue (the backlog)
        return connection;
    }

    /// <summary>Stops listening: new SYNs for this endpoint are answered with RST; established but unaccepted connections are reset.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var loop in _loops)
            await loop.InvokeAsync(() => { loop.CloseListener(this); return true; }).ConfigureAwait(false);
    }

    /// <summary>Whether the connection to <paramref name="local"/> belongs to this listener (for the address match).</summary>
    internal bool Matches(IPAddress local, bool exactOnly)
    {
        var mine = LocalEndPoint.Address;
        if (IsForwarding) return !exactOnly;
        if (mine.Equals(IPAddress.IPv6Any)) return !exactOnly;
        if (mine.Equals(IPAddress.Any)) return !exactOnly && local.AddressFamily == AddressFamily.InterNetwork;
        return mine.Equals(local);
    }

    /// <summary>Loop thread (of the connection's shard).</summary>
    internal void Enqueue(TunStackConnection connection)
    {
        if (!_accepted.Writer.TryWrite(connection))
            connection.AbortOnLoop();
    }

    /// <summary>A loop thread: no more connections; returns those nobody accepted (the first call takes them all).</summary>
    internal List<TunStackConnection> CompleteAccepting()
    {
        _accepted.Writer.TryComplete();
        var left = new List<TunStackConnection>();
        while (_accepted.Reader.TryRead(out var connection))
            left.Add(connection);
        return left;
    }

    /// <inheritdoc />
    public override string ToString() => IsForwarding ? "forwarding listener" : $"listener on {LocalEndPoint}";
}

/// <summary>Options of one listener.</summary>
public sealed class TunStackListenerOptions
{
    /// <summary>
    /// Established connections that may wait to be accepted (listen(2)'s backlog); beyond it new SYNs are dropped.
    /// Null takes <see cref="TunStackOptions.Backlog"/>. Listeners on one port share the first one's backlog.
    /// </summary>
    public int? Backlog { get; init; }
}

/// <summary>
/// Loop thread: the engine's passive OPEN of one port (or the forwarding listener) and the application listeners on it,
/// one per local address or wildcard.
/// </summary>
internal sealed class ListenBinding(ListenEndpoint endpoint, bool isAny)
{
    private readonly List<TunStackListener> _listeners = new();

    public ListenEndpoint Endpoint { get; } = endpoint;
    public bool IsAny { get; } = isAny;
    public bool IsEmpty => _listeners.Count == 0;
    public IReadOnlyList<TunStackListener> Listeners => _listeners;

    public bool TryAdd(TunStackListener listener)
    {
        foreach (var other in _listeners)
            if (other.LocalEndPoint.Address.Equals(listener.LocalEndPoint.Address))
                return false;
        _listeners.Add(listener);
        return true;
    }

    public bool Remove(TunStackListener listener) => _listeners.Remove(listener);

    /// <summary>The listener of this exact address, else a wildcard one that covers it, else null.</summary>
    public TunStackListener? Select(IPAddress local)
    {
        foreach (var listener in _listeners)
            if (listener.Matches(local, exactOnly: true)) return listener;
        foreach (var listener in _listeners)
            if (listener.Matches(local, exactOnly: false)) return listener;
        return null;
    }
}
