using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using TunStack.Tcp;

namespace TunStack.AspNetCore;

/// <summary>
/// One stack connection as Kestrel sees it. Its transport completes with the exceptions of Kestrel's own transports
/// (<see cref="ConnectionResetException"/>, <see cref="ConnectionAbortedException"/>); <see cref="ConnectionClosed"/>
/// fires when the TCP connection is over; the TCP details are the <see cref="ITunStackConnectionFeature"/>.
/// </summary>
internal sealed class TunStackConnectionContext : ConnectionContext, IConnectionIdFeature, IConnectionTransportFeature,
    IConnectionItemsFeature, IConnectionLifetimeFeature, IConnectionEndPointFeature, ITunStackConnectionFeature
{
    private static long s_nextId;

    private readonly TunStackConnection _connection;
    private readonly CancellationTokenSource _closed = new();
    private readonly FeatureCollection _features = new();
    private IDictionary<object, object?>? _items;
    private int _disposed;

    public TunStackConnectionContext(TunStackConnection connection)
    {
        _connection = connection;
        ConnectionId = "tunstack-" + Interlocked.Increment(ref s_nextId).ToString("x");
        LocalEndPoint = connection.LocalEndPoint;
        RemoteEndPoint = connection.RemoteEndPoint;
        Transport = new TranslatingDuplexPipe(connection, this);
        _features.Set<IConnectionIdFeature>(this);
        _features.Set<IConnectionTransportFeature>(this);
        _features.Set<IConnectionItemsFeature>(this);
        _features.Set<IConnectionLifetimeFeature>(this);
        _features.Set<IConnectionEndPointFeature>(this);
        _features.Set<ITunStackConnectionFeature>(this);
        // The TCP connection is over (closed, reset, TIME-WAIT): tell Kestrel, as its socket transport does.
        connection.Closed.ContinueWith(static (_, state) => ((TunStackConnectionContext)state!).FireClosed(), this,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    public override string ConnectionId { get; set; }
    public override IFeatureCollection Features => _features;
    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }
    public override IDuplexPipe Transport { get; set; }
    public override EndPoint? LocalEndPoint { get; set; }
    public override EndPoint? RemoteEndPoint { get; set; }
    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException();
    }

    TunStackConnection ITunStackConnectionFeature.Connection => _connection;
    TcpConnectionInfo ITunStackConnectionFeature.Info => _connection.Info;
    TcpState ITunStackConnectionFeature.State => _connection.State;

    /// <summary>Kestrel gives up on the connection: RST, and both pipes end with <paramref name="abortReason"/>'s kind.</summary>
    public override void Abort(ConnectionAbortedException abortReason)
    {
        ((TranslatingDuplexPipe)Transport).AbortReason = abortReason;
        _connection.Abort();
    }

    internal void FireClosed()
    {
        try { _closed.Cancel(); }
        catch (ObjectDisposedException) { }
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _connection.DisposeAsync().ConfigureAwait(false);
        FireClosed();
    }
}

/// <summary>The connection's pipes, with the stack's <see cref="System.Net.Sockets.SocketException"/>s turned into Kestrel's.</summary>
internal sealed class TranslatingDuplexPipe(TunStackConnection connection, TunStackConnectionContext context) : IDuplexPipe
{
    public ConnectionAbortedException? AbortReason { get; set; }

    public PipeReader Input { get; } = new TranslatingReader(connection.Input, context);
    public PipeWriter Output { get; } = new TranslatingWriter(connection.Output, context);

    /// <summary>Reset and time-out become <see cref="ConnectionResetException"/>; a local abort <see cref="ConnectionAbortedException"/>.</summary>
    internal static Exception Translate(System.Net.Sockets.SocketException e, TunStackConnectionContext context) => e.SocketErrorCode switch
    {
        System.Net.Sockets.SocketError.ConnectionReset or System.Net.Sockets.SocketError.TimedOut
            => new ConnectionResetException(e.Message, e),
        _ => ((TranslatingDuplexPipe)context.Transport).AbortReason ?? new ConnectionAbortedException(e.Message, e),
    };

    private sealed class TranslatingReader(PipeReader inner, TunStackConnectionContext context) : PipeReader
    {
        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                context.FireClosed();
                throw Translate(e, context);
            }
        }

        public override bool TryRead(out ReadResult result)
        {
            try
            {
                return inner.TryRead(out result);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                context.FireClosed();
                throw Translate(e, context);
            }
        }

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);
        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);
        public override void CancelPendingRead() => inner.CancelPendingRead();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }

    private sealed class TranslatingWriter(PipeWriter inner, TunStackConnectionContext context) : PipeWriter
    {
        public override void Advance(int bytes) => inner.Advance(bytes);
        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        public override void CancelPendingFlush() => inner.CancelPendingFlush();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;
        public override long UnflushedBytes => inner.UnflushedBytes;

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (System.Net.Sockets.SocketException e)
            {
                throw Translate(e, context);
            }
        }
    }
}
