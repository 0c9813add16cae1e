using System.Net;

namespace TunStack.Api;

/// <summary>
/// What an application may know about one TCP connection: its endpoints and how the handshake went.
/// </summary>
public sealed record ConnectionInfo(
    IPEndPoint LocalEndPoint,
    IPEndPoint RemoteEndPoint,
    uint PeerInitialSequence,
    uint LocalInitialSequence,
    ushort PeerMss,
    ushort LocalMss)
{
    /// <summary>The segment size we send with: the smaller of the peer's MSS option and our own (RFC 9293 §3.7.1).</summary>
    public ushort EffectiveSendMss => Math.Min(PeerMss, LocalMss);
}
