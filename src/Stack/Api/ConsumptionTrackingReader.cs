using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace TunStack;

/// <summary>
/// The application's end of a connection's input pipe, counting the bytes it consumed, so that closing a connection
/// with received data still unread can be told apart from a clean close (RFC 2525 §2.17: the peer must learn, by a
/// reset, that data was lost). Only the application's thread touches it; the count is read after it completed.
/// </summary>
internal sealed class ConsumptionTrackingReader : PipeReader, IValueTaskSource<ReadResult>
{
    private readonly PipeReader _inner;
    private readonly Action _innerReadCompleted;
    private ReadOnlySequence<byte> _last;
    private long _consumed;
    private volatile bool _completed;

    // A read that has to wait completes through this object itself (PipeReader allows one read at a time), so an idle
    // connection holds no state machine box per read, and a read allocates nothing.
    private ManualResetValueTaskSourceCore<ReadResult> _read;
    private ConfiguredValueTaskAwaitable<ReadResult>.ConfiguredValueTaskAwaiter _innerRead;

    public ConsumptionTrackingReader(PipeReader inner)
    {
        _inner = inner;
        _innerReadCompleted = OnInnerReadCompleted;
    }

    public long Consumed => Volatile.Read(ref _consumed);
    public bool IsCompleted => _completed;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var pending = _inner.ReadAsync(cancellationToken);
        if (pending.IsCompletedSuccessfully)
            return new ValueTask<ReadResult>(Remember(pending.Result));
        _read.Reset();
        _innerRead = pending.ConfigureAwait(false).GetAwaiter();
        _innerRead.UnsafeOnCompleted(_innerReadCompleted);
        return new ValueTask<ReadResult>(this, _read.Version);
    }

    private void OnInnerReadCompleted()
    {
        var awaiter = _innerRead;
        _innerRead = default;
        try
        {
            _read.SetResult(Remember(awaiter.GetResult()));
        }
        catch (Exception e)
        {
            _read.SetException(e);
        }
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _read.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token,
        ValueTaskSourceOnCompletedFlags flags) => _read.OnCompleted(continuation, state, token, flags);

    public override bool TryRead(out ReadResult result)
    {
        if (!_inner.TryRead(out result)) return false;
        Remember(result);
        return true;
    }

    private ReadResult Remember(ReadResult result)
    {
        _last = result.Buffer;
        return result;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        Volatile.Write(ref _consumed, _consumed + _last.Slice(_last.Start, consumed).Length);
        _last = default;
        _inner.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        _inner.Complete(exception);
    }

    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        _completed = true;
        return _inner.CompleteAsync(exception);
    }
}
