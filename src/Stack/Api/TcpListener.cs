using System.Threading.Channels;

namespace TunStack.Api;

/// <summary>A listening port on the stack; hands out connections whose handshake has completed.</summary>
public sealed class TcpListener
{
    private readonly Channel<TcpConnection> _accepted = Channel.CreateUnbounded<TcpConnection>(
        new UnboundedChannelOptions { SingleWriter = true });

    private readonly Action<TcpConnection>? _onAccepted;

    internal TcpListener(ushort port, Action<TcpConnection>? accepted = null)
    {
        Port = port;
        _onAccepted = accepted;
    }

    public ushort Port { get; }

    /// <summary>Waits for the next established connection and takes it from the listener's accept queue.</summary>
    public async ValueTask<TcpConnection> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var connection = await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        _onAccepted?.Invoke(connection);
        return connection;
    }

    internal void Enqueue(TcpConnection connection) => _accepted.Writer.TryWrite(connection);

    internal void Complete() => _accepted.Writer.TryComplete();
}
