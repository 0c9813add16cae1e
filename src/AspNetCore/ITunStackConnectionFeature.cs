using TunStack.Tcp;

namespace TunStack.AspNetCore;

/// <summary>
/// The TCP connection under a Kestrel connection served by TunStack: its handshake (ISNs, MSS, options) and state.
/// Get it with <c>HttpContext.Features.Get&lt;ITunStackConnectionFeature&gt;()</c> or from the connection's features.
/// </summary>
public interface ITunStackConnectionFeature
{
    /// <summary>The stack's connection (endpoints, pipes, <see cref="TunStackConnection.NoDelay"/>, ...).</summary>
    TunStackConnection Connection { get; }

    /// <summary>What the three-way handshake settled: endpoints, both ISNs, both MSS values, SACK and timestamps.</summary>
    TcpConnectionInfo Info { get; }

    /// <summary>The TCP state as the stack last saw it (RFC 9293 §3.3.2).</summary>
    TcpState State { get; }
}
