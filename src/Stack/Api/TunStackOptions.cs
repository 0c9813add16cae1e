using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using TunStack.Tcp.Congestion;
using TunStack.Wire;

namespace TunStack;

/// <summary>
/// How <see cref="TunStackHost.StartAsync"/> sets up a stack: its addresses, segment sizes, buffers, timers and limits.
/// The defaults are those of <c>tunstack</c> and close to Linux's.
/// </summary>
public sealed class TunStackOptions
{
    /// <summary>
    /// The addresses the stack answers for, IPv4 and IPv6 in any mix (default 198.18.0.2 and 2001:2::2). The other end
    /// of the device (the kernel) uses another address on the same subnet. Connections to other addresses are only
    /// taken by a forwarding listener (<see cref="TunStackHost.ListenAnyAsync"/>).
    /// </summary>
    public IList<IPAddress> Addresses { get; init; } = [IPAddress.Parse("198.18.0.2"), IPAddress.Parse("2001:2::2")];

    /// <summary>The prefix length of the IPv4 subnet on the link (24); its broadcast address is no valid source.</summary>
    public int Ipv4PrefixLength { get; init; } = 24;

    /// <summary>
    /// The largest IP packet sent or accepted; null takes the device's MTU. The MSS is this less 40 (IPv4) or 60 (IPv6)
    /// bytes. IPv6 needs at least 1280 (RFC 8200 §5).
    /// </summary>
    public int? Mtu { get; init; }

    /// <summary>Each connection's receive buffer, which bounds the window it advertises (256 KiB).</summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;

    /// <summary>Each connection's send buffer (256 KiB).</summary>
    public int SendBufferSize { get; init; } = 256 * 1024;

    /// <summary>Turn Nagle's algorithm off on new connections (each connection can change it: <see cref="TunStackConnection.NoDelay"/>).</summary>
    public bool NoDelay { get; init; }

    /// <summary>Keep-alives on new connections (each connection can change it: <see cref="TunStackConnection.KeepAlive"/>).</summary>
    public bool KeepAlive { get; init; }

    /// <summary>Idle time before the first keep-alive probe (two hours, RFC 9293 §3.8.4 MUST-28).</summary>
    public TimeSpan KeepAliveIdle { get; init; } = TimeSpan.FromHours(2);

    /// <summary>Time between unanswered keep-alive probes (75 s, as Linux).</summary>
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(75);

    /// <summary>Unanswered keep-alive probes before the connection fails with <see cref="SocketError.TimedOut"/> (9).</summary>
    public int KeepAliveProbes { get; init; } = 9;

    /// <summary>
    /// How long <see cref="TunStackHost.ConnectAsync"/> waits for the handshake before it fails with
    /// <see cref="SocketError.TimedOut"/>. Null (the default) leaves it to SYN retransmissions, just over three minutes.
    /// </summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>Maximum segment lifetime; TIME-WAIT lasts twice this (30 s).</summary>
    public TimeSpan MaximumSegmentLifetime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a connection the application closed waits in FIN-WAIT-2 for the peer's FIN (60 s).</summary>
    public TimeSpan FinWait2Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Established connections that may wait in a listener's accept queue (4096), unless the listener says otherwise.</summary>
    public int Backlog { get; init; } = 4096;

    /// <summary>Connections the stack holds at most (65536); beyond it new SYNs are dropped.</summary>
    public int MaxConnections { get; init; } = 65536;

    /// <summary>Memory all connections' buffers may hold together (256 MiB); beyond it new SYNs are dropped.</summary>
    public long BufferMemoryLimit { get; init; } = 256L * 1024 * 1024;

    /// <summary>The congestion control of new connections (CUBIC).</summary>
    public CongestionControlAlgorithm CongestionControl { get; init; } = CongestionControlAlgorithm.Cubic;

    /// <summary>Offer and use selective acknowledgments (RFC 2018).</summary>
    public bool Sack { get; init; } = true;

    /// <summary>Offer and use timestamps (RFC 7323).</summary>
    public bool Timestamps { get; init; } = true;

