namespace TunStack.Tcp;

/// <summary>A passive OPEN on a local port (RFC 9293 §3.10.1): turns SYNs into new connections.</summary>
public sealed class ListenEndpoint
{
    internal ListenEndpoint(ushort port, int backlog)
    {
        Port = port;
        Backlog = backlog;
    }

    public ushort Port { get; }
    public int Backlog { get; }

    /// <summary>Connections still in SYN-RECEIVED.</summary>
    public int HalfOpenCount { get; internal set; }

    public long SynsDropped { get; internal set; }
}
