using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using TunStack.Runtime;
using TunStack.Tcp;

namespace TunStack;

/// <summary>
/// One TCP connection of the stack, as a <see cref="Socket"/> is one of the kernel's, seen through
/// <see cref="IDuplexPipe"/>: read <see cref="Input"/> until it completes (the peer's FIN); write to
/// <see cref="Output"/>, and complete it to half-close (our FIN follows the data written); <see cref="Abort"/> resets.
/// <see cref="GetStream"/> offers the same as a <see cref="Stream"/>. Disposing closes as close(2) does.
/// </summary>
/// <remarks>
/// <para>The event loop moves bytes between these pipes and the engine on its own thread, so every member is safe to
/// call from any thread; each pipe has the usual single reader and single writer.</para>
/// <para>Errors are those of sockets: a read or flush after the peer reset the connection throws a
/// <see cref="SocketException"/> with <see cref="SocketError.ConnectionReset"/>; after retransmissions or keep-alives
/// ran out, <see cref="SocketError.TimedOut"/>; after <see cref="Abort"/> or when the host stopped,
/// <see cref="SocketError.ConnectionAborted"/> (<see cref="SocketError.OperationAborted"/> for a read that was
/// waiting). Cancelled waits throw <see cref="OperationCanceledException"/>.</para>
/// <para>Backpressure works as with a socket: when the application does not read, the receive buffer fills and the
/// advertised window closes; <c>FlushAsync</c> on <see cref="Output"/> waits while the send buffer is full.</para>
/// </remarks>
public sealed class TunStackConnection : IDuplexPipe, IAsyncDisposable, IReceiveSink
{
    private const int MaxChunk = 64 * 1024;
    /// <summary>
    /// Text taken during segment processing is flushed to the application once this much is waiting, and otherwise at
    /// the end of the batch of packets (<see cref="PumpInbound"/>): one wake-up of the reader per batch, not per segment.
    /// </summary>
    private const int FlushAfter = 64 * 1024;

    /// <summary>
    /// Bytes a pipe holds before its writer waits: the application's output on top of the TCB's send buffer, received
    /// bytes on top of the receive buffer (the window closes once both are full). With 128 KiB, Kestrel's HTTP/2 under
    /// CPU load saw more request-body bytes than the Content-Length in a few uploads in a hundred, each time after its
    /// input had paused and resumed: a fault not yet found. At 1 MiB the input pipe pauses far more rarely and the fault
    /// did not show in hundreds of tries; an application that keeps up holds far less.
    /// </summary>
    private const int PauseThreshold = 1024 * 1024, ResumeThreshold = 512 * 1024;

    // Immutable and shared by every connection, rather than two more objects each.
    private static readonly PipeOptions InboundOptions = new(
        readerScheduler: PipeScheduler.ThreadPool, writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: PauseThreshold, resumeWriterThreshold: ResumeThreshold, useSynchronizationContext: false);
    private static readonly PipeOptions OutboundOptions = new(
        readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.ThreadPool,
        pauseWriterThreshold: PauseThreshold, resumeWriterThreshold: ResumeThreshold, useSynchronizationContext: false);

    private readonly EventLoop _loop;
    private readonly Pipe _inbound;   // loop writes, application reads
    private readonly Pipe _outbound;  // application writes, loop reads
    private readonly ConsumptionTrackingReader _input;
    private readonly Action _signal;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TunStackStream? _stream;
    private volatile bool _noDelay;
    private volatile bool _keepAlive;
    private int _state;               // TcpState, as the loop last saw it
    private int _disposeStarted;

    // Loop-thread state.
    private long _delivered;          // bytes written into the input pipe
    private int _unflushed;           // of those, written but not yet flushed (see FlushAfter)
    private bool _disposed;           // the application disposed the connection
    private bool _released;
    private bool _inboundPaused;
    private bool _inboundDone;
    private ValueTask<FlushResult> _pendingFlush;
    private bool _readPending;
    private ValueTask<ReadResult> _pendingRead;
    private bool _outboundDone;
    private Exception? _outboundError;
    private bool _abortedLocally;
    private volatile bool _abortRequested; // Abort() was called: the loop resets, whatever it meets first

