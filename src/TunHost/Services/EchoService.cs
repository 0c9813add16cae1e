using System.Buffers;
using System.IO.Pipelines;
using TunStack.Api;

namespace TunStack.Host.Services;

/// <summary>
/// Echo protocol (RFC 862): every byte received is sent back. When the peer half-closes, the
/// remaining data is echoed and then our side closes too.
/// </summary>
public sealed class EchoService : IConnectionService
{
    private long _bytesEchoed;

    public string Name => "echo";

    public ushort Port { get; init; } = 7;

    /// <summary>Total bytes written back, over all connections.</summary>
    public long BytesEchoed => Interlocked.Read(ref _bytesEchoed);

    public async Task HandleAsync(IDuplexPipe transport, ConnectionInfo info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        PipeReader input = transport.Input;
        PipeWriter output = transport.Output;
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
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
                    FlushResult flush = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
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
            await PipeCompletion.CompleteQuietlyAsync(output).ConfigureAwait(false);
            await PipeCompletion.CompleteQuietlyAsync(input).ConfigureAwait(false);
        }
    }
}
