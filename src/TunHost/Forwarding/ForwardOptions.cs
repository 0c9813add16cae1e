using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace TunStack.Host.Forwarding;

/// <summary>One <c>--map CIDR=ADDR</c>: destinations in <see cref="Network"/> are relayed to <see cref="Target"/>, same port.</summary>
public sealed record AddressMap(IPNetwork Network, IPAddress Target)
{
    /// <summary>Parses <c>198.19.0.0/16=127.0.0.1</c> (IPv4 or IPv6 on either side).</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out AddressMap? map, [NotNullWhen(false)] out string? problem)
    {
        map = null;
        int equals = text.IndexOf('=');
        if (equals < 0)
        {
            problem = $"--map {text}: expected CIDR=ADDRESS, e.g. 198.19.0.0/16=127.0.0.1";
            return false;
        }
        if (!IPNetwork.TryParse(text[..equals], out var network))
        {
            problem = $"--map {text}: '{text[..equals]}' is not a network in CIDR notation (e.g. 198.19.0.0/16)";
            return false;
        }
        if (!IPAddress.TryParse(text[(equals + 1)..], out var target))
        {
            problem = $"--map {text}: '{text[(equals + 1)..]}' is not an IP address";
            return false;
        }
        map = new AddressMap(network, target);
        problem = null;
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Network}={Target}";
}

/// <summary>
/// What <c>tunstack forward</c> does with a connection to an address that is not the stack's own: remap it
/// (<see cref="Maps"/>, first match wins, port kept), send it through a SOCKS5 proxy (<see cref="Socks5"/>), or connect
/// directly; within <see cref="ConnectTimeout"/>, and cut after <see cref="IdleTimeout"/> without a byte either way.
/// </summary>
public sealed record ForwardOptions
{
    /// <summary>Address rewrites, tried in order.</summary>
    public IReadOnlyList<AddressMap> Maps { get; init; } = [];

    /// <summary>A SOCKS5 proxy (RFC 1928, no authentication) that makes the upstream connections, or null.</summary>
    public IPEndPoint? Socks5 { get; init; }

    /// <summary>SO_MARK for the upstream sockets (policy routing keeps them out of the TUN device), or null.</summary>
    public int? Mark { get; init; }

    /// <summary>How long connecting upstream (the proxy's handshake included) may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A relay with no byte in either direction for this long is reset on both sides.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Where a connection that wanted <paramref name="destination"/> goes: the mapped address (same port) or the destination itself.</summary>
    public IPEndPoint Upstream(IPEndPoint destination)
    {
        foreach (var map in Maps)
            if (map.Network.Contains(destination.Address))
                return new IPEndPoint(map.Target, destination.Port);
        return destination;
    }

    /// <summary>Parses HOST:PORT (IPv4, or [IPv6]:PORT) for <c>--socks5</c>.</summary>
    public static bool TryParseEndPoint(string text, [NotNullWhen(true)] out IPEndPoint? endpoint) =>
        IPEndPoint.TryParse(text, out endpoint) && endpoint.Port != 0;

    /// <inheritdoc />
    public override string ToString()
    {
        var parts = new List<string>();
        parts.AddRange(Maps.Select(m => $"map {m}"));
        parts.Add(Socks5 is null ? "direct" : $"via SOCKS5 {Socks5}");
        if (Mark is { } mark) parts.Add($"mark 0x{mark:x}");
        return string.Join(", ", parts);
    }

    /// <summary>SOL_SOCKET and SO_MARK on Linux.</summary>
    internal const int SolSocket = 1, SoMark = 36;

    /// <summary>Applies <see cref="Mark"/> to an upstream socket.</summary>
    internal void Apply(Socket socket)
    {
        if (Mark is { } mark)
            socket.SetRawSocketOption(SolSocket, SoMark, BitConverter.GetBytes(mark));
    }
}