    internal TunStackConnection(EventLoop loop, Tcb tcb)
    {
        _loop = loop;
        Tcb = tcb;
        _inbound = new Pipe(InboundOptions);
        _outbound = new Pipe(OutboundOptions);
        _input = new ConsumptionTrackingReader(_inbound.Reader);
        _signal = () => _loop.Signal(this);
        _noDelay = tcb.NoDelay;
        _keepAlive = tcb.KeepAlive;
        _state = (int)tcb.State;
        tcb.ReceiveSink = this;
        var t = tcb.Tuple;
        Info = new TcpConnectionInfo(
            new IPEndPoint(t.LocalAddress.ToIPAddress(), t.LocalPort),
            new IPEndPoint(t.RemoteAddress.ToIPAddress(), t.RemotePort),
            tcb.Irs.Value, tcb.Iss.Value, tcb.PeerMss, tcb.LocalMss,
            tcb.Listener is null ? TcpOpenKind.Active : TcpOpenKind.Passive,
            tcb.SackEnabled, tcb.TimestampsEnabled);
    }

    internal Tcb Tcb { get; }

    /// <summary>The event loop that drives this connection's engine shard.</summary>
    internal EventLoop Loop => _loop;

    /// <summary>The handshake as it happened: endpoints, initial sequence numbers, MSS, options.</summary>
    public TcpConnectionInfo Info { get; }

    /// <summary>Our end: for a forwarded connection, the address and port the peer wanted to reach.</summary>
    public IPEndPoint LocalEndPoint => Info.LocalEndPoint;

    /// <summary>The peer's end.</summary>
    public IPEndPoint RemoteEndPoint => Info.RemoteEndPoint;

    /// <summary>
    /// The bytes the peer sent. Completes at the peer's FIN; faults with a <see cref="SocketException"/> when the
    /// connection is reset, times out or is aborted.
    /// </summary>
    public PipeReader Input => _input;

    /// <summary>
    /// The bytes to send. <c>FlushAsync</c> waits while the send buffer is full. Completing it half-closes the connection
    /// (FIN after the data); completing it with an exception aborts the connection (RST).
    /// </summary>
    public PipeWriter Output => _outbound.Writer;

    /// <summary>The connection's state as the event loop last saw it (it changes on the loop's thread).</summary>
    public TcpState State => (TcpState)Volatile.Read(ref _state);

    /// <summary>
    /// Completes when the connection is over for this host: closed, reset, or in TIME-WAIT (which needs no application).
    /// </summary>
    public Task Closed => _closed.Task;

    /// <summary>Turns Nagle's algorithm off (true) or on for this connection (RFC 9293 §3.7.4), as <see cref="Socket.NoDelay"/>.</summary>
    public bool NoDelay
    {
        get => _noDelay;
        set
        {
            _noDelay = value;
            _loop.Post(() => Tcb.NoDelay = value);
        }
    }

    /// <summary>
    /// Keep-alive probes on an idle connection (RFC 9293 §3.8.4), timed by <see cref="TunStackOptions.KeepAliveIdle"/>,
    /// <see cref="TunStackOptions.KeepAliveInterval"/> and <see cref="TunStackOptions.KeepAliveProbes"/>. When the probes
    /// go unanswered the connection fails with <see cref="SocketError.TimedOut"/>.
    /// </summary>
    public bool KeepAlive
    {
        get => _keepAlive;
        set
        {
            _keepAlive = value;
            _loop.Post(() =>
            {
                if (Tcb.State != TcpState.Closed) Tcb.KeepAlive = value;
            });
        }
    }

