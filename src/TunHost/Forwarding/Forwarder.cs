using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace TunStack.Host.Forwarding;

/// <summary>
/// tun2socks on the public API: the stack's forwarding listener (<see cref="TunStackHost.ListenAnyAsync"/>) takes every
/// TCP connection routed into the device for an address that is not the stack's own; each one is relayed, byte for
/// byte, to a kernel socket — remapped, through SOCKS5, or direct (<see cref="ForwardOptions"/>).
/// </summary>
/// <remarks>
/// <para>The client's handshake completes before the upstream is tried (as in tun2socks): when the upstream refuses or
/// cannot be reached in time, the client's connection is reset.</para>
/// <para>Half-close travels both ways: the client's FIN becomes <c>shutdown(SHUT_WR)</c> upstream, the upstream's FIN
/// becomes our FIN; the relay ends when both directions have ended. A reset on either side resets the other; so does
/// <see cref="ForwardOptions.IdleTimeout"/>.</para>
/// </remarks>
public sealed class Forwarder(ForwardOptions options, TextWriter log)
{
    private const int ChunkSize = 64 * 1024;
    private long _relayed, _failed, _active;

    /// <summary>Connections relayed to the end, and those reset because the upstream could not be reached.</summary>
    public long Relayed => Interlocked.Read(ref _relayed);

    /// <summary>Connections reset because the upstream refused or could not be reached.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Relays running now.</summary>
    public long Active => Interlocked.Read(ref _active);

    /// <summary>Opens the forwarding listener on <paramref name="host"/> and relays until cancelled or the host stops.</summary>
    public async Task RunAsync(TunStackHost host, CancellationToken cancellationToken)
    {
        var listener = await host.ListenAnyAsync().ConfigureAwait(false);
        await using (listener.ConfigureAwait(false))
        {
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    var connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                    _ = RelayAsync(connection, cancellationToken);
                }
            }
            catch (OperationCanceledException) { }
            catch (ObjectDisposedException) { }
        }
    }

    /// <summary>Connects upstream for <paramref name="client"/> and relays until both directions end.</summary>
    public async Task RelayAsync(TunStackConnection client, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _active);
        var destination = client.LocalEndPoint;
        var upstream = options.Upstream(destination);
        Socket? socket = null;
        try
        {
            try
            {
                socket = await ConnectUpstreamAsync(upstream, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                Interlocked.Increment(ref _failed);
                string why = e is OperationCanceledException ? "timed out" : e.Message;
                log.WriteLine($"tunstack forward: {client.RemoteEndPoint} -> {destination}: upstream {upstream} failed ({why}); resetting");
                client.Abort();
                return;
            }
            client.NoDelay = true;
            await RelayAsync(client, socket, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _relayed);
        }
        finally
        {
            socket?.Dispose();
            await client.DisposeAsync().ConfigureAwait(false);
            Interlocked.Decrement(ref _active);
        }
    }

    private async Task<Socket> ConnectUpstreamAsync(IPEndPoint upstream, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var first = options.Socks5 ?? upstream;
        var socket = new Socket(first.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            options.Apply(socket);
            await socket.ConnectAsync(first, timeout.Token).ConfigureAwait(false);
            if (options.Socks5 is not null)
                await Socks5Client.ConnectAsync(socket, upstream, timeout.Token).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The two directions, each ending at its FIN; a failure or the idle timeout resets both sides.</summary>
    private async Task RelayAsync(TunStackConnection client, Socket socket, CancellationToken cancellationToken)
    {
        using var abort = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long lastActivity = Environment.TickCount64;
        var idle = IdleWatchAsync(() => Volatile.Read(ref lastActivity), abort);
        var toUpstream = ClientToUpstreamAsync(client.Input, socket, () => Volatile.Write(ref lastActivity, Environment.TickCount64), abort.Token);
        var toClient = UpstreamToClientAsync(socket, client.Output, () => Volatile.Write(ref lastActivity, Environment.TickCount64), abort.Token);

        // Either direction failing (reset, abort, idle) ends both: the first failure cancels the other.
        bool failed = false;
        foreach (var direction in new[] { toUpstream, toClient })
        {
            _ = direction.ContinueWith(t => { if (!t.Result) abort.Cancel(); }, CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        failed |= !await toUpstream.ConfigureAwait(false);
        failed |= !await toClient.ConfigureAwait(false);
        await abort.CancelAsync().ConfigureAwait(false);
        await idle.ConfigureAwait(false);
        if (failed)
        {
            // A reset on one side is a reset on the other: RST to the client, and close upstream with SO_LINGER 0 (RST).
            client.Abort();
            try { socket.LingerState = new LingerOption(true, 0); } catch (SocketException) { }
        }
    }

    /// <summary>The client's bytes to the upstream socket; the client's FIN becomes shutdown(SHUT_WR). False on failure.</summary>
    private static async Task<bool> ClientToUpstreamAsync(PipeReader input, Socket socket, Action active, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                foreach (var memory in buffer)
                {
                    var rest = memory;
                    while (!rest.IsEmpty)
                    {
                        int n = await socket.SendAsync(rest, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                        rest = rest[n..];
                    }
                }
                if (!buffer.IsEmpty) active();
                input.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    socket.Shutdown(SocketShutdown.Send);
                    await input.CompleteAsync().ConfigureAwait(false);
                    return true;
                }
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>The upstream's bytes to the client; the upstream's FIN becomes our FIN. False on failure.</summary>
    private static async Task<bool> UpstreamToClientAsync(Socket socket, PipeWriter output, Action active, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var memory = output.GetMemory(ChunkSize);
                int n = await socket.ReceiveAsync(memory, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    await output.CompleteAsync().ConfigureAwait(false);
                    return true;
                }
                output.Advance(n);
                active();
                var flush = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (flush.IsCompleted) return false;
            }
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>Cancels the relay once nothing moved for <see cref="ForwardOptions.IdleTimeout"/>.</summary>
    private async Task IdleWatchAsync(Func<long> lastActivity, CancellationTokenSource abort)
    {
        var period = TimeSpan.FromMilliseconds(Math.Clamp(options.IdleTimeout.TotalMilliseconds / 4, 10, 1000));
        try
        {
            while (!abort.IsCancellationRequested)
            {
                await Task.Delay(period, abort.Token).ConfigureAwait(false);
                if (Environment.TickCount64 - lastActivity() > options.IdleTimeout.TotalMilliseconds)
                {
                    await abort.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException) { }
    }
}
