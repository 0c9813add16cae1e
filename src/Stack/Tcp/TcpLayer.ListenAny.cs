using TunStack.Wire;

namespace TunStack.Tcp;

// Forwarding: a listener of last resort for SYNs to addresses that are not the stack's own (the way tun2socks and
// gVisor's forwarder take over every connection routed into a TUN device). Port listeners keep answering on the
// stack's own addresses; the any-listener sees only the other destinations, and only those its filter accepts.
internal sealed partial class TcpLayer
{
    private ListenEndpoint? _anyListener;
    private Func<FourTuple, bool>? _anyFilter;

    /// <summary>
    /// True once an any-listener was opened: from then on the IP layer passes TCP to non-local destinations here
    /// (connections that were forwarded keep working after the listener stops; new SYNs are then reset).
    /// </summary>
    public bool ForwardsNonLocal { get; private set; }

    /// <summary>
    /// Passive OPEN for every destination that is not one of the stack's addresses and that <paramref name="accept"/>
    /// (called with the connection's 4-tuple, local = the original destination) lets through; others are answered as
    /// CLOSED (RST). One at a time.
    /// </summary>
    public ListenEndpoint ListenAny(Func<FourTuple, bool> accept, int acceptBacklog, int halfOpenLimit)
    {
        if (_anyListener is not null)
            throw new InvalidOperationException("An any-address listener is open already.");
        _anyListener = new ListenEndpoint(0, acceptBacklog, halfOpenLimit);
        _anyFilter = accept;
        ForwardsNonLocal = true;
        return _anyListener;
    }

    /// <summary>
    /// Closes a listener (port or any-address): later SYNs are answered as CLOSED. Connections it already created
    /// are not touched; the owner of the accept queue deals with those.
    /// </summary>
    public void StopListening(ListenEndpoint listener)
    {
        if (ReferenceEquals(listener, _anyListener))
        {
            _anyListener = null;
            _anyFilter = null;
        }
        else if (_listeners.TryGetValue(listener.Port, out var open) && ReferenceEquals(open, listener))
        {
            _listeners.Remove(listener.Port);
        }
    }

    /// <summary>The listener for a segment without a TCB: by port on our addresses, else the any-listener's filter.</summary>
    private ListenEndpoint? FindListener(in FourTuple tuple)
    {
        if (_anyListener is null || _stack.IsLocalAddress(tuple.LocalAddress))
            return _listeners.GetValueOrDefault(tuple.LocalPort);
        try
        {
            return _anyFilter!(tuple) ? _anyListener : null;
        }
        catch (Exception e)
        {
            // The filter is the application's code: a failure refuses the connection, never the packet path.
            _stack.Counters.LastInternalError = e;
            return null;
        }
    }
}
