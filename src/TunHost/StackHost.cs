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
        var addresses = _options.Addresses.Select(IpAddress.Parse).ToArray();
        using var tun = TunDevice.Open(_options.TunName, _options.Mtu, _options.Offload);
        await using var capture = OpenCapture();

        // The device chain, from the event loop down to the TUN device:
        //     EventLoop -> CapturingDevice (--pcap) -> impairment (--impair) -> TunDevice
        // The capture wraps the impairment, so it records incoming packets after impairment and outgoing packets
        // before it: exactly the packets the stack itself received and sent.
        IPacketDevice device = tun;
        ImpairedDevice? impaired = _options.Impairment is { } impairment ? new ImpairedDevice(tun, impairment) : null;
        if (impaired is not null)
            device = impaired;
        if (capture is not null)
            device = new CapturingDevice(device, capture);

        var stack = new NetStack(new NetStackOptions
        {
            Addresses = addresses,
            Mtu = _options.Mtu,
            MslMicros = _options.MslMilliseconds * 1000L,
            FinWait2TimeoutMicros = _options.FinTimeoutMilliseconds * 1000L,
        }, _options.Trace ? new TextTracer(_console) : null);

        using var loop = new EventLoop(stack, device);
        var idle = _options.IdleTimeoutMilliseconds == 0
            ? Timeout.InfiniteTimeSpan
            : TimeSpan.FromMilliseconds(_options.IdleTimeoutMilliseconds);
        var services = new IConnectionService[]
        {
            new HttpService(() => loop.InvokeAsync(() => StatsJson.Render(stack, impaired, loop)).WaitAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult())
            {
                IdleTimeout = idle,
            },
            new EchoService { IdleTimeout = idle },
            new DiscardService { IdleTimeout = idle },
        };
        // The services stop after the loop, not with the signal: a service that saw the signal first would close its
        // connection gracefully (a FIN) before the loop resets it, and the peer would take a cut-off answer for a whole one.
        using var servicesStop = new CancellationTokenSource();
        var acceptLoops = new List<Task>();
        foreach (var service in services)
            acceptLoops.Add(AcceptLoopAsync(service, loop.Listen(service.Port), servicesStop.Token));

        loop.Start();
        // After a burst, once the stack is quiet, resident memory goes back to what is alive (see the class).
        using var trimmer = new QuietTimeTrimmer(() => stack.Counters.PacketsReceived + stack.Counters.PacketsSent);
        if (capture is not null)
            _console.WriteLine($"tunstack: capturing every packet to {_options.PcapFile} (pcap, raw IP; limit {_options.PcapLimitMegabytes} MB)");
        _console.WriteLine($"tunstack ready on {device.Name} {string.Join(", ", addresses)} mtu {_options.Mtu}: " +
            string.Join(", ", services.Select(s => $"{s.Name} {s.Port}")) +
            $"; offload {OffloadText(tun.Offloads)}" +
            (impaired is null ? string.Empty : $"; impair {impaired.Options}"));

        try
        {
            await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), loop.Completion).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        // Resets every connection still open (see EventLoop.Stop): without the loop nobody could finish them. The
        // services see the reset on their pipes; anything else they wait for is cancelled.
        loop.Stop();
        await servicesStop.CancelAsync().ConfigureAwait(false);
        if (capture is not null)
        {
            // Written out and flushed before we report: SIGINT and SIGTERM end up here too.
            await capture.DisposeAsync().ConfigureAwait(false);
            _console.WriteLine($"tunstack: {capture.PacketsWritten} packets written to {_options.PcapFile}" +
                (capture.PacketsDropped > 0 ? $", {capture.PacketsDropped} not captured (queue full)" : ""));
        }
        if (loop.Completion.IsFaulted)
        {
            _console.WriteLine($"tunstack: event loop failed: {loop.Completion.Exception!.InnerException}");
            return 1;
        }
        _console.WriteLine($"tunstack stopped; {loop.ConnectionsResetAtStop} connection(s) reset" +
            (impaired is null ? string.Empty : $"; impaired in: {impaired.Inbound}; out: {impaired.Outbound}"));
        return 0;
    }

    private PcapWriter? OpenCapture()
    {
        if (_options.PcapFile is not { } path)
            return null;
        return PcapWriter.Create(path, _options.PcapLimitMegabytes * 1_000_000L,
            message => _console.WriteLine($"tunstack: --pcap {path}: {message}"));
    }

    /// <summary>"off", or what the kernel granted, e.g. "csum,tso4,tso6".</summary>
    internal static string OffloadText(DeviceOffloads offloads)
    {
        if (offloads == DeviceOffloads.None) return "off";
        var parts = new List<string>(3);
        if ((offloads & DeviceOffloads.Checksum) != 0) parts.Add("csum");
        if ((offloads & DeviceOffloads.TcpSegmentation4) != 0) parts.Add("tso4");
        if ((offloads & DeviceOffloads.TcpSegmentation6) != 0) parts.Add("tso6");
        return string.Join(",", parts);
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
        // The services answer requests: a response should not wait for the ACK of the previous segment (Nagle).
        connection.NoDelay = true;
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
