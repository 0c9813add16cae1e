using TunStack.Runtime;

namespace TunStack.Host;

/// <summary>What the command line chose.</summary>
/// <param name="Addresses">The stack's addresses, IPv4 and IPv6, as typed.</param>
/// <param name="PcapFile">Where to write the packet capture, or null for none.</param>
/// <param name="PcapLimitMegabytes">Size limit of the capture file in MB (10^6 bytes).</param>
/// <param name="Impairment">Fault injection between the TUN device and the engine (<c>--impair</c>), or null.</param>
/// <param name="Forward">With <c>tunstack forward</c>: where connections to other addresses are relayed, or null.</param>
/// <param name="Offload">Checksum and TCP segmentation offload with the TUN device (<c>--offload on|off</c>).</param>
/// <param name="Explain">Narrate each connection's handshake and close in plain language (<c>--explain</c>).</param>
/// <param name="Queues">TUN queues (<c>--queues</c>), one engine shard and thread each; 1 for a single-queue device.</param>
public sealed record HostOptions(
    string TunName,
    IReadOnlyList<string> Addresses,
    int Mtu,
    bool Trace,
    int MslMilliseconds,
    int FinTimeoutMilliseconds = 60_000,
    string? PcapFile = null,
    int PcapLimitMegabytes = 100,
    TunStack.Runtime.ImpairmentOptions? Impairment = null,
    bool Offload = true,
    bool Explain = false,
    Forwarding.ForwardOptions? Forward = null,
    int Queues = 1);

/// <summary>Checks what the command line chose before anything is opened.</summary>
public static class HostOptionsCheck
{
    /// <summary>Why <paramref name="options"/> cannot work, or null when they can.</summary>
    public static string? Problem(HostOptions options)
    {
        if (TunNameProblem(options.TunName) is { } tunProblem)
            return tunProblem;
        if (options.Mtu is < 576 or > 65535)
            return "--mtu must be between 576 and 65535";
        if (options.Addresses.Count == 0)
            return "at least one --address is needed";
        foreach (string text in options.Addresses)
        {
            if (!System.Net.IPAddress.TryParse(text, out var ip)
                || ip.AddressFamily is not (System.Net.Sockets.AddressFamily.InterNetwork or System.Net.Sockets.AddressFamily.InterNetworkV6))
                return $"--address must be an IPv4 or IPv6 address, got '{text}'";
            if (ip.IsIPv4MappedToIPv6)
                return $"--address {text}: give an IPv4 address in its own form, not IPv4-mapped";
            if (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && options.Mtu < 1280)
                return $"--address {text}: IPv6 needs --mtu 1280 or more (RFC 8200 §5), got {options.Mtu}; give only IPv4 addresses for a smaller MTU";
        }
        if (options.PcapFile is not null && options.PcapLimitMegabytes < 1)
            return "--pcap-limit must be at least 1 (MB)";
        if (options.Queues is < 1 or > 16)
            return $"--queues must be between 1 and 16, got {options.Queues}";
        if (options.Queues > 1 && options.Impairment is not null)
            return "--impair works with one queue; leave out --queues";
        return null;
    }

    /// <summary>Why the kernel would refuse <paramref name="name"/> as an interface name, or null when it would not.</summary>
    public static string? TunNameProblem(string name)
    {
        try
        {
            TunStack.Linux.TunDevice.ValidateInterfaceName(name);
            return null;
        }
        catch (ArgumentException e)
        {
            // The message without ArgumentException's " (Parameter 'name')".
            return "--tun: " + (e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal));
        }
    }
}