    /// <summary>
    /// Where to write one line per TCP segment in and out (the <c>--trace</c> format: relative sequence numbers, window,
    /// options, state changes), or null for none. Written on the loop thread: give a synchronized writer.
    /// </summary>
    public TextWriter? SegmentTrace { get; init; }

    /// <summary>
    /// Where to narrate each connection's handshake and close in plain language, with the RFC 9293 sections (the
    /// <c>--explain</c> format), or null for none. Written on the loop thread: give a synchronized writer.
    /// </summary>
    public TextWriter? Explain { get; init; }

    /// <summary>
    /// Publish the meter <c>TunStack</c> (System.Diagnostics.Metrics: packets, segments, bytes, connections, RTT), for
    /// <c>dotnet-counters monitor --counters TunStack</c> or OpenTelemetry.
    /// </summary>
    public bool Metrics { get; init; }

    /// <summary>Where the host logs (category <c>TunStack</c>); null logs nothing.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock of the event loop (for tests); null is <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Leave the device open when the host is disposed (by default the host disposes it).</summary>
    public bool LeaveDeviceOpen { get; init; }

    /// <summary>The secret of the ISN and SYN-cookie functions (16 bytes, for repeatable tests); null draws a random one.</summary>
    public byte[]? IsnSecret { get; init; }

    /// <summary>Why these options cannot work with a device of <paramref name="deviceMtu"/>, or null when they can.</summary>
    internal string? Problem(int deviceMtu)
    {
        int mtu = Mtu ?? deviceMtu;
        if (Addresses.Count == 0) return "The stack needs at least one address.";
        foreach (var address in Addresses)
        {
            if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                return $"{address} is neither IPv4 nor IPv6.";
            if (address.IsIPv4MappedToIPv6)
                return $"{address}: give an IPv4 address in its own form, not IPv4-mapped.";
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && mtu < 1280)
                return $"{address}: IPv6 needs an MTU of 1280 or more (RFC 8200 §5), got {mtu}.";
        }
        if (mtu is < 576 or > 65535) return $"The MTU must be between 576 and 65535, got {mtu}.";
        if (ReceiveBufferSize < 1024 || SendBufferSize < 1024) return "The buffers must hold at least 1024 bytes.";
        if (KeepAliveProbes < 1) return "KeepAliveProbes must be at least 1.";
        if (Backlog < 1) return "Backlog must be at least 1.";
        if (IsnSecret is { Length: not 16 }) return "IsnSecret must be 16 bytes.";
        return null;
    }

    /// <summary>The engine's options.</summary>
    internal NetStackOptions ToStackOptions(int deviceMtu, byte[]? generatedSecret = null) => new()
    {
        Addresses = Addresses.Select(IpAddress.FromIPAddress).ToArray(),
        Ipv4PrefixLength = Ipv4PrefixLength,
        Mtu = Mtu ?? deviceMtu,
        ReceiveBufferSize = ReceiveBufferSize,
        SendBufferSize = SendBufferSize,
        NoDelay = NoDelay,
        KeepAlive = KeepAlive,
        KeepAliveIdleMicros = Micros(KeepAliveIdle),
        KeepAliveIntervalMicros = Micros(KeepAliveInterval),
        KeepAliveProbes = KeepAliveProbes,
        ConnectTimeoutMicros = ConnectTimeout is { } timeout ? Micros(timeout) : long.MaxValue,
        MslMicros = Micros(MaximumSegmentLifetime),
        FinWait2TimeoutMicros = Micros(FinWait2Timeout),
        Backlog = Backlog,
        MaxConnections = MaxConnections,
        BufferMemoryLimit = BufferMemoryLimit,
        CongestionControl = CongestionControl,
        Sack = Sack,
        Timestamps = Timestamps,
        IsnSecret = IsnSecret ?? generatedSecret,
    };

    private static long Micros(TimeSpan span) => span == Timeout.InfiniteTimeSpan ? long.MaxValue : (long)span.TotalMicroseconds;
}
