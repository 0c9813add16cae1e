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

    /// <summary>Stops the loop and waits for its thread to finish.</summary>
    public void Stop()
    {
        _stopping = true;
        _device.Wake();
        if (_thread is not null && Environment.CurrentManagedThreadId != _loopThreadId)
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
            foreach (var listener in _listeners.Values) listener.Complete();
            _completion.TrySetResult();
        }
        catch (Exception e)
        {
            _completion.TrySetException(e);
        }
    }

    /// <summary>One iteration of the loop. Public for tests that drive the loop on their own thread.</summary>
    public void RunOnce(bool wait)
    {
        long now = NowMicros;
        while (_posted.TryDequeue(out var action))
            action();
        while (_signaled.TryDequeue(out var connection))
        {
            connection.OnLoopSignal();
            connection.CheckFinished();
            if (connection.IsFinished)
                _connections.Remove(connection.Tcb);
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
            connection.PumpInbound();
            connection.PumpOutbound();
            connection.CheckFinished();
            if (connection.IsFinished)
                _connections.Remove(tcb);
        }
    }

    /// <summary>Connections the application still holds (for diagnostics).</summary>
    public int ApplicationConnectionCount => _connections.Count;
}
