using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TunStack.Diagnostics;
using TunStack.Runtime;
using TunStack.Wire;

namespace TunStack;

/// <summary>
/// A running TCP/IP stack on a packet device: the engine and its event loop, one dedicated thread. Listen and connect
/// as with sockets; every method is thread-safe (work that touches the engine is posted to the loop thread). On a
/// multi-queue device (<see cref="Linux.TunDevice.OpenQueues"/>) there is one engine shard and loop per queue; each
/// connection lives on the shard its four-tuple hashes to, listeners take connections from every shard, and the
/// counters and limits are the whole stack's.
/// </summary>
/// <example>
/// <code>
/// await using var stack = await TunStackHost.StartAsync(TunDevice.Open("tun0", 1500, offloads: true), new TunStackOptions { Addresses = [IPAddress.Parse("198.18.0.2")] });
/// await using var listener = await stack.ListenAsync(7);
/// while (true)
/// {
///     var connection = await listener.AcceptAsync();
///     _ = Task.Run(async () =>
///     {
///         await using (connection)
///             await connection.GetStream().CopyToAsync(connection.GetStream()); // echo
///     });
/// }
/// </code>
/// </example>
public sealed class TunStackHost : IAsyncDisposable
{
    private readonly EventLoop[] _loops;      // one per device queue and engine shard
    private readonly IPacketDevice[] _devices;
    private readonly EventLoop _loop;         // shard 0's, for what every shard has alike
    private readonly ILogger _logger;
    private int _disposed;
    private int _nextConnectShard;
    private StackMetrics? _metrics;

    private TunStackHost(IPacketDevice[] devices, TunStackOptions options, EventLoop[] loops, ILogger logger)
    {
        _devices = devices;
        Options = options;
        _loops = loops;
        _loop = loops[0];
        _logger = logger;
        Addresses = options.Addresses.ToArray();
    }

    /// <summary>
    /// Starts a stack on <paramref name="device"/>: creates the engine, starts its event loop and returns at once. The
    /// device is disposed with the host unless <see cref="TunStackOptions.LeaveDeviceOpen"/> is set.
    /// </summary>
    /// <param name="device">The packet device: a Linux TUN device (<see cref="Linux.TunDevice.Open"/>), or your own.</param>
    /// <param name="options">Addresses, buffers, timers and limits; null takes the defaults.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">The options cannot work with this device (an IPv6 address with an MTU below 1280, ...).</exception>
    public static Task<TunStackHost> StartAsync(IPacketDevice device, TunStackOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(device);
        return StartAsync([device], options, cancellationToken);
    }

    /// <summary>
    /// Starts a stack on the queues of one multi-queue device (<see cref="Linux.TunDevice.OpenQueues"/>): one engine shard
    /// and event loop thread per queue. The kernel spreads flows over the queues; a packet read on a queue whose shard
    /// does not own its connection is handed to the shard that does. With one queue this is
    /// <see cref="StartAsync(IPacketDevice, TunStackOptions?, CancellationToken)"/>.
    /// </summary>
    /// <param name="queues">The device's queues, all with the same MTU and offloads; disposed with the host unless
    /// <see cref="TunStackOptions.LeaveDeviceOpen"/> is set.</param>
    /// <param name="options">Addresses, buffers, timers and limits (limits are the whole stack's); null takes the defaults.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">No queues, queues that differ, or options that cannot work with this device.</exception>
    public static Task<TunStackHost> StartAsync(IReadOnlyList<IPacketDevice> queues, TunStackOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (queues.Count == 0 || queues.Any(q => q is null))
            throw new ArgumentException("At least one device queue, none null.", nameof(queues));
        var devices = queues.ToArray();
        if (devices.Any(d => d.Mtu != devices[0].Mtu || d.Offloads != devices[0].Offloads))
            throw new ArgumentException("The queues of one device have one MTU and the same offloads.", nameof(queues));
        cancellationToken.ThrowIfCancellationRequested();
        options ??= new TunStackOptions();
        var device = devices[0];
        if (options.Problem(device.Mtu) is { } problem)
            throw new ArgumentException(problem, nameof(options));
        var logger = (ILogger?)options.LoggerFactory?.CreateLogger("TunStack") ?? NullLogger.Instance;
        // Shards share the ISN and SYN-cookie secret: one stack to the outside.
        var stackOptions = options.ToStackOptions(device.Mtu,
            devices.Length > 1 ? System.Security.Cryptography.RandomNumberGenerator.GetBytes(16) : null);
        var tracer = CompositeTracer.Combine(
            options.SegmentTrace is { } trace ? new TextTracer(trace) : null,
            options.Explain is { } explain ? new ExplainTracer(explain, stackOptions.MslMicros) : null);
        if (tracer is not null && devices.Length > 1)
            tracer = new SynchronizedTracer(tracer); // the shards' threads take turns
        var shards = devices.Length > 1 ? new Sharding.StackShards(devices.Length) : null;
        var stacks = new NetStack[devices.Length];
        var loops = new EventLoop[devices.Length];
        for (int i = 0; i < devices.Length; i++)
        {
            stacks[i] = shards is null ? new NetStack(stackOptions, tracer) : new NetStack(stackOptions, shards, i, tracer);
            loops[i] = new EventLoop(stacks[i], devices[i], options.TimeProvider, logger);
        }
        EventLoop.Join(loops);
        var metrics = options.Metrics ? new StackMetrics(stacks) : null;
        var host = new TunStackHost(devices, options, loops, logger) { _metrics = metrics };
        foreach (var loop in loops)
            loop.Start();
        logger.Started(device.Name, string.Join(", ", options.Addresses), stacks[0].Options.Mtu);
        return Task.FromResult(host);
    }

