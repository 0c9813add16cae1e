using TunStack.Api;
using TunStack.Diagnostics;
using TunStack.Host.Linux;
using TunStack.Host.Services;
using TunStack.Runtime;
using TunStack.Wire;

namespace TunStack.Host;

/// <summary>
/// Puts the pieces together: the TUN device, the stack, its event loop and the services listening on it.
/// </summary>
public sealed class StackHost
{
    private readonly HostOptions _options;
    private readonly TextWriter _console;

    public StackHost(HostOptions options, TextWriter console)
    {
        _options = options;
        _console = console;
    }

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var address = IpAddress.Parse(_options.Address);
        using var tun = TunDevice.Open(_options.TunName, _options.Mtu);
        ImpairedDevice? impaired = _options.Impairment is { } impairment ? new ImpairedDevice(tun, impairment) : null;
        IPacketDevice device = impaired ?? (IPacketDevice)tun;
        var stack = new NetStack(new NetStackOptions
        {
            Address = address,
            Mtu = _options.Mtu,
            MslMicros = _options.MslMilliseconds * 1000L,
        }, _options.Trace ? new TextTracer(_console) : null);

        using var loop = new EventLoop(stack, device);
        var services = new IConnectionService[]
        {
            new HttpService(() => loop.InvokeAsync(() => StatsJson.Render(stack, impaired)).WaitAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult()),
            new EchoService(),
            new DiscardService(),
        };
        var acceptLoops = new List<Task>();
        foreach (var service in services)
            acceptLoops.Add(AcceptLoopAsync(service, loop.Listen(service.Port), cancellationToken));

        loop.Start();
        _console.WriteLine($"tunstack ready on {device.Name} {address} mtu {_options.Mtu}: " +
            string.Join(", ", services.Select(s => $"{s.Name} {s.Port}")) +
            (impaired is null ? string.Empty : $"; impair {impaired.Options}"));

        try
        {
            await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), loop.Completion).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        loop.Stop();
        if (loop.Completion.IsFaulted)
        {
            _console.WriteLine($"tunstack: event loop failed: {loop.Completion.Exception!.InnerException}");
            return 1;
        }
        _console.WriteLine("tunstack stopped" +
            (impaired is null ? string.Empty : $"; impaired in: {impaired.Inbound}; out: {impaired.Outbound}"));
        return 0;
    }

    private async Task AcceptLoopAsync(IConnectionService service, TcpListener listener, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                _ = ServeAsync(service, connection, cancellationToken);
            }
        }
        catch (OperationCanceledException) { }
        catch (System.Threading.Channels.ChannelClosedException) { }
    }

    private async Task ServeAsync(IConnectionService service, TcpConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            await service.HandleAsync(connection, connection.Info, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // Reset by the peer or shutting down: nothing to report.
        }
        catch (Exception e)
        {
            _console.WriteLine($"tunstack: {service.Name} failed on {connection.Info.RemoteEndPoint}: {e.Message}");
            connection.Abort();
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
