namespace TunStack.Tcp;

/// <summary>
/// A passive OPEN on a local port (RFC 9293 §3.10.1): turns SYNs into new connections. Two queues are bounded
/// separately, as in Linux: the half-open queue (connections in SYN-RECEIVED; beyond it SYN cookies answer, RFC 4987)
/// and the accept queue (connections established and not yet accepted by the application: the <c>backlog</c>).
/// </summary>
internal sealed class ListenEndpoint
{
    internal ListenEndpoint(ushort port, int acceptBacklog, int halfOpenLimit)
    {
        Port = port;
        AcceptBacklog = acceptBacklog;
        HalfOpenLimit = halfOpenLimit;
    }

    public ushort Port { get; }

    /// <summary>Established connections that may wait for the application to accept them (listen(2)'s backlog).</summary>
    public int AcceptBacklog { get; }

    /// <summary>Connections that may be in SYN-RECEIVED at once.</summary>
    public int HalfOpenLimit { get; }

    /// <summary>Connections still in SYN-RECEIVED.</summary>
    public int HalfOpenCount { get; internal set; }

    /// <summary>Established connections the application has not accepted yet.</summary>
    public int AcceptQueueLength { get; internal set; }

    /// <summary>SYNs dropped: the accept queue was full, or the half-open queue and cookies were off.</summary>
    public long SynsDropped { get; internal set; }

    /// <summary>SYN-ACKs sent with a cookie instead of a TCB, and cookies that came back valid.</summary>
    public long SynCookiesSent { get; internal set; }
    public long SynCookiesAccepted { get; internal set; }

    /// <summary>When a cookie was last sent (microseconds); returning ACKs are checked for cookies only after that.</summary>
    internal long LastCookieTime = long.MinValue / 4;

    internal bool AcceptQueueFull => AcceptQueueLength >= AcceptBacklog;
}
