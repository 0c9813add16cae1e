using System.Collections.Concurrent;
using System.Net;
using SocketError = System.Net.Sockets.SocketError;
using SocketException = System.Net.Sockets.SocketException;
using TunStack.Api;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Runtime;

/// <summary>
/// Owns a <see cref="NetStack"/> and an <see cref="IPacketDevice"/> and drives them on one dedicated thread:
/// read a batch of packets, feed them in with the time, hand application events to connections, let the stack
/// send, write its packets to the device, then sleep until the next packet, wake-up or timer deadline.
/// Applications talk to it through <see cref="TcpListener"/>/<see cref="TcpConnection"/> from any thread.
/// </summary>
public sealed class EventLoop : IDisposable
{
    private const int ReadBatch = 64;
    private static readonly long MaxWaitMicros = 1_000_000;

    private readonly NetStack _stack;
    private readonly IPacketDevice _device;
    private readonly TimeProvider _time;
    private readonly ConcurrentQueue<Action> _posted = new();
    private readonly ConcurrentQueue<TcpConnection> _signaled = new();
    private readonly Dictionary<Tcb, TcpConnection> _connections = new();
    private readonly Dictionary<ListenEndpoint, TcpListener> _listeners = new();
    private readonly Dictionary<Tcb, TaskCompletionSource<TcpConnection>> _connecting = new();
    private readonly byte[] _receiveBuffer;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread? _thread;
    private volatile bool _stopping;
    private long _writeErrors;
    private int _loopThreadId = -1;

    public EventLoop(NetStack stack, IPacketDevice device, TimeProvider? time = null)
    {
        _stack = stack;
        _device = device;
        _time = time ?? TimeProvider.System;
        // Pinned once: the device reads into it directly on every iteration. With segmentation offload a read can be a
        // 64 KiB super-packet.
        _receiveBuffer = GC.AllocateUninitializedArray<byte>(Math.Max(device.MaxPacketSize, 1500) + 256, pinned: true);
        // The stack uses what the device offloads: checksums left to it, super-packets it cuts into segments.
        stack.DeviceOffloads = device.Offloads;
    }

    /// <summary>The stack. Touch it only on the loop thread (<see cref="InvokeAsync{T}"/>) once the loop runs.</summary>
    public NetStack Stack => _stack;

    /// <summary>Completes when the loop has stopped; faults if the loop failed.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Microseconds on the loop's monotonic clock.</summary>
    public long NowMicros => (long)(_time.GetTimestamp() * (1_000_000.0 / _time.TimestampFrequency));

    /// <summary>Opens a listening port. Thread-safe; before <see cref="Start"/> it takes effect at once.</summary>
    public TcpListener Listen(ushort port, int? backlog = null)
    {
        var listener = new TcpListener(port, connection => Post(() => _stack.Accepted(connection.Tcb)));
        void Open()
        {
            var endpoint = _stack.Listen(port, backlog);
            _listeners.Add(endpoint, listener);
        }
        if (_thread is null) Open();
        else InvokeAsync(() => { Open(); return true; }).GetAwaiter().GetResult();
        return listener;
    }

    /// <summary>
    /// Active OPEN: connects to <paramref name="remote"/> from the stack's address and an ephemeral port. Completes with
    /// the connection once the three-way handshake is done; fails with a <see cref="SocketException"/>
    /// (<see cref="SocketError.ConnectionRefused"/> on RST, <see cref="SocketError.TimedOut"/> when no answer came in
    /// time) or is cancelled (the attempt is then abandoned). Thread-safe; the loop must be running.
    /// </summary>
    public Task<TcpConnection> ConnectAsync(IPEndPoint remote, CancellationToken cancellationToken = default)
    {
        var result = new TaskCompletionSource<TcpConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
        var address = IpAddress.FromIPAddress(remote.Address);
        Post(() =>
        {
            try
            {
                var tcb = _stack.Connect(address, (ushort)remote.Port, nowMicros: NowMicros);
                _connecting.Add(tcb, result);
                if (cancellationToken.CanBeCanceled)
                {
                    cancellationToken.Register(() => Post(() =>
                    {
                        if (_connecting.Remove(tcb, out var pending) && pending.TrySetCanceled(cancellationToken))
                            tcb.Abort();
                    }));
                }
            }
            catch (Exception e)
            {
                result.TrySetException(e);
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
            ResetConnections(); // driven by hand (tests): the caller's thread is the loop's
        else if (Environment.CurrentManagedThreadId != _loopThreadId)
            _thread.Join();
    }

    public void Dispose() => Stop();

    /// <summary>Runs <paramref name="action"/> on the loop thread soon.</summary>
    public void Post(Action action)
    {
        _posted.Enqueue(action);
        _device.Wake();
    }

    /// <summary>Runs <paramref name="func"/> on the loop thread and returns its result.</summary>
    public Task<T> InvokeAsync<T>(Func<T> func)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try { tcs.SetResult(func()); }
            catch (Exception e) { tcs.SetException(e); }
        });
        return tcs.Task;
    }

