using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using TunStack.Runtime;
using TunStack.Tcp;

namespace TunStack.Api;

/// <summary>
/// One TCP connection as the application sees it: a duplex pipe. Read <see cref="Input"/> until it completes
/// (the peer's FIN); write to <see cref="Output"/> and complete it to close (our FIN); <see cref="Abort"/> resets.
/// The event loop moves bytes between these pipes and the connection's TCB on its own thread.
/// </summary>
public sealed class TcpConnection : IDuplexPipe, IAsyncDisposable
{
    private const int MaxChunk = 64 * 1024;

    /// <summary>
    /// Bytes a pipe holds before its writer waits: the application's output on top of the TCB's send buffer, received
    /// bytes on top of the receive buffer. The TCB's buffers are the windows; the pipes only stage bytes between two
    /// threads, so they need not be large, and every busy connection holds up to this much in each.
    /// </summary>
    private const int PauseThreshold = 128 * 1024, ResumeThreshold = 64 * 1024;

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
    private long _delivered;          // bytes written into the input pipe (loop thread)
    private bool _disposed;           // the application disposed the connection (loop thread)
    private bool _released;
    private TaskCompletionSource? _finished;  // made when someone asks for Finished
    private int _isFinished;

    // Loop-thread state.
    private bool _inboundPaused;
    private bool _inboundDone;
    private ValueTask<FlushResult> _pendingFlush;
    private bool _readPending;
    private ValueTask<ReadResult> _pendingRead;
    private bool _outboundDone;
    private Exception? _outboundError;

    internal TcpConnection(EventLoop loop, Tcb tcb)
    {
        _loop = loop;
        Tcb = tcb;
        _inbound = new Pipe(InboundOptions);
        _outbound = new Pipe(OutboundOptions);
        _input = new ConsumptionTrackingReader(_inbound.Reader);
        _signal = () => _loop.Signal(this);
        var t = tcb.Tuple;
        Info = new ConnectionInfo(
            new IPEndPoint(t.LocalAddress.ToIPAddress(), t.LocalPort),
            new IPEndPoint(t.RemoteAddress.ToIPAddress(), t.RemotePort),
            tcb.Irs.Value, tcb.Iss.Value, tcb.PeerMss, tcb.LocalMss);
    }

    internal Tcb Tcb { get; }

    public ConnectionInfo Info { get; }
    public PipeReader Input => _input;

    /// <summary>The connection's state as the event loop last saw it (for display; it changes on the loop's thread).</summary>
    public TcpState State => Tcb.State;

    /// <summary>
    /// Completes when the connection is over for this host: closed, or in TIME-WAIT (which needs no application).
    /// </summary>
    public Task Finished
    {
        get
        {
            var finished = LazyInitializer.EnsureInitialized(ref _finished,
                static () => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            if (Volatile.Read(ref _isFinished) != 0) finished.TrySetResult();
            return finished.Task;
        }
    }

    /// <summary>Turns Nagle's algorithm off (true) or on for this connection (RFC 9293 §3.7.4).</summary>
    public bool NoDelay
    {
        set => _loop.Post(() => Tcb.NoDelay = value);
    }

    /// <summary>Keep-alive probes on an idle connection (RFC 9293 §3.8.4).</summary>
    public bool KeepAlive
    {
        set => _loop.Post(() => Tcb.KeepAlive = value);
    }
    public PipeWriter Output => _outbound.Writer;

    /// <summary>Resets the connection (RST) at once, discarding unsent data (RFC 9293 §3.10.5).</summary>
    public void Abort() => _loop.Post(() =>
    {
        if (Tcb.State != TcpState.Closed) Tcb.Abort();
        OnLoopSignal();
    });

    /// <summary>
    /// Completes both pipes and lets go of the connection, as close(2) does for a socket: a graceful close (FIN after
    /// the data written) if everything received was read; a reset if received data was left unread (RFC 2525 §2.17).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await Input.CompleteAsync().ConfigureAwait(false);
        await Output.CompleteAsync().ConfigureAwait(false);
        _loop.Post(() =>
        {
            _disposed = true;
            OnLoopSignal();
        });
    }

    /// <summary>Loop thread: true once both directions are finished and the loop can forget the connection.</summary>
    internal bool IsFinished => _inboundDone && _outboundDone && Tcb.State is TcpState.Closed or TcpState.TimeWait;

    /// <summary>Loop thread: a pipe continuation fired (the application read or wrote).</summary>
    internal void OnLoopSignal()
    {
        PumpInbound();
        PumpOutbound();
    }

    /// <summary>Loop thread: completes <see cref="Finished"/> once the TCB is closed or in TIME-WAIT.</summary>
    internal void CheckFinished()
    {
        if (Tcb.State is TcpState.Closed or TcpState.TimeWait && Interlocked.Exchange(ref _isFinished, 1) == 0)
            Volatile.Read(ref _finished)?.TrySetResult();
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
        if (_inboundDone) return;
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
        while (Tcb.BytesAvailable > 0)
        {
            var span = writer.GetSpan(Math.Min(Tcb.BytesAvailable, MaxChunk));
            int n = Tcb.Receive(span);
            writer.Advance(n);
            _delivered += n;
            var flush = writer.FlushAsync();
            if (!flush.IsCompleted)
            {
                // The application is behind: stop here; the TCB keeps the rest and the window closes.
                _inboundPaused = true;
                _pendingFlush = flush;
                flush.GetAwaiter().UnsafeOnCompleted(_signal);
                return;
            }
            if (flush.GetAwaiter().GetResult().IsCompleted)
            {
                DiscardInbound();
                return;
            }
        }

        if (Tcb.ReceiveFinished)
        {
            _inboundDone = true;
            writer.Complete();
        }
        else if (Tcb.State == TcpState.Closed)
        {
            _inboundDone = true;
            writer.Complete(Tcb.CloseReason == CloseReason.Normal ? null : ClosedException());
        }
    }

    /// <summary>
    /// The application stopped reading. What is still in the TCB stays there unread: when the application lets go of
    /// the connection, unread data turns the close into a reset (see <see cref="TryRelease"/>).
    /// </summary>
    private void DiscardInbound()
    {
        _inboundDone = true;
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
        var reader = _outbound.Reader;
        while (!_outboundDone)
        {
            if (Tcb.State is not (TcpState.Established or TcpState.CloseWait))
            {
                // Our FIN is queued or the connection is gone: tell a writer that is still writing.
                FinishOutbound(Tcb.State == TcpState.Closed && Tcb.CloseReason != CloseReason.Normal ? ClosedException() : null);
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
                Tcb.Abort();
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

    private Exception ClosedException() => Tcb.CloseReason switch
    {
        CloseReason.ResetByPeer => new ConnectionResetException("Connection reset by peer."),
        CloseReason.TimedOut => new ConnectionResetException("Connection timed out."),
        _ => new ConnectionResetException("Connection aborted."),
    };

    public override string ToString() => Tcb.ToString();
}

/// <summary>The connection was reset, aborted or timed out.</summary>
public sealed class ConnectionResetException(string message) : IOException(message);
