using System.Net;

namespace TunStack;

/// <summary>How a connection was opened (RFC 9293 §3.5).</summary>
public enum TcpOpenKind
{
    /// <summary>We received the SYN: a listener accepted the connection (passive OPEN).</summary>
    Passive,
    /// <summary>We sent the SYN: <see cref="TunStackHost.ConnectAsync"/> (active OPEN).</summary>
    Active,
}

/// <summary>
/// What the three-way handshake settled for one TCP connection: its endpoints, both initial sequence numbers, both
/// MSS values and the options in use. It does not change after the handshake.
/// </summary>
/// <param name="LocalEndPoint">Our end; for a forwarded connection the destination the peer wanted to reach.</param>
/// <param name="RemoteEndPoint">The peer's end.</param>
/// <param name="PeerInitialSequence">The peer's ISN (IRS, RFC 9293 §3.4).</param>
/// <param name="LocalInitialSequence">Our ISN (ISS), from the RFC 6528 keyed hash.</param>
/// <param name="PeerMss">The peer's MSS option, or the RFC 9293 §3.7.1 default when it sent none.</param>
/// <param name="LocalMss">The MSS we announced: the MTU less the IP and TCP headers.</param>
/// <param name="OpenKind">Whether we accepted (passive) or initiated (active) the connection.</param>
/// <param name="Sack">Selective acknowledgments (RFC 2018) were agreed.</param>
/// <param name="Timestamps">Timestamps (RFC 7323) were agreed.</param>
public sealed record TcpConnectionInfo(
    IPEndPoint LocalEndPoint,
    IPEndPoint RemoteEndPoint,
    uint PeerInitialSequence,
    uint LocalInitialSequence,
    ushort PeerMss,
    ushort LocalMss,
    TcpOpenKind OpenKind = TcpOpenKind.Passive,
    bool Sack = false,
    bool Timestamps = false)
{
    /// <summary>The segment size we send with: the smaller of the peer's MSS option and our own (RFC 9293 §3.7.1).</summary>
    public ushort EffectiveSendMss => Math.Min(PeerMss, LocalMss);
}