    /// <summary>
    /// The connection as a <see cref="Stream"/> (the same one on every call), for code written against
    /// <see cref="NetworkStream"/>. Disposing the stream disposes the connection.
    /// </summary>
    public TunStackStream GetStream()
    {
        if (Volatile.Read(ref _stream) is { } stream) return stream;
        Interlocked.CompareExchange(ref _stream, new TunStackStream(this), null);
        return _stream;
    }

    /// <summary>Resets the connection (RST) at once, discarding unsent and unread data (RFC 9293 §3.10.5).</summary>
    public void Abort()
    {
        // Marked at once, so that an output the application completes right after (DisposeAsync does) cannot be taken
        // by the loop for a graceful close, with a FIN, before the posted reset runs.
        _abortRequested = true;
        _loop.Post(AbortOnLoop);
    }

    /// <summary>
    /// Completes both pipes and lets go of the connection, as close(2) does for a socket: a graceful close (FIN after
    /// the data written) if everything received was read; a reset if received data was left unread (RFC 2525 §2.17).
    /// Returns once the close has been handed to the stack; <see cref="Closed"/> tells when it is over.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
            return;
        await Input.CompleteAsync().ConfigureAwait(false);
        await Output.CompleteAsync().ConfigureAwait(false);
        _loop.Post(() =>
        {
            _disposed = true;
            OnLoopSignal();
        });
    }

    /// <summary>Loop thread: RST now, and both pipes end with <see cref="SocketError.ConnectionAborted"/>.</summary>
    internal void AbortOnLoop()
    {
        _abortedLocally = true;
        if (Tcb.State != TcpState.Closed) Tcb.Abort();
        OnLoopSignal();
        CheckFinished();
    }

    /// <summary>Loop thread: true once both directions are finished and the loop can forget the connection.</summary>
    internal bool IsFinished => _inboundDone && _outboundDone && Tcb.State is TcpState.Closed or TcpState.TimeWait;

    /// <summary>Loop thread: a pipe continuation fired (the application read or wrote).</summary>
    internal void OnLoopSignal()
    {
        PumpInbound();
        PumpOutbound();
    }

    /// <summary>Loop thread: completes <see cref="Closed"/> once the TCB is closed or in TIME-WAIT.</summary>
    internal void CheckFinished()
    {
        Volatile.Write(ref _state, (int)Tcb.State);
        if (Tcb.State is TcpState.Closed or TcpState.TimeWait)
            _closed.TrySetResult();
    }

    /// <summary>
    /// Loop thread: once the application disposed the connection and everything it wrote is in the TCB, release the
    /// TCB — telling it whether received data went unread (left in the TCB, or in the pipe unconsumed).
    /// </summary>
    private void TryRelease()
    {
        if (!_disposed || _released || !_outboundDone) return;
        _released = true;
        if (Tcb.State is TcpState.Closed or TcpState.TimeWait) return;
        bool unread = Tcb.BytesAvailable > 0 || _input.Consumed < _delivered;
        Tcb.Release(unread);
    }

    /// <summary>Loop thread: moves received bytes from the TCB into the input pipe, honouring its backpressure.</summary>
    internal void PumpInbound()
    {
        Volatile.Write(ref _state, (int)Tcb.State);
        if (_inboundDone) return;
        if (_abortedLocally)
        {
            // Whatever was received is discarded with the connection; a waiting read fails at once.
            FinishInbound();
            _inbound.Writer.Complete(ClosedException(reading: true));
            return;
        }
        if (_inboundPaused)
        {
            if (!_pendingFlush.IsCompleted) return;
            _inboundPaused = false;
            if (_pendingFlush.GetAwaiter().GetResult().IsCompleted)
            {
                DiscardInbound();
                return;
            }
        }

        var writer = _inbound.Writer;
        if (_unflushed > 0 && !Flush(writer))
            return;
        while (Tcb.BytesAvailable > 0)
        {
            var span = writer.GetSpan(Math.Min(Tcb.BytesAvailable, MaxChunk));
            int n = Tcb.Receive(span);
            writer.Advance(n);
            _delivered += n;
            if (!Flush(writer))
                return;
        }

        if (Tcb.ReceiveFinished)
        {
            FinishInbound();
            writer.Complete();
        }
        else if (Tcb.State == TcpState.Closed)
        {
            FinishInbound();
            writer.Complete(Tcb.CloseReason == CloseReason.Normal ? null : ClosedException(reading: true));
        }
    }

    /// <summary>
    /// Loop thread: nothing more goes to the application. The TCB lets go of this connection (it may outlive it, e.g. in
    /// the timer queue, and must not keep the pipes alive).
    /// </summary>
    private void FinishInbound()
    {
        _inboundDone = true;
        Tcb.ReceiveSink = null;
    }

    /// <summary>
    /// Loop thread, inside segment processing: takes in-order text straight into the input pipe while the application
    /// keeps up (the pipe has not paused), sparing the copy through the receive ring. The TCB offers text only when its
    /// ring holds nothing, so nothing older can be overtaken.
    /// </summary>
    bool IReceiveSink.TryTake(ReadOnlySpan<byte> text)
    {
        if (_inboundDone || _inboundPaused || _abortedLocally)
            return false;
        var writer = _inbound.Writer;
        while (!text.IsEmpty)
        {
            var span = writer.GetSpan(Math.Min(text.Length, MaxChunk));
            int n = Math.Min(span.Length, text.Length);
            text[..n].CopyTo(span);
            writer.Advance(n);
            _delivered += n;
            _unflushed += n;
            text = text[n..];
        }
        if (_unflushed >= FlushAfter)
            Flush(writer);
        return true;
    }

    /// <summary>Loop thread, inside segment processing: what the TCB holds goes to the pipe as far as it keeps up.</summary>
    void IReceiveSink.Drain() => PumpInbound();

    /// <summary>
    /// Flushes the input pipe; true when the application may be given more at once. When it is behind, pauses the
    /// inbound side until the pipe's flush completes (the continuation signals the loop).
    /// </summary>
    private bool Flush(PipeWriter writer)
    {
        _unflushed = 0;
        var flush = writer.FlushAsync();
        if (!flush.IsCompleted)
        {
            // The application is behind: stop here; the TCB keeps the rest and the window closes.
            _inboundPaused = true;
            _pendingFlush = flush;
            flush.GetAwaiter().UnsafeOnCompleted(_signal);
            return false;
        }
        if (flush.GetAwaiter().GetResult().IsCompleted)
        {
            DiscardInbound();
            return false;
        }
        return true;
    }

    /// <summary>
    /// The application stopped reading. What is still in the TCB stays there unread: when the application lets go of
    /// the connection, unread data turns the close into a reset (see <see cref="TryRelease"/>).
    /// </summary>
    private void DiscardInbound()
    {
        FinishInbound();
        _inbound.Writer.Complete();
    }

    /// <summary>Loop thread: moves bytes the application wrote into the TCB's send buffer while it has room.</summary>
    internal void PumpOutbound()
    {
        PumpOutboundData();
        TryRelease();
    }

    private void PumpOutboundData()
    {
        if (_abortRequested && !_abortedLocally)
        {
            AbortOnLoop(); // the application asked for a reset: no FIN may go out first
            return;
        }
        var reader = _outbound.Reader;
        while (!_outboundDone)
        {
            if (Tcb.State is not (TcpState.Established or TcpState.CloseWait))
            {
                // Our FIN is queued or the connection is gone: tell a writer that is still writing.
                FinishOutbound(Tcb.State == TcpState.Closed && (Tcb.CloseReason != CloseReason.Normal || _abortedLocally)
                    ? ClosedException(reading: false)
                    : null);
                return;
            }
            if (Tcb.SendSpace == 0)
            {
                // Resumed by a Writable event. But an application that completed its output with an error wants the
                // reset now, not once the peer has taken what is queued: a peer that stopped reading never would.
                if (OutputFailed(reader))
                {
                    FinishOutbound(null);
                    Tcb.Abort();
                }
                return;
            }

            ReadResult result;
            try
            {
                if (_readPending)
                {
                    if (!_pendingRead.IsCompleted) return;
                    _readPending = false;
                    result = _pendingRead.GetAwaiter().GetResult();
                }
                else if (!reader.TryRead(out result))
                {
                    var read = reader.ReadAsync();
                    if (!read.IsCompleted)
                    {
                        _readPending = true;
                        _pendingRead = read;
                        read.GetAwaiter().UnsafeOnCompleted(_signal);
                        return;
                    }
                    result = read.GetAwaiter().GetResult();
                }
            }
            catch (Exception)
            {
                // The application completed its output with an error: abort the connection.
                FinishOutbound(null);
                _abortedLocally = true;
                Tcb.Abort();
                PumpInbound();
                return;
            }

            var buffer = result.Buffer;
            long taken = 0;
            foreach (var memory in buffer)
            {
                int n = Tcb.Send(memory.Span);
                taken += n;
                if (n < memory.Length) break;
            }
            reader.AdvanceTo(buffer.GetPosition(taken));
            if (taken < buffer.Length)
                return; // send buffer full: a Writable event resumes
            if (result.IsCompleted || result.IsCanceled)
            {
                // The application finished writing: CLOSE, our FIN follows the data (RFC 9293 §3.10.4).
                FinishOutbound(null);
                Tcb.Close();
                return;
            }
        }
        if (_readPending && _pendingRead.IsCompleted)
        {
            // The read cancelled by FinishOutbound has returned: now the reader can be completed.
            _readPending = false;
            try { _pendingRead.GetAwaiter().GetResult(); } catch (Exception) { }
            reader.Complete(_outboundError);
        }
    }

    /// <summary>Loop thread, send buffer full: whether the application completed its output with an error. Takes nothing.</summary>
    private bool OutputFailed(PipeReader reader)
    {
        try
        {
            if (_readPending)
            {
                if (!_pendingRead.IsCompleted) return false;
                _readPending = false;
                reader.AdvanceTo(_pendingRead.GetAwaiter().GetResult().Buffer.Start);
            }
            else if (reader.TryRead(out var result))
            {
                reader.AdvanceTo(result.Buffer.Start);
            }
            return false;
        }
        catch (Exception)
        {
            return true; // the writer's exception, thrown by the read
        }
    }

    /// <summary>
    /// Loop thread: no more bytes will be taken from the output pipe. A read still outstanding is cancelled first,
    /// so the reader is completed (and the application's writer learns of it) as soon as that read returns.
    /// </summary>
    private void FinishOutbound(Exception? error)
    {
        _outboundDone = true;
        _outboundError = error;
        if (_readPending)
            _outbound.Reader.CancelPendingRead();
        else
            _outbound.Reader.Complete(error);
    }

    /// <summary>The error a pipe ends with when the connection did not close normally, as a socket would report it.</summary>
    private SocketException ClosedException(bool reading)
    {
        if (_abortedLocally)
            return new SocketException((int)(reading ? SocketError.OperationAborted : SocketError.ConnectionAborted));
        return new SocketException((int)(Tcb.CloseReason switch
        {
            CloseReason.ResetByPeer => SocketError.ConnectionReset,
            CloseReason.Refused => SocketError.ConnectionReset,
            CloseReason.TimedOut => SocketError.TimedOut,
            _ => SocketError.ConnectionAborted,
        }));
    }

    /// <inheritdoc />
    public override string ToString() => $"{LocalEndPoint} <-> {RemoteEndPoint} {State.ToRfcName()}";
}
