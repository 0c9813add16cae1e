using System.Buffers;
using System.IO.Pipelines;
using TunStack.Api;

namespace TunStack.Host.Services;

/// <summary>
/// Echo protocol (RFC 862): every byte received is sent back. When the peer half-closes, the
/// remaining data is echoed and then our side closes too. A connection that sends nothing for
/// <see cref="IdleTimeout"/> is closed (FIN); one that stops reading its echo for that long is reset.
/// </summary>
public sealed class EchoService : IConnectionService
{
    private long _bytesEchoed;
    private IdleMonitor? _idle;

    public string Name => "echo";

    public ushort Port { get; init; } = 7;

    /// <summary>How long a connection may wait for its peer (<see cref="IdleMonitor"/>); infinite: forever.</summary>
    public TimeSpan IdleTimeout { get; init; } = IdleMonitor.DefaultTimeout;

    /// <summary>The clock of the idle timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal IdleMonitor Idle => LazyInitializer.EnsureInitialized(ref _idle, () => new IdleMonitor(IdleTimeout, TimeProvider));

    /// <summary>Total bytes written back, over all connections.</summary>
    public long BytesEchoed => Interlocked.Read(ref _bytesEchoed);

    public async Task HandleAsync(IDuplexPipe transport, ConnectionInfo info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        PipeReader input = transport.Input;
        PipeWriter output = transport.Output;
        IdleWatch idle = Idle.Watch(input, output, cancellationToken);
        try
        {
            while (true)
            {
                idle.BeginWait();
                ReadResult result = await input.ReadAsync().ConfigureAwait(false);
                idle.EndWait();
                if (result.IsCanceled && idle.Expired)
                {
                    break; // nothing for IdleTimeout: our FIN
                }

                ReadOnlySequence<byte> buffer = result.Buffer;
                long length = buffer.Length;
                foreach (ReadOnlyMemory<byte> segment in buffer)
                {
                    output.Write(segment.Span);
                }

                input.AdvanceTo(buffer.End);
                if (length > 0)
                {
                    Interlocked.Add(ref _bytesEchoed, length);
                    // Not reading while the flush waits is what pushes back on the sender.
                    idle.BeginWait(flush: true);
                    FlushResult flush = await output.FlushAsync().ConfigureAwait(false);
                    idle.EndWait();
                    if (flush.IsCompleted || flush.IsCanceled)
                    {
                        break;
                    }
                }

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception)
        {
            // Reset, abort or shutdown: the connection is over either way.
        }
        finally
        {
            idle.Dispose();
            await PipeCompletion.CompleteQuietlyAsync(output, idle.ExpiredInFlush ? IdleMonitor.StalledError() : null).ConfigureAwait(false);
            await PipeCompletion.CompleteQuietlyAsync(input).ConfigureAwait(false);
        }
    }
}
