using System.Threading.Channels;

namespace TunStack.Api;

/// <summary>A listening port on the stack; hands out connections whose handshake has completed.</summary>
public sealed class TcpListener
{
    private readonly Channel<TcpConnection> _accepted = Channel.CreateUnbounded<TcpConnection>(
        new UnboundedChannelOptions { SingleWriter = true });

    internal TcpListener(ushort port) => Port = port;

    public ushort Port { get; }

    /// <summary>Waits for the next established connection.</summary>
    public ValueTask<TcpConnection> AcceptAsync(CancellationToken cancellationToken = default) =>
        _accepted.Reader.ReadAsync(cancellationToken);

    internal void Enqueue(TcpConnection connection) => _accepted.Writer.TryWrite(connection);

    internal void Complete() => _accepted.Writer.TryComplete();
}
