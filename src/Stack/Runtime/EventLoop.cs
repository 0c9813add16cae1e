using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Runtime;

/// <summary>
/// Owns a <see cref="NetStack"/> and an <see cref="IPacketDevice"/> and drives them on one dedicated thread:
/// read a batch of packets, feed them in with the time, hand application events to connections, let the stack
/// send, write its packets to the device, then sleep until the next packet, wake-up or timer deadline.
/// Applications talk to it through <see cref="TunStackListener"/>/<see cref="TunStackConnection"/> from any thread;
/// everything that touches the stack is posted to the loop thread.
/// </summary>
/// <remarks>
/// With a multi-queue device there is one loop per queue, each with its own engine shard (<see cref="Sharding.StackShards"/>),
/// joined by <see cref="Join"/>. The kernel picks a queue per flow by its own hash, which is not ours and may change, so
/// a loop hands a packet whose connection another shard owns to that shard's loop (<see cref="HandIn"/>): a copy into a
/// bounded queue, drained at the start of the owner's next iteration.
/// </remarks>
internal sealed class EventLoop : IDisposable
{
    private const int ReadBatch = 64;
    /// <summary>Packets from other shards' queues that may wait for this loop; beyond, they are dropped and counted.</summary>
    internal const int MaxHandedIn = 4096;
    private static readonly long MaxWaitMicros = 1_000_000;

    private readonly NetStack _stack;
    private readonly IPacketDevice _device;
    private readonly TimeProvider _time;
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly ConcurrentQueue<TunStackConnection> _signaled = new();
    private readonly Dictionary<Tcb, TunStackConnection> _connections = new();
    private readonly Dictionary<ListenEndpoint, ListenBinding> _bindings = new();
    private readonly Dictionary<Tcb, PendingConnect> _connecting = new();
    private readonly byte[] _receiveBuffer;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _postGate = new();
    private Thread? _thread;
    private volatile bool _stopping;
    private long _writeErrors;
    private bool _closed; // under _postGate: the loop is done and runs nothing posted any more
    private int _loopThreadId = -1;
    private EventLoop[]? _group;                                 // every loop of a multi-queue host, by shard; null alone
    private readonly ConcurrentQueue<HandedPacket> _handedIn = new();
    private int _handedInCount;
    private int _sleeping;                                       // 1 while the loop is in (or about to enter) WaitReadable

    public EventLoop(NetStack stack, IPacketDevice device, TimeProvider? time = null, ILogger? logger = null)
    {
        _stack = stack;
        _device = device;
        _time = time ?? TimeProvider.System;
        Logger = logger ?? NullLogger.Instance;
        // Pinned once: the device reads into it directly on every iteration. With segmentation offload a read can be a
        // 64 KiB super-packet.
        _receiveBuffer = GC.AllocateUninitializedArray<byte>(Math.Max(device.MaxPacketSize, 1500) + 256, pinned: true);
        // The stack uses what the device offloads: checksums left to it, super-packets it cuts into segments.
        stack.DeviceOffloads = device.Offloads;
    }

    /// <summary>
    /// Makes <paramref name="loops"/> (one per device queue, each driving shard i of one <see cref="Sharding.StackShards"/>,
    /// in shard order) hand each other the packets they read for connections another shard owns. Before they start.
    /// </summary>
    internal static void Join(EventLoop[] loops)
    {
        if (loops.Length == 1)
            return;
        for (int i = 0; i < loops.Length; i++)
        {
            if (loops[i]._stack.ShardIndex != i || loops[i]._stack.Shards?.Count != loops.Length)
                throw new ArgumentException("Loop i must drive shard i of one set of shards.", nameof(loops));
            if (loops[i]._thread is not null)
                throw new InvalidOperationException("Join the loops before they start.");
        }
        foreach (var loop in loops)
            loop._group = loops;
    }

    /// <summary>The loops this one works with: every shard's in shard order, or this one alone.</summary>
    internal EventLoop[] Group => _group ?? [this];

