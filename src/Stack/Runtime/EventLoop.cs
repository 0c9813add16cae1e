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
internal sealed class EventLoop : IDisposable
{
    private const int ReadBatch = 64;
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
    /// Opens a listener for <paramref name="localEndPoint"/> (a wildcard address or one of the stack's). Listeners on
    /// one port share the engine's passive OPEN; each connection goes to the listener of its exact local address,
    /// else to the wildcard one. Thread-safe; before <see cref="Start"/> it takes effect at once.
    /// </summary>
    public Task<TunStackListener> ListenAsync(IPEndPoint localEndPoint, int? backlog)
    {
        if (localEndPoint.Port is <= 0 or > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(localEndPoint), "The port must be between 1 and 65535.");
        var address = localEndPoint.Address;
        if (!address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any)
            && !_stack.IsLocalAddress(IpAddress.FromIPAddress(address)))
            throw new SocketException((int)SocketError.AddressNotAvailable);
        return InvokeAsync(() =>
        {
            var port = (ushort)localEndPoint.Port;
            var binding = _bindings.Values.FirstOrDefault(b => !b.IsAny && b.Endpoint.Port == port);
            if (binding is null)
            {
                binding = new ListenBinding(_stack.Listen(port, backlog), isAny: false);
                _bindings.Add(binding.Endpoint, binding);
            }
            var listener = new TunStackListener(this, binding, localEndPoint, null);
            if (!binding.TryAdd(listener))
                throw new SocketException((int)SocketError.AddressAlreadyInUse);
            Logger.ListenerOpened(localEndPoint);
            return listener;
        });
    }

    /// <summary>Opens the forwarding listener: connections to any other address that <paramref name="accept"/> takes.</summary>
    public Task<TunStackListener> ListenAnyAsync(Func<IPEndPoint, bool> accept, int? backlog) => InvokeAsync(() =>
    {
        var endpoint = _stack.ListenAny(tuple => accept(new IPEndPoint(tuple.LocalAddress.ToIPAddress(), tuple.LocalPort)), backlog);
        var binding = new ListenBinding(endpoint, isAny: true);
        _bindings.Add(endpoint, binding);
        var listener = new TunStackListener(this, binding, new IPEndPoint(IPAddress.IPv6Any, 0), accept);
        binding.TryAdd(listener);
        Logger.ForwardingListenerOpened();
        return listener;
    });

    /// <summary>Loop thread: the listener is disposed; when its port has no listener left, the engine stops listening.</summary>
    internal void CloseListener(TunStackListener listener)
    {
        var binding = listener.Binding;
        if (!binding.Remove(listener)) return;
        if (binding.IsEmpty)
        {
            _stack.StopListening(binding.Endpoint);
            _bindings.Remove(binding.Endpoint);
        }
        // Connections established but not accepted are reset, as close(2) on a listening socket does.
        foreach (var queued in listener.CompleteAccepting())
            queued.AbortOnLoop();
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
                _device.Wake();
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
        _device.Wake();
    }

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

        int read = 0;
        for (; read < ReadBatch; read++)
        {
            int n = _device.TryRead(_receiveBuffer, out var info);
            if (n <= 0) break;
            _stack.Receive(_receiveBuffer.AsSpan(0, n), now, info);
        }

        DispatchEvents();
        long deadline = _stack.Poll(now);
        DispatchEvents();           // timers and output can close connections or free send space
        deadline = _stack.Poll(now); // and the application side can have queued more to send
        Transmit();

        if (!wait || read == ReadBatch || !_posted.IsEmpty || !_signaled.IsEmpty)
            return;
        long waitMicros = Math.Clamp(deadline == long.MaxValue ? MaxWaitMicros : deadline - NowMicros, 0, MaxWaitMicros);
        if (waitMicros > 0)
            _device.WaitReadable(TimeSpan.FromMicroseconds(waitMicros));
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
            if ((events & ConnectionEvents.Established) != 0 && tcb.Listener is { } endpoint && tcb.State != TcpState.Closed
                && !_connections.ContainsKey(tcb))
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

    private sealed class PendingConnect(TaskCompletionSource<TunStackConnection> result)
    {
        public TaskCompletionSource<TunStackConnection> Result { get; } = result;
        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