    /// <summary>The options the stack was started with.</summary>
    public TunStackOptions Options { get; }

    /// <summary>The addresses the stack answers for.</summary>
    public IReadOnlyList<IPAddress> Addresses { get; }

    /// <summary>The device the stack runs on (its first queue when there are several).</summary>
    public IPacketDevice Device => _devices[0];

    /// <summary>The device's queues, one engine shard and event loop each.</summary>
    public IReadOnlyList<IPacketDevice> Queues => _devices;

    /// <summary>The MTU in use: <see cref="TunStackOptions.Mtu"/>, or the device's.</summary>
    public int Mtu => _loop.Stack.Options.Mtu;

    /// <summary>Completes when the stack has stopped (after <see cref="DisposeAsync"/>); faults if its event loop failed.</summary>
    public Task Completion => Task.WhenAll(_loops.Select(l => l.Completion));

    /// <summary>Whether <paramref name="address"/> is one of the stack's own addresses.</summary>
    public bool IsLocalAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return _loop.Stack.IsLocalAddress(IpAddress.FromIPAddress(address));
    }

    /// <summary>
    /// Listens on <paramref name="localEndPoint"/>, as <see cref="Socket.Bind"/> and <see cref="Socket.Listen()"/> do:
    /// <see cref="IPAddress.IPv6Any"/> for every address of the stack, <see cref="IPAddress.Any"/> for its IPv4 ones, or
    /// one of <see cref="Addresses"/>. Listeners for different addresses may share a port.
    /// </summary>
    /// <exception cref="SocketException"><see cref="SocketError.AddressAlreadyInUse"/> when a listener for that address and
    /// port exists; <see cref="SocketError.AddressNotAvailable"/> for an address that is not the stack's.</exception>
    public async ValueTask<TunStackListener> ListenAsync(IPEndPoint localEndPoint, TunStackListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(localEndPoint);
        ThrowIfDisposed();
        return await _loop.ListenAsync(localEndPoint, options?.Backlog).ConfigureAwait(false);
    }

    /// <summary>Listens on <paramref name="port"/> of every address of the stack.</summary>
    public ValueTask<TunStackListener> ListenAsync(int port, TunStackListenerOptions? options = null) =>
        ListenAsync(new IPEndPoint(IPAddress.IPv6Any, port), options);

    /// <summary>
    /// Forwarding: accepts TCP connections to every address that is <em>not</em> the stack's own and that
    /// <paramref name="acceptDestination"/> lets through (it gets the destination the peer wanted to reach, which
    /// becomes the connection's <see cref="TunStackConnection.LocalEndPoint"/>). This is how tun2socks-style proxies take
    /// over whatever the system routes into the device. Others are refused with RST. The stack's own addresses keep
    /// their listeners. One forwarding listener at a time.
    /// </summary>
    /// <param name="acceptDestination">
    /// Runs on the event loop for each new connection attempt: keep it quick and non-blocking. An exception refuses the connection.
    /// </param>
    /// <param name="options">Backlog of the forwarding listener.</param>
    public async ValueTask<TunStackListener> ListenAnyAsync(Func<IPEndPoint, bool>? acceptDestination = null, TunStackListenerOptions? options = null)
    {
        ThrowIfDisposed();
        return await _loop.ListenAnyAsync(acceptDestination ?? (_ => true), options?.Backlog).ConfigureAwait(false);
    }

    /// <summary>
    /// Connects to <paramref name="remoteEndPoint"/> (active OPEN) from the stack's address of the same family and an
    /// ephemeral port; completes once the three-way handshake is done.
    /// </summary>
    /// <param name="remoteEndPoint">An <see cref="IPEndPoint"/>, or a <see cref="DnsEndPoint"/> whose host is an IP literal (the stack has no resolver).</param>
    /// <param name="cancellationToken">Abandons the attempt (<see cref="OperationCanceledException"/>).</param>
    /// <exception cref="SocketException"><see cref="SocketError.ConnectionRefused"/> when the peer answers with RST;
    /// <see cref="SocketError.TimedOut"/> when no answer came within <see cref="TunStackOptions.ConnectTimeout"/> or the
    /// SYN retransmissions; <see cref="SocketError.AddressNotAvailable"/> when the stack has no address of that family
    /// or no free port.</exception>
    public async Task<TunStackConnection> ConnectAsync(EndPoint remoteEndPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remoteEndPoint);
        ThrowIfDisposed();
        var remote = remoteEndPoint switch
        {
            IPEndPoint ip => ip,
            DnsEndPoint dns when IPAddress.TryParse(dns.Host, out var literal) => new IPEndPoint(literal, dns.Port),
            _ => throw new ArgumentException($"{remoteEndPoint} is not an IP endpoint (the stack has no name resolver).", nameof(remoteEndPoint)),
        };
        if (remote.Port is <= 0 or > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(remoteEndPoint), "The port must be between 1 and 65535.");
        // The shards take turns; each picks an ephemeral port whose four-tuple it owns.
        var loop = _loops[(int)((uint)Interlocked.Increment(ref _nextConnectShard) % (uint)_loops.Length)];
        return await loop.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A snapshot of the connections and counters, taken on the event loop.</summary>
    public async Task<TunStackDiagnostics> GetDiagnosticsAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var parts = await Task.WhenAll(_loops.Select(loop =>
            loop.InvokeAsync(() => TunStackDiagnostics.Of(loop.Stack, loop.ApplicationConnectionCount, loop.WriteErrors))))
            .WaitAsync(cancellationToken).ConfigureAwait(false);
        return TunStackDiagnostics.Combine(parts);
    }

    /// <summary>
    /// Stops the stack: every connection is reset, listeners and pending connects fail with
    /// <see cref="ObjectDisposedException"/>, the event loop ends, and the device is disposed (unless
    /// <see cref="TunStackOptions.LeaveDeviceOpen"/>).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        // One shard after the other: a stopping loop resets its connections, and may post to the others' loops.
        await Task.Run(() =>
        {
            foreach (var loop in _loops)
                loop.Stop();
        }).ConfigureAwait(false);
        _metrics?.Dispose();
        if (!Options.LeaveDeviceOpen)
            foreach (var device in _devices)
                device.Dispose();
        _logger.Stopped(_devices[0].Name);
    }

    /// <summary>
    /// Packets received and sent so far, read from any thread without a snapshot: it grows while the stack is busy and
    /// stands still while it is quiet (for housekeeping that waits for quiet; not an exact count while it changes).
    /// </summary>
    public long PacketActivity
    {
        get
        {
            long packets = 0;
            foreach (var loop in _loops)
            {
                var counters = loop.Stack.Counters;
                packets += Volatile.Read(ref counters.PacketsReceived) + counters.PacketsSent;
            }
            return packets;
        }
    }

    /// <summary>
    /// Connections that <see cref="DisposeAsync"/> reset because they were still synchronized (RST sent to the peer);
    /// read it after DisposeAsync returned.
    /// </summary>
    public int ConnectionsResetAtStop => _loops.Sum(loop => loop.ConnectionsResetAtStop);

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
