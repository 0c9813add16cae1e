using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using TunStack.Host.Services;

namespace TunStack.Host.KernelReference;

/// <summary>
/// The hidden <c>tunstack kernel-reference</c> command: the same HTTP, echo and discard services as the stack, on
/// the same ports, but over the kernel's TCP (ordinary sockets). <c>./run-linux.sh bench e2e</c> runs it in a second
/// namespace to measure the kernel beside the stack in the same run.
/// </summary>
internal static class KernelReferenceCommand
{
    public const string Name = "kernel-reference";

    public static Command Create()
    {
        var address = new Option<string>("--address")
        {
            HelpName = "ipv4",
            Description = "Local IPv4 address to listen on (must be configured on an interface of this namespace)",
            DefaultValueFactory = _ => "198.18.0.2",
        };
        var command = new Command(
            Name,
            "Serve HTTP (80), echo (7) and discard (9) with the stack's own service code over kernel sockets, as the reference for benchmarks")
        {
            Hidden = true,
        };
        command.Options.Add(address);
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(address)!, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string addressText, CancellationToken cancellationToken)
    {
        if (!IPAddress.TryParse(addressText, out IPAddress? address) || address.AddressFamily != AddressFamily.InterNetwork)
        {
            Console.Error.WriteLine($"tunstack kernel-reference: --address must be an IPv4 address, got '{addressText}'");
            return 2;
        }

        // SIGINT and SIGTERM cancel cancellationToken (ShutdownSignals, registered in Program.cs).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        var console = TextWriter.Synchronized(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
        IService[] services = [new HttpService(), new EchoService(), new DiscardService()];
        await using var server = new KernelReferenceServer(address, services, console);
        try
        {
            server.Listen();
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"tunstack kernel-reference: cannot listen on {address}: {e.Message}");
            return 1;
        }

        console.WriteLine($"tunstack kernel-reference ready on {address}: " +
            string.Join(", ", services.Select(s => $"{s.Name} {s.Port}")));
        Task serving = server.RunAsync(stop.Token);
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await server.DisposeAsync().ConfigureAwait(false);
        await serving.ConfigureAwait(false);
        console.WriteLine("tunstack kernel-reference stopped");
        return 0;
    }
}
