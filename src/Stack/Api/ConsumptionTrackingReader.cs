using System.Buffers;
using System.IO.Pipelines;

namespace TunStack;

/// <summary>
/// The application's end of a connection's input pipe, counting the bytes it consumed, so that closing a connection
/// with received data still unread can be told apart from a clean close (RFC 2525 §2.17: the peer must learn, by a
/// reset, that data was lost). Only the application's thread touches it; the count is read after it completed.
/// </summary>
internal sealed class ConsumptionTrackingReader(PipeReader inner) : PipeReader
{
    private ReadOnlySequence<byte> _last;
    private long _consumed;
    private volatile bool _completed;

    public long Consumed => Volatile.Read(ref _consumed);
    public bool IsCompleted => _completed;

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var pending = inner.ReadAsync(cancellationToken);
        if (pending.IsCompletedSuccessfully)
            return new ValueTask<ReadResult>(Remember(pending.Result));
        return ReadSlowAsync(pending);
    }

    private async ValueTask<ReadResult> ReadSlowAsync(ValueTask<ReadResult> pending) => Remember(await pending.ConfigureAwait(false));

    public override bool TryRead(out ReadResult result)
    {
        if (!inner.TryRead(out result)) return false;
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
        inner.AdvanceTo(consumed, examined);
    }

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        inner.Complete(exception);
    }

    public override ValueTask CompleteAsync(Exception? exception = null)
    {
        _completed = true;
        return inner.CompleteAsync(exception);
    }
}
