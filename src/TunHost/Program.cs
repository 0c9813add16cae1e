using System.CommandLine;
using TunStack.Host;

// First of all: from here on SIGINT and SIGTERM stop whichever command runs, cleanly (see ShutdownSignals).
using var signals = new ShutdownSignals();

var tun = new Option<string>("--tun")
{
    HelpName = "name",
    Description = "TUN interface to create, or to attach to if it exists (ip tuntap add dev NAME mode tun)",
    DefaultValueFactory = _ => "tun0",
};
var address = new Option<string[]>("--address")
{
    HelpName = "ip",
    Description = "Address the stack answers for, IPv4 or IPv6; repeat it for several " +
        "(the kernel side uses another address on the same subnet) [default: 198.18.0.2 and 2001:2::2]",
    DefaultValueFactory = _ => ["198.18.0.2", "2001:2::2"],
    Arity = ArgumentArity.OneOrMore,
    AllowMultipleArgumentsPerToken = false,
};
var mtu = new Option<int>("--mtu")
{
    HelpName = "bytes",
    Description = "Largest IP packet in bytes; the stack's MSS is this minus 40 (IPv4) or 60 (IPv6). IPv6 needs 1280 or more",
    DefaultValueFactory = _ => 1500,
};
var trace = new Option<bool>("--trace")
{
    Description = "Print one line per TCP segment in and out, with relative seq/ack, window, options and state changes",
};
var explain = new Option<bool>("--explain")
{
    Description = "Narrate each connection's three-way handshake and close in plain language, with the states and the " +
        "RFC 9293 sections (interleaved with --trace when both are on)",
};
var msl = new Option<int>("--msl")
{
    HelpName = "ms",
    Description = "Maximum segment lifetime in milliseconds; TIME-WAIT lasts twice this",
    DefaultValueFactory = _ => 30_000,
};
var pcap = new Option<string?>("--pcap")
{
    HelpName = "file",
    Description = "Write every packet in and out to FILE in pcap format (raw IP); read it with tcpdump -r FILE or Wireshark",
};
var pcapLimit = new Option<int>("--pcap-limit")
{
    HelpName = "MB",
    Description = "Stop capturing when the --pcap file would grow past this many megabytes (10^6 bytes)",
    DefaultValueFactory = _ => 100,
};

var finTimeout = new Option<int>("--fin-timeout")
{
    HelpName = "ms",
    Description = "How long a connection we closed waits in FIN-WAIT-2 for the peer's FIN before it is dropped",
    DefaultValueFactory = _ => 60_000,
};

var idleTimeout = new Option<int>("--idle-timeout")
{
    HelpName = "ms",
    Description = "How long the services (HTTP, echo, discard) let a connection wait for its peer: for the next request, " +
        "for more of one, or for the peer to take our data; then they close it (reset when the peer stopped reading). 0: never",
    DefaultValueFactory = _ => 120_000,
};

var impair = new Option<string?>("--impair")
{
    HelpName = "spec",
    Description = "Impair packets between the device and the stack, both ways, e.g. " +
        "loss=1%,reorder=2%,dup=0.5%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=42 (any subset; the same seed repeats a run)",
};

var offload = new Option<string>("--offload")
{
    HelpName = "on|off",
    Description = "Checksum and TCP segmentation offload with the TUN device (virtio-net header): 64 KiB super-packets " +
        "both ways instead of one packet per segment",
    DefaultValueFactory = _ => "on",
};
offload.AcceptOnlyFromAmong("on", "off");

var queues = new Option<int>("--queues")
{
    HelpName = "N",
    Description = "TUN queues (IFF_MULTI_QUEUE), each with its own engine shard and thread; the kernel spreads flows " +
        "over them. A device made single-queue beforehand keeps one",
    DefaultValueFactory = _ => 1,
};

var root = new RootCommand(
    """
    tunstack: a user-space TCP/IP stack in C#, serving HTTP (port 80), echo (7) and discard (9) over a Linux TUN device.
    The kernel is the peer: its packets to --address reach this program, which answers them itself.

    Examples:
      sudo ./run-linux.sh                     builds, makes namespace 'tunstack' with tun0, runs tunstack in it
      sudo ip netns exec tunstack curl http://198.18.0.2/
      sudo ip netns exec tunstack curl -6 'http://[2001:2::2]/'
      sudo tunstack --tun tun0 --address 198.18.0.2 --trace
                                              attach to an existing tun0 (ip tuntap add dev tun0 mode tun;
                                              ip addr add 198.18.0.1/24 dev tun0; ip link set tun0 up)
      sudo ./run-linux.sh --trace --explain   every segment, and what each step of the handshake and close means
      sudo ./run-linux.sh --pcap /tmp/tunstack.pcap
                                              then: tcpdump -r /tmp/tunstack.pcap -nn -vv
      sudo ./run-linux.sh --impair loss=1%,reorder=1%,seed=7
                                              lose and reorder 1% of the packets each way, repeatably
    """)
{
    tun, address, mtu, trace, explain, msl, finTimeout, idleTimeout, pcap, pcapLimit, impair, offload, queues,
};
// Hidden: the same services over kernel sockets, the reference that ./run-linux.sh bench e2e measures against.
root.Subcommands.Add(TunStack.Host.KernelReference.KernelReferenceCommand.Create());

root.Subcommands.Add(FetchCommand.Create());
root.Subcommands.Add(TunStack.Host.Forwarding.ForwardCommand.Create());

root.SetAction(async (parse, cancellationToken) =>
{
    TunStack.Runtime.ImpairmentOptions? impairment = null;
    if (parse.GetValue(impair) is { } spec && !TunStack.Runtime.ImpairmentOptions.TryParse(spec, out impairment, out string? impairError))
    {
        Console.Error.WriteLine($"tunstack: --impair: {impairError}");
        return 2;
    }
    var options = new HostOptions(
        parse.GetValue(tun)!, parse.GetValue(address)!.Distinct().ToArray(), parse.GetValue(mtu), parse.GetValue(trace),
        parse.GetValue(msl), parse.GetValue(finTimeout), parse.GetValue(pcap), parse.GetValue(pcapLimit), impairment,
        parse.GetValue(offload) == "on",
        parse.GetValue(explain),
        Queues: parse.GetValue(queues), IdleTimeoutMilliseconds: parse.GetValue(idleTimeout));
    if (HostOptionsCheck.Problem(options) is { } problem)
    {
        Console.Error.WriteLine($"tunstack: {problem}");
        return 2;
    }

    // SIGINT and SIGTERM cancel cancellationToken (ShutdownSignals, see InvokeAsync below): the host resets its
    // connections, closes the device and returns 0.
    var console = TextWriter.Synchronized(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
    try
    {
        return await new StackHost(options, console).RunAsync(cancellationToken);
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"tunstack: {e.Message}");
        return 1;
    }
});

var parsed = root.Parse(args);
// The action's token is the signals' token. System.CommandLine's own signal handling stays off: it would be installed
// only once the action has begun, leaving a gap in which a signal skips the clean stop.
int status = await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, signals.Token);
// A command line that does not parse is a usage error, status 2 like a bad option value (System.CommandLine says 1).
return parsed.Errors.Count > 0 ? 2 : status;