    /// <summary>The stack. Touch it only on the loop thread (<see cref="InvokeAsync{T}"/>) once the loop runs.</summary>
    public NetStack Stack => _stack;

    public ILogger Logger { get; }

    /// <summary>Completes when the loop has stopped; faults if the loop failed.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Microseconds on the loop's monotonic clock.</summary>
    public long NowMicros => (long)(_time.GetTimestamp() * (1_000_000.0 / _time.TimestampFrequency));

    /// <summary>True on the loop's own thread (or on any thread before the loop started or after it ended).</summary>
    private bool OwnsStack => _thread is null || Environment.CurrentManagedThreadId == _loopThreadId || Volatile.Read(ref _closed);

    /// <summary>
    /// Opens a listener for <paramref name="localEndPoint"/> (a wildcard address or one of the stack's) on this loop and
    /// the others of its group. Listeners on one port share the engine's passive OPEN; each connection goes to the
    /// listener of its exact local address, else to the wildcard one. Thread-safe; before <see cref="Start"/> it takes
    /// effect at once.
    /// </summary>
    public async Task<TunStackListener> ListenAsync(IPEndPoint localEndPoint, int? backlog)
    {
        if (localEndPoint.Port is <= 0 or > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(localEndPoint), "The port must be between 1 and 65535.");
        var address = localEndPoint.Address;
        if (!address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any)
            && !_stack.IsLocalAddress(IpAddress.FromIPAddress(address)))
            throw new SocketException((int)SocketError.AddressNotAvailable);
        var port = (ushort)localEndPoint.Port;
        var listener = new TunStackListener(Group, localEndPoint, null);
        await BindEverywhereAsync(listener, loop =>
        {
            var binding = loop._bindings.Values.FirstOrDefault(b => !b.IsAny && b.Endpoint.Port == port);
            if (binding is null)
            {
                binding = new ListenBinding(loop._stack.Listen(port, backlog), isAny: false);
                loop._bindings.Add(binding.Endpoint, binding);
            }
            if (!binding.TryAdd(listener))
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            listener.SetBinding(loop, binding);
        }).ConfigureAwait(false);
        Logger.ListenerOpened(localEndPoint);
        return listener;
    }

    /// <summary>
    /// Opens the forwarding listener: connections to any other address that <paramref name="accept"/> takes (called on
    /// the loop threads, concurrently when there are several).
    /// </summary>
    public async Task<TunStackListener> ListenAnyAsync(Func<IPEndPoint, bool> accept, int? backlog)
    {
        var listener = new TunStackListener(Group, new IPEndPoint(IPAddress.IPv6Any, 0), accept);
        await BindEverywhereAsync(listener, loop =>
        {
            var endpoint = loop._stack.ListenAny(tuple => accept(new IPEndPoint(tuple.LocalAddress.ToIPAddress(), tuple.LocalPort)), backlog);
            var binding = new ListenBinding(endpoint, isAny: true);
            loop._bindings.Add(endpoint, binding);
            binding.TryAdd(listener);
            listener.SetBinding(loop, binding);
        }).ConfigureAwait(false);
        Logger.ForwardingListenerOpened();
        return listener;
    }

    /// <summary>Binds <paramref name="listener"/> on every loop of the group, in turn; if one refuses, undoes the others.</summary>
    private async Task BindEverywhereAsync(TunStackListener listener, Action<EventLoop> bind)
    {
        var loops = Group;
        for (int i = 0; i < loops.Length; i++)
        {
            var loop = loops[i];
            try
            {
                await loop.InvokeAsync(() => { bind(loop); return true; }).ConfigureAwait(false);
            }
            catch
            {
                for (int j = 0; j < i; j++)
                {
                    var bound = loops[j];
                    await bound.InvokeAsync(() => { bound.CloseListener(listener, log: false); return true; }).ConfigureAwait(false);
                }
                throw;
            }
        }
    }

    /// <summary>Loop thread: the listener is disposed; when its port has no listener left, the engine stops listening.</summary>
    internal void CloseListener(TunStackListener listener, bool log = true)
    {
        var binding = listener.BindingOn(this);
        if (binding is null || !binding.Remove(listener)) return;
        if (binding.IsEmpty)
        {
            _stack.StopListening(binding.Endpoint);
            _bindings.Remove(binding.Endpoint);
        }
        // Connections established but not accepted are reset, as close(2) on a listening socket does.
        foreach (var queued in listener.CompleteAccepting())
        {
            if (queued.Loop == this) queued.AbortOnLoop();
            else queued.Abort();    // another shard's: on its own loop
        }
        if (log && _stack.ShardIndex == 0)
            Logger.ListenerClosed(listener.LocalEndPoint);
    }

    /// <summary>
    /// Active OPEN: connects to <paramref name="remote"/> from the stack's address and an ephemeral port. Completes with
    /// the connection once the three-way handshake is done; fails with a <see cref="SocketException"/>
    /// (<see cref="SocketError.ConnectionRefused"/> on RST, <see cref="SocketError.TimedOut"/> when no answer came in
    /// time) or is cancelled (the attempt is then abandoned). Thread-safe; the loop must be running.
    /// </summary>
    public Task<TunStackConnection> ConnectAsync(IPEndPoint remote, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
            return Task.FromCanceled<TunStackConnection>(cancellationToken);
        var result = new TaskCompletionSource<TunStackConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
        var address = IpAddress.FromIPAddress(remote.Address);
        Post(() =>
        {
            if (_stopping)
            {
                result.TrySetException(new ObjectDisposedException(nameof(TunStackHost)));
                return;
            }
            try
            {
                var tcb = _stack.Connect(address, (ushort)remote.Port, nowMicros: NowMicros);
                var pending = new PendingConnect(result);
                _connecting.Add(tcb, pending);
                if (cancellationToken.CanBeCanceled)
                {
                    pending.Cancellation = cancellationToken.UnsafeRegister(_ => Post(() =>
                    {
                        if (_connecting.Remove(tcb, out var cancelled) && cancelled.Result.TrySetCanceled(cancellationToken))
                            tcb.Abort();
                    }), null);
                }
            }
            catch (Exception e)
            {
                result.TrySetException(e is InvalidOperationException
                    ? new SocketException((int)SocketError.AddressNotAvailable, e.Message)
                    : e);
            }
        });
        return result.Task;
    }

    public void Start()
    {
        if (_thread is not null) throw new InvalidOperationException("Already started.");
        _thread = new Thread(Run) { IsBackground = true, Name = "tunstack-loop" };
        _thread.Start();
    }

    /// <summary>
    /// Stops the loop and waits for its thread to finish. Connections still open are reset on the way out (RST to each
    /// peer, RFC 9293 §3.10.5 ABORT) and their applications see the reset: once the loop is gone nobody could finish a
    /// graceful close, so no peer is left retransmitting into silence and no application waits on a dead loop.
    /// </summary>
    public void Stop()
    {
        _stopping = true;
        _device.Wake();
        if (_thread is null)
            Shutdown(); // driven by hand (tests): the caller's thread is the loop's
        else if (Environment.CurrentManagedThreadId != _loopThreadId)
            _thread.Join();
    }

    public void Dispose() => Stop();

    /// <summary>
    /// Runs <paramref name="action"/> on the loop thread soon. Once the loop has ended it runs on the caller's thread
    /// at once (nothing else touches the stack then), so that nothing posted is lost.
    /// </summary>
    public void Post(Action action)
    {
        lock (_postGate)
        {
            if (!_closed)
            {
                _posted.Enqueue(action);
                WakeIfSleeping();
                return;
            }
        }
        action();
    }

    /// <summary>Runs <paramref name="func"/> on the loop thread (or at once where that is safe) and returns its result.</summary>
    public Task<T> InvokeAsync<T>(Func<T> func)
    {
        if (OwnsStack)
        {
            try { return Task.FromResult(func()); }
            catch (Exception e) { return Task.FromException<T>(e); }
        }
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try { tcs.SetResult(func()); }
            catch (Exception e) { tcs.SetException(e); }
        });
        return tcs.Task;
    }

    internal void Signal(TunStackConnection connection)
    {
        _signaled.Enqueue(connection);
        WakeIfSleeping();
    }

    /// <summary>
    /// After queueing work for the loop: wakes it through the device (an eventfd write, a system call) only if it
    /// sleeps, and only once per sleep. A loop that is running looks at its queues before it sleeps. The queue's
    /// enqueue and the barrier here pair with the loop's store of <see cref="_sleeping"/> before its last look
    /// (<see cref="HasQueuedWork"/>), so either the loop sees the work or this sees the loop asleep.
    /// </summary>
    private void WakeIfSleeping()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sleeping) != 0 && Interlocked.Exchange(ref _sleeping, 0) != 0)
            _device.Wake();
    }

    private bool HasQueuedWork => !_posted.IsEmpty || !_signaled.IsEmpty || Volatile.Read(ref _handedInCount) > 0;

    private void Run()
    {
        _loopThreadId = Environment.CurrentManagedThreadId;
        try
        {
            while (!_stopping)
                RunOnce(wait: true);
            Shutdown();
            _completion.TrySetResult();
        }
        catch (Exception e)
        {
            Logger.LoopFailed(e);
            try { Shutdown(); }
            catch (Exception) { /* the original failure is the one to report */ }
            _completion.TrySetException(e);
        }
    }

    /// <summary>
    /// Loop thread, at the end: every connection is reset (the peers learn at once that the host is gone), every
    /// listener and pending connect fails, and from now on posted work runs on the poster's thread.
    /// </summary>
    private void Shutdown()
    {
        lock (_postGate)
        {
            if (_closed) return;
            _closed = true;
        }
        while (_posted.TryDequeue(out var action))
        {
            try { action(); }
            catch (Exception e) { Contain(e, null); }
        }
        foreach (var (tcb, pending) in _connecting)
        {
            pending.Result.TrySetException(new ObjectDisposedException(nameof(TunStackHost)));
            if (tcb.State != TcpState.Closed) tcb.Abort();
        }
        _connecting.Clear();
        foreach (var binding in _bindings.Values.ToArray())
            foreach (var listener in binding.Listeners.ToArray())
                CloseListener(listener);
        foreach (var connection in _connections.Values.ToArray())
        {
            try
            {
                if (IsSynchronized(connection.Tcb.State)) ConnectionsResetAtStop++;
                connection.AbortOnLoop();
            }
            catch (Exception e)
            {
                Contain(e, connection);
            }
        }
        // Connections no application holds yet (half-open, or established and not accepted) are reset too (RFC 9293
        // §3.10.5 ABORT: RST in the synchronized states, the TCB deleted in any state); TIME-WAIT records just go.
        foreach (var tcb in _stack.Connections.ToArray())
        {
            if (tcb.State == TcpState.Closed) continue;
            if (IsSynchronized(tcb.State)) ConnectionsResetAtStop++;
            tcb.Abort();
        }
        DispatchEvents();
        _stack.Poll(NowMicros);
        Transmit();
    }

    private static bool IsSynchronized(TcpState state) =>
        state is TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.CloseWait;

    /// <summary>
    /// An exception from application-side code on the loop thread (a posted action, a pipe, a connection's pump): it is
    /// counted as an internal error, the connection it concerns is reset, and the loop carries on.
    /// </summary>
    private void Contain(Exception e, TunStackConnection? connection)
    {
        _stack.Counters.InternalErrors++;
        _stack.Counters.LastInternalError = e;
        Logger.LoopActionFailed(e);
        if (connection is null) return;
        try
        {
            connection.AbortOnLoop();
        }
        catch (Exception)
        {
            // The connection's own pumps failed again: forget it rather than fail again on every turn.
        }
        if (connection.Tcb.State == TcpState.Closed)
            _connections.Remove(connection.Tcb);
    }

    /// <summary>Connections <see cref="Stop"/> sent a reset for (read it after Stop returned).</summary>
    public int ConnectionsResetAtStop { get; private set; }

    /// <summary>Packets the device refused with an error (the packet is lost, as on a link); see <see cref="LastWriteError"/>.</summary>
    public long WriteErrors => Interlocked.Read(ref _writeErrors);

    /// <summary>The latest error the device's <c>Write</c> threw, or null.</summary>
    public Exception? LastWriteError { get; private set; }

    /// <summary>One iteration of the loop. Public for tests that drive the loop on their own thread.</summary>
    public void RunOnce(bool wait)
    {
        long now = NowMicros;
        while (_posted.TryDequeue(out var action))
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                Contain(e, null);
            }
        }
        while (_signaled.TryDequeue(out var connection))
        {
            try
            {
                connection.OnLoopSignal();
                Forget(connection);
            }
            catch (Exception e)
            {
                Contain(e, connection);
            }
        }
        ReceiveHandedIn(now);

        int read = 0;
        for (; read < ReadBatch; read++)
        {
            int n = _device.TryRead(_receiveBuffer, out var info);
            if (n <= 0) break;
            var packet = _receiveBuffer.AsSpan(0, n);
            if (_group is { } group)
            {
                // The kernel chose this queue by its own hash; the connection may be another shard's.
                int owner = _stack.Shards!.OwnerOf(packet);
                if (owner >= 0 && owner != _stack.ShardIndex)
                {
                    group[owner].HandIn(packet, info, from: this);
                    continue;
                }
            }
            _stack.Receive(packet, now, info);
        }

        DispatchEvents();
        long deadline = _stack.Poll(now);
        DispatchEvents();           // timers and output can close connections or free send space
        deadline = _stack.Poll(now); // and the application side can have queued more to send
        Transmit();

        if (!wait || read == ReadBatch || HasQueuedWork)
            return;
        long waitMicros = Math.Clamp(deadline == long.MaxValue ? MaxWaitMicros : deadline - NowMicros, 0, MaxWaitMicros);
        if (waitMicros > 0)
        {
            Interlocked.Exchange(ref _sleeping, 1); // a full barrier: then one last look at the queues
            if (!HasQueuedWork && !_stopping)
                _device.WaitReadable(TimeSpan.FromMicroseconds(waitMicros));
            Volatile.Write(ref _sleeping, 0);
        }
    }

    /// <summary>
    /// Any thread (another shard's loop): queues a copy of <paramref name="packet"/> for this loop's engine, which owns
    /// its connection, and wakes this loop if it was not already due to look. A full queue drops the packet, counted
    /// on <paramref name="from"/>'s engine as <see cref="DropReason.ShardQueueFull"/> (TCP recovers it as a loss).
    /// </summary>
    internal void HandIn(ReadOnlySpan<byte> packet, in PacketInfo info, EventLoop from)
    {
        int waiting = Interlocked.Increment(ref _handedInCount);
        if (waiting > MaxHandedIn)
        {
            Interlocked.Decrement(ref _handedInCount);
            from._stack.CountDrop(DropReason.ShardQueueFull, packet.Length, from.NowMicros);
            return;
        }
        var copy = ArrayPool<byte>.Shared.Rent(packet.Length);
        packet.CopyTo(copy);
        _handedIn.Enqueue(new HandedPacket(copy, packet.Length, info));
        from._stack.Counters.PacketsHandedOff++;
        WakeIfSleeping();
    }

    /// <summary>Loop thread: the packets other shards read for this one's connections, in the order they came.</summary>
    private void ReceiveHandedIn(long now)
    {
        while (_handedIn.TryDequeue(out var handed))
        {
            Interlocked.Decrement(ref _handedInCount);
            try
            {
                _stack.Receive(handed.Buffer.AsSpan(0, handed.Length), now, handed.Info);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(handed.Buffer);
            }
        }
    }

    private void Transmit()
    {
        var queue = _stack.Transmit;
        while (queue.TryDequeue(out var packet))
        {
            try
            {
                _device.Write(packet.Span, packet.Info);
            }
            catch (Exception e)
            {
                // One packet the device would not take is a lost packet; TCP repairs it. A device that is gone for
                // good fails its next read, which ends the loop.
                Interlocked.Increment(ref _writeErrors);
                LastWriteError = e;
            }
            finally
            {
                queue.Return(packet);
            }
        }
    }

    /// <summary>Loop thread: the connection finished; the loop lets go of it.</summary>
    private void Forget(TunStackConnection connection)
    {
        connection.CheckFinished();
        if (connection.IsFinished && _connections.Remove(connection.Tcb))
            Logger.ConnectionFinished(connection);
    }

    private void DispatchEvents()
    {
        while (_stack.TryTakeEvents(out var tcb, out var events))
        {
            if (tcb.Listener is null && _connecting.Remove(tcb, out var pending))
            {
                if (tcb.State != TcpState.Closed && (events & ConnectionEvents.Established) != 0)
                {
                    pending.Cancellation.Dispose();
                    var connected = new TunStackConnection(this, tcb);
                    _connections.Add(tcb, connected);
                    if (!pending.Result.TrySetResult(connected))
                        tcb.Abort();
                }
                else if (tcb.State == TcpState.Closed)
                {
                    pending.Cancellation.Dispose();
                    var error = tcb.CloseReason switch
                    {
                        CloseReason.Refused => SocketError.ConnectionRefused,
                        CloseReason.TimedOut => SocketError.TimedOut,
                        CloseReason.ResetByPeer => SocketError.ConnectionReset,
                        _ => SocketError.ConnectionAborted,
                    };
                    Logger.ConnectFailed(tcb.Tuple.RemoteAddress.ToIPAddress(), tcb.Tuple.RemotePort, error);
                    pending.Result.TrySetException(new SocketException((int)error));
                    continue;
                }
                else
                {
                    _connecting.Add(tcb, pending); // not yet: keep waiting
                }
            }
            // A passive open that completed goes to the application even when a reset in the same batch already closed
            // it: as a Linux accept() returns such a socket, whose first read then fails with ECONNRESET.
            if ((events & ConnectionEvents.Established) != 0 && tcb.Listener is { } endpoint && !_connections.ContainsKey(tcb))
                Deliver(tcb, endpoint);
            if (!_connections.TryGetValue(tcb, out var connection))
                continue;
            try
            {
                connection.PumpInbound();
                connection.PumpOutbound();
                Forget(connection);
            }
            catch (Exception e)
            {
                Contain(e, connection);
            }
        }
    }

    /// <summary>A passive open completed: the connection goes to the listener of its local address, or is reset.</summary>
    private void Deliver(Tcb tcb, ListenEndpoint endpoint)
    {
        var listener = _bindings.TryGetValue(endpoint, out var binding)
            ? binding.Select(tcb.Tuple.LocalAddress.ToIPAddress())
            : null;
        if (listener is null)
        {
            // The listener was closed meanwhile, or none listens on this address: as a closed port would (RST).
            Logger.ConnectionRejected(tcb.Tuple.LocalAddress.ToIPAddress(), tcb.Tuple.LocalPort);
            tcb.Abort();
            return;
        }
        var created = new TunStackConnection(this, tcb);
        _connections.Add(tcb, created);
        listener.Enqueue(created);
        Logger.ConnectionAccepted(created);
    }

    /// <summary>Connections the application still holds (for diagnostics).</summary>
    public int ApplicationConnectionCount => _connections.Count;

    private readonly record struct HandedPacket(byte[] Buffer, int Length, PacketInfo Info);

    private sealed class PendingConnect(TaskCompletionSource<TunStackConnection> result)
    {
        public TaskCompletionSource<TunStackConnection> Result { get; } = result;
        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
