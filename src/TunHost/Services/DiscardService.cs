using System.IO.Pipelines;
using TunStack.Api;

namespace TunStack.Host.Services;

/// <summary>
/// Discard protocol (RFC 863): everything received is thrown away; nothing is ever sent.
/// Our side closes once the peer has closed its side, or when it sent nothing for <see cref="IdleTimeout"/>.
/// </summary>
public sealed class DiscardService : IConnectionService
{
    private long _bytesDiscarded;
    private IdleMonitor? _idle;

    public string Name => "discard";

    public ushort Port { get; init; } = 9;

    /// <summary>How long a connection may wait for its peer (<see cref="IdleMonitor"/>); infinite: forever.</summary>
    public TimeSpan IdleTimeout { get; init; } = IdleMonitor.DefaultTimeout;

    /// <summary>The clock of the idle timeout.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal IdleMonitor Idle => LazyInitializer.EnsureInitialized(ref _idle, () => new IdleMonitor(IdleTimeout, TimeProvider));

    /// <summary>Total bytes received and dropped, over all connections.</summary>
    public long BytesDiscarded => Interlocked.Read(ref _bytesDiscarded);

    public async Task HandleAsync(IDuplexPipe transport, ConnectionInfo info, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        PipeReader input = transport.Input;
        PipeWriter output = transport.Output;
        using IdleWatch idle = Idle.Watch(input, output, cancellationToken);
        try
        {
            while (true)
            {
                idle.BeginWait();
                ReadResult result = await input.ReadAsync().ConfigureAwait(false);
                idle.EndWait();
                long length = result.Buffer.Length;
                input.AdvanceTo(result.Buffer.End);
                if (length > 0)
                {
                    Interlocked.Add(ref _bytesDiscarded, length);
                }

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception)
        {
            // Reset, abort or shutdown.
        }
        finally
        {
            await PipeCompletion.CompleteQuietlyAsync(output).ConfigureAwait(false);
            await PipeCompletion.CompleteQuietlyAsync(input).ConfigureAwait(false);
        }
    }
}
