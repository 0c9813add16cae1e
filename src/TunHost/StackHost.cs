using System.Net;
using System.Net.Sockets;
using TunStack.Diagnostics;
using TunStack.Host.Services;
using TunStack.Linux;
using TunStack.Runtime;

namespace TunStack.Host;

/// <summary>
/// Puts the pieces together with the public API: the TUN device, a <see cref="TunStackHost"/> on it, and the services
/// listening on it.
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
        var queues = TunDevice.OpenQueues(_options.TunName, _options.Mtu, _options.Offload, _options.Queues);
        using var closeQueues = new DisposeAll(queues);
        var tun = queues[0];
        await using var capture = OpenCapture();

        // The device chain of each queue, from its event loop down to the TUN device:
        //     EventLoop -> CapturingDevice (--pcap) -> impairment (--impair) -> TunDevice
        // The capture wraps the impairment, so it records incoming packets after impairment and outgoing packets
        // before it: exactly the packets the stack itself received and sent.
        ImpairedDevice? impaired = _options.Impairment is { } impairment ? new ImpairedDevice(tun, impairment) : null;
        var devices = queues.Select(IPacketDevice (queue) =>
        {
            IPacketDevice device = impaired is not null && queue == tun ? impaired : queue;
            return capture is not null ? new CapturingDevice(device, capture) : device;
        }).ToArray();
        var device = devices[0];

        var host = await TunStackHost.StartAsync(devices, StackOptions(_options, _console), cancellationToken).ConfigureAwait(false);
        IService[] services;
        var serving = new List<Task>();
        try
        {
            services =
            [
                new HttpService(() => StatsJson.Render(Snapshot(host), impaired))
                {
                    ConnectionsProvider = () => ConnectionTable.Render(Snapshot(host)),
                },
                new EchoService(),
                new DiscardService(),
            ];
            foreach (var service in services)
            {
                var listener = await host.ListenAsync(service.Port).ConfigureAwait(false);
                serving.Add(AcceptLoopAsync(service, listener, _console, cancellationToken));
            }
            if (_options.Forward is { } forward)
                serving.Add(new Forwarding.Forwarder(forward, _console).RunAsync(host, cancellationToken));

            if (capture is not null)
                _console.WriteLine($"tunstack: capturing every packet to {_options.PcapFile} (pcap, raw IP; limit {_options.PcapLimitMegabytes} MB)");
            _console.WriteLine($"tunstack ready on {device.Name} {string.Join(", ", _options.Addresses)} mtu {_options.Mtu}: " +
                string.Join(", ", services.Select(s => $"{s.Name} {s.Port}")) +
                $"; offload {OffloadText(tun.Offloads)}" +
                (queues.Length == 1 ? string.Empty : $"; {queues.Length} queues") +
                (_options.Forward is null ? string.Empty : $"; forwarding {_options.Forward}") +
                (impaired is null ? string.Empty : $"; impair {impaired.Options}"));

            try
            {
                await Task.WhenAny(Task.Delay(Timeout.Infinite, cancellationToken), host.Completion).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { }
        }
        finally
        {
            await host.DisposeAsync().ConfigureAwait(false);
        }
        if (capture is not null)
        {
            // Written out and flushed before we report: SIGINT and SIGTERM end up here too.
            await capture.DisposeAsync().ConfigureAwait(false);
            _console.WriteLine($"tunstack: {capture.PacketsWritten} packets written to {_options.PcapFile}" +
                (capture.PacketsDropped > 0 ? $", {capture.PacketsDropped} not captured (queue full)" : ""));
        }
        if (host.Completion.IsFaulted)
        {
            _console.WriteLine($"tunstack: event loop failed: {host.Completion.Exception!.InnerException}");
            return 1;
        }
        _console.WriteLine("tunstack stopped" +
            (impaired is null ? string.Empty : $"; impaired in: {impaired.Inbound}; out: {impaired.Outbound}"));
        return 0;
    }

    /// <summary>The stack's options from the command line; the device stays ours (the capture must be flushed after the host stops).</summary>
    internal static TunStackOptions StackOptions(HostOptions options, TextWriter console) => new()
    {
        Addresses = options.Addresses.Select(IPAddress.Parse).ToArray(),
        Mtu = options.Mtu,
        MaximumSegmentLifetime = TimeSpan.FromMilliseconds(options.MslMilliseconds),
        FinWait2Timeout = TimeSpan.FromMilliseconds(options.FinTimeoutMilliseconds),
        SegmentTrace = options.Trace ? console : null,
        Explain = options.Explain ? console : null,
        // Meter "TunStack": dotnet-counters monitor --counters TunStack -p PID
        Metrics = true,
        LeaveDeviceOpen = true,
    };

    /// <summary>Disposes the device's queues at the end of <see cref="RunAsync"/>.</summary>
    private sealed class DisposeAll(TunDevice[] queues) : IDisposable
    {
        public void Dispose()
        {
            foreach (var queue in queues)
                queue.Dispose();
        }
    }

    /// <summary>A snapshot of the stack, taken on its loop threads (the only one that touches the engine).</summary>
    private static TunStackDiagnostics Snapshot(TunStackHost host) =>
        host.GetDiagnosticsAsync().WaitAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();

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

    private PcapWriter? OpenCapture()
    {
        if (_options.PcapFile is not { } path)
            return null;
        return PcapWriter.Create(path, _options.PcapLimitMegabytes * 1_000_000L,
            message => _console.WriteLine($"tunstack: --pcap {path}: {message}"));
    }

    /// <summary>Accepts connections until the listener or the host is disposed, or cancellation.</summary>
    internal static async Task AcceptLoopAsync(IService service, TunStackListener listener, TextWriter console, CancellationToken cancellationToken)
    {
        try
        {
            await using (listener.ConfigureAwait(false))
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    var connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                    _ = ServeAsync(service, connection, console, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
    }

    private static async Task ServeAsync(IService service, TunStackConnection connection, TextWriter console, CancellationToken cancellationToken)
    {
        // The services answer requests: a response should not wait for the ACK of the previous segment (Nagle).
        connection.NoDelay = true;
        try
        {
            if (service is IStreamService streamService)
            {
                var stream = connection.GetStream();
                await streamService.HandleAsync(stream, stream.CompleteWrites, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ((IConnectionService)service).HandleAsync(connection, connection.Info, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset by the peer or shutting down: nothing to report.
        }
        catch (Exception e)
        {
            console.WriteLine($"tunstack: {service.Name} failed on {connection.RemoteEndPoint}: {e.Message}");
            connection.Abort();
        }
        finally
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
