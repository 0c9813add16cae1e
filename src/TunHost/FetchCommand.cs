using System.CommandLine;
using TunStack.Host.Client;

namespace TunStack.Host;

/// <summary>The <c>tunstack fetch</c> subcommand: an HTTP GET through the stack's own active open.</summary>
public static class FetchCommand
{
    public static Command Create()
    {
        var tun = new Option<string>("--tun")
        {
            HelpName = "name",
            Description = "TUN interface to create, or to attach to if it exists",
            DefaultValueFactory = _ => "tun0",
        };
        var address = new Option<string>("--address")
        {
            HelpName = "ipv4",
            Description = "The stack's own IPv4 address (the source of the connection)",
            DefaultValueFactory = _ => "198.18.0.2",
        };
        var mtu = new Option<int>("--mtu")
        {
            HelpName = "bytes",
            Description = "Largest IP packet in bytes; the stack's MSS is this minus 40",
            DefaultValueFactory = _ => 1500,
        };
        var trace = new Option<bool>("--trace")
        {
            Description = "Print one line per TCP segment to standard error: the SYN-SENT side of the handshake and the close",
        };
        var explain = new Option<bool>("--explain")
        {
            Description = "Narrate the handshake (SYN-SENT side) and the close in plain language, on standard error with --trace",
        };
        var output = new Option<string?>("--output", "-o")
        {
            HelpName = "file",
            Description = "Write the body to FILE instead of standard output",
        };
        var timeout = new Option<double>("--timeout")
        {
            HelpName = "seconds",
            Description = "Give up when the whole fetch takes longer (connecting included)",
            DefaultValueFactory = _ => 60,
        };
        var offload = new Option<string>("--offload")
        {
            HelpName = "on|off",
            Description = "Checksum and TCP segmentation offload with the TUN device",
            DefaultValueFactory = _ => "on",
        };
        offload.AcceptOnlyFromAmong("on", "off");
        var url = new Argument<string>("url") { Description = "http://IPv4[:port][/path], e.g. http://198.18.0.1:8000/" };

        var command = new Command("fetch",
            """
            GET a URL through the stack: tunstack opens the TCP connection itself (SYN-SENT) to a server on the kernel side.
            The body goes to standard output (or --output); messages, --trace and --explain to standard error.
            Exit status: 0 success (2xx), 1 failure (device, reset), 2 usage, 3 connection refused, 4 timed out,
            5 HTTP status not 2xx, 6 malformed response.

            Example (kernel side 198.18.0.1 in namespace 'tunstack', tun0 made beforehand):
              sudo ip netns exec tunstack python3 -m http.server -b 198.18.0.1 8000 &
              sudo ip netns exec tunstack tunstack fetch --trace --explain http://198.18.0.1:8000/
            """)
        {
            tun, address, mtu, trace, explain, output, timeout, offload, url,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (HostOptionsCheck.TunNameProblem(parse.GetValue(tun)!) is { } tunProblem)
            {
                Console.Error.WriteLine($"tunstack fetch: {tunProblem}");
                return FetchClient.ExitCodes.Usage;
            }
            int mtuValue = parse.GetValue(mtu);
            if (mtuValue is < 576 or > 65535)
            {
                Console.Error.WriteLine("tunstack fetch: --mtu must be between 576 and 65535");
                return FetchClient.ExitCodes.Usage;
            }
            double seconds = parse.GetValue(timeout);
            if (seconds <= 0)
            {
                Console.Error.WriteLine("tunstack fetch: --timeout must be positive");
                return FetchClient.ExitCodes.Usage;
            }
            var options = new FetchOptions(parse.GetValue(tun)!, parse.GetValue(address)!, mtuValue, parse.GetValue(trace),
                parse.GetValue(url)!, parse.GetValue(output), TimeSpan.FromSeconds(seconds), parse.GetValue(offload) == "on",
                parse.GetValue(explain));
            var error = TextWriter.Synchronized(new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
            return await FetchClient.RunAsync(options, error, cancellationToken);
        });
        return command;
    }
}
