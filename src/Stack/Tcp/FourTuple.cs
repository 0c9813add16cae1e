using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>The identity of a TCP connection (RFC 9293 §3.3.2), seen from our side. Works for IPv4 and IPv6.</summary>
internal readonly struct FourTuple : IEquatable<FourTuple>
{
    public readonly IpAddress LocalAddress;
    public readonly IpAddress RemoteAddress;
    public readonly ushort LocalPort;
    public readonly ushort RemotePort;

    public FourTuple(IpAddress localAddress, ushort localPort, IpAddress remoteAddress, ushort remotePort)
    {
        LocalAddress = localAddress;
        LocalPort = localPort;
        RemoteAddress = remoteAddress;
        RemotePort = remotePort;
    }

    public bool Equals(FourTuple other) =>
        LocalPort == other.LocalPort && RemotePort == other.RemotePort &&
        LocalAddress == other.LocalAddress && RemoteAddress == other.RemoteAddress;

    public override bool Equals(object? obj) => obj is FourTuple t && Equals(t);
    public override int GetHashCode() => HashCode.Combine(LocalAddress, RemoteAddress, LocalPort | (RemotePort << 16));
    public static bool operator ==(FourTuple a, FourTuple b) => a.Equals(b);
    public static bool operator !=(FourTuple a, FourTuple b) => !a.Equals(b);

    public override string ToString() => RemoteAddress.IsV4
        ? $"{RemoteAddress}:{RemotePort} > {LocalAddress}:{LocalPort}"
        : $"[{RemoteAddress}]:{RemotePort} > [{LocalAddress}]:{LocalPort}";
}