    internal void Signal(TcpConnection connection)
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
            ResetConnections();
            _completion.TrySetResult();
        }
        catch (Exception e)
        {
            // Only the device can end the loop this way (it was removed, or a read or poll failed): everything the
            // stack and the applications do is contained in RunOnce.
            foreach (var listener in _listeners.Values) listener.Complete();
            _completion.TrySetException(e);
        }
    }

    /// <summary>
    /// Loop thread, on the way out: resets every connection (RFC 9293 §3.10.5: RST in the synchronized states, the TCB
    /// deleted in any state), lets the applications see it, sends the RSTs and closes the listeners.
    /// </summary>
    private void ResetConnections()
    {
        long now = NowMicros;
        foreach (var tcb in _stack.Connections.ToArray())
        {
            try
            {
                if (tcb.State is TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2
                    or TcpState.CloseWait)
                    ConnectionsResetAtStop++;
                tcb.Abort();
            }
            catch (Exception e)
            {
                Contain(e, null);
            }
        }
        DispatchEvents();
        _stack.Poll(now);
        Transmit();
        foreach (var listener in _listeners.Values) listener.Complete();
    }

    /// <summary>
    /// An exception from application-side code on the loop thread (a posted action, a pipe, a connection's pump): it is
    /// counted as an internal error, the connection it concerns is reset, and the loop carries on.
    /// </summary>
    private void Contain(Exception e, TcpConnection? connection)
    {
        _stack.Counters.InternalErrors++;
        _stack.Counters.LastInternalError = e;
        if (connection is null) return;
        try
        {
            if (connection.Tcb.State != TcpState.Closed) connection.Tcb.Abort();
            connection.OnLoopSignal();
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

    /// <summary>The latest error the device's <see cref="IPacketDevice.Write(ReadOnlySpan{byte})"/> threw, or null.</summary>
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
                connection.CheckFinished();
                if (connection.IsFinished)
                    _connections.Remove(connection.Tcb);
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

    private void DispatchEvents()
    {
        while (_stack.TryTakeEvents(out var tcb, out var events))
        {
            if (tcb.Listener is null && _connecting.Remove(tcb, out var pending))
            {
                if (tcb.State != TcpState.Closed && (events & ConnectionEvents.Established) != 0)
                {
                    var connected = new TcpConnection(this, tcb);
                    _connections.Add(tcb, connected);
                    if (!pending.TrySetResult(connected))
                        tcb.Abort();
                }
                else if (tcb.State == TcpState.Closed)
                {
                    pending.TrySetException(new SocketException((int)(tcb.CloseReason == CloseReason.Refused
                        ? SocketError.ConnectionRefused
                        : tcb.CloseReason == CloseReason.TimedOut ? SocketError.TimedOut : SocketError.ConnectionAborted)));
                    continue;
                }
                else
                {
                    _connecting.Add(tcb, pending); // not yet: keep waiting
                }
            }
            if ((events & ConnectionEvents.Established) != 0 && tcb.Listener is { } endpoint
                && _listeners.TryGetValue(endpoint, out var listener) && tcb.State != TcpState.Closed)
            {
                var created = new TcpConnection(this, tcb);
                _connections.Add(tcb, created);
                listener.Enqueue(created);
            }
            if (!_connections.TryGetValue(tcb, out var connection))
                continue;
            try
            {
                connection.PumpInbound();
                connection.PumpOutbound();
                connection.CheckFinished();
                if (connection.IsFinished)
                    _connections.Remove(tcb);
            }
            catch (Exception e)
            {
                Contain(e, connection);
            }
        }
    }

    /// <summary>Connections the application still holds (for diagnostics).</summary>
    public int ApplicationConnectionCount => _connections.Count;
}
