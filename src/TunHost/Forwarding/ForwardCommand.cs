using System.CommandLine;
using System.Runtime.InteropServices;

namespace TunStack.Host.Forwarding;

/// <summary>The <c>tunstack forward</c> subcommand: the stack's services plus tun2socks-style forwarding.</summary>
public static class ForwardCommand
{
    public static Command Create()
    {
        var tun = new Option<string>("--tun")
        {
            HelpName = "name",
            Description = "TUN interface to create, or to attach to if it exists",
            DefaultValueFactory = _ => "tun0",
        };
        var address = new Option<string[]>("--address")
        {
            HelpName = "ip",
            Description = "The stack's own address (it keeps serving HTTP, echo and discard there); repeat it for several",
            DefaultValueFactory = _ => ["198.18.0.2"],
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var mtu = new Option<int>("--mtu") { HelpName = "bytes", Description = "Largest IP packet in bytes", DefaultValueFactory = _ => 1500 };
        var trace = new Option<bool>("--trace") { Description = "Print one line per TCP segment in and out" };
        var map = new Option<string[]>("--map")
        {
            HelpName = "cidr=addr",
            Description = "Relay connections to addresses in CIDR to ADDR instead, keeping the port, e.g. 198.19.0.0/16=127.0.0.1; repeatable, first match wins",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var socks5 = new Option<string?>("--socks5")
        {
            HelpName = "host:port",
            Description = "Make the upstream connections through this SOCKS5 proxy (RFC 1928, no authentication), e.g. 127.0.0.1:1080",
        };
        var mark = new Option<string?>("--mark")
        {
            HelpName = "n",
            Description = "Set SO_MARK on upstream sockets (decimal or 0x hex) so that policy routing keeps them out of the TUN device",
        };
        var connectTimeout = new Option<double>("--connect-timeout")
        {
            HelpName = "seconds",
            Description = "Give up connecting upstream (and reset the client) after this long",
            DefaultValueFactory = _ => 10,
        };
        var idleTimeout = new Option<double>("--idle-timeout")
        {
            HelpName = "seconds",
            Description = "Reset a relay with no byte either way for this long",
            DefaultValueFactory = _ => 300,
        };

        var command = new Command("forward",
            """
            Forward TCP like tun2socks: every TCP connection routed into the TUN device for an address that is not the
            stack's own is accepted by the stack and relayed, byte for byte and with half-close, to a kernel socket:
            remapped (--map), through a SOCKS5 proxy (--socks5), or directly. The client's handshake completes first; if
            the upstream refuses or cannot be reached, the client's connection is reset. The stack's own addresses keep
            serving HTTP (80), echo (7) and discard (9).

            Direct connections to the original destination would be routed back into the TUN device: mark them (--mark)
            and route marked packets by the main table, e.g.
              ip route add default dev tun0 table 100
              ip rule add not fwmark 0x1 table 100
              tunstack forward --mark 0x1

            Example (namespace with tun0 = 198.18.0.1/24, a server on 127.0.0.1:8000):
              ip route add 198.19.0.0/16 dev tun0
              tunstack forward --tun tun0 --address 198.18.0.2 --map 198.19.0.0/16=127.0.0.1
              curl http://198.19.0.5:8000/
            """)
        {
            tun, address, mtu, trace, map, socks5, mark, connectTimeout, idleTimeout,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var maps = new List<AddressMap>();
            foreach (string text in parse.GetValue(map) ?? [])
            {
                if (!AddressMap.TryParse(text, out var parsed, out string? problem))
                    return Usage(problem);
                maps.Add(parsed);
            }
            System.Net.IPEndPoint? proxy = null;
            if (parse.GetValue(socks5) is { } proxyText && !ForwardOptions.TryParseEndPoint(proxyText, out proxy))
                return Usage($"--socks5 {proxyText}: expected ADDRESS:PORT, e.g. 127.0.0.1:1080");
            int? markValue = null;
            if (parse.GetValue(mark) is { } markText)
            {
                bool hex = markText.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
                if (!uint.TryParse(hex ? markText[2..] : markText, hex ? System.Globalization.NumberStyles.HexNumber : System.Globalization.NumberStyles.None,
                        null, out uint value))
                    return Usage($"--mark {markText}: expected a number (decimal or 0x hex)");
                markValue = unchecked((int)value);
            }
            double connectSeconds = parse.GetValue(connectTimeout), idleSeconds = parse.GetValue(idleTimeout);
            if (connectSeconds <= 0 || idleSeconds <= 0)
                return Usage("--connect-timeout and --idle-timeout must be positive");

            var forward = new ForwardOptions
            {
                Maps = maps,
                Socks5 = proxy,
                Mark = markValue,
                ConnectTimeout = TimeSpan.FromSeconds(connectSeconds),
                IdleTimeout = TimeSpan.FromSeconds(idleSeconds),
            };
            var options = new HostOptions(parse.GetValue(tun)!, parse.GetValue(address)!.Distinct().ToArray(), parse.GetValue(mtu),
                parse.GetValue(trace), MslMilliseconds: 30_000, Forward: forward);
            if (HostOptionsCheck.Problem(options) is { } invalid)
                return Usage(invalid);

            // SIGINT and SIGTERM cancel cancellationToken (ShutdownSignals, registered in Program.cs).
            var console = TextWriter.Synchronized(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
            try
            {
                return await new StackHost(options, console).RunAsync(cancellationToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"tunstack forward: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static int Usage(string message)
    {
        Console.Error.WriteLine($"tunstack forward: {message}");
        return 2;
    }
}
