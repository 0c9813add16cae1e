namespace TunStack.Tcp;

/// <summary>The connection states of RFC 9293 §3.3.2 (Figure 5).</summary>
public enum TcpState
{
    /// <summary>No connection (or a deleted one).</summary>
    Closed,
    /// <summary>Waiting for a connection request.</summary>
    Listen,
    /// <summary>We sent a SYN and wait for the matching one.</summary>
    SynSent,
    /// <summary>We received a SYN, answered it, and wait for the acknowledgment.</summary>
    SynReceived,
    /// <summary>Open: data flows both ways.</summary>
    Established,
    /// <summary>We closed; waiting for the peer's FIN or the ACK of ours.</summary>
    FinWait1,
    /// <summary>Our FIN is acknowledged; waiting for the peer's FIN.</summary>
    FinWait2,
    /// <summary>The peer closed; waiting for the application to close.</summary>
    CloseWait,
    /// <summary>Both sides closed at once; waiting for the ACK of our FIN.</summary>
    Closing,
    /// <summary>The peer closed first and we closed too; waiting for the ACK of our FIN.</summary>
    LastAck,
    /// <summary>Both FINs acknowledged; waiting 2·MSL so that old segments die out.</summary>
    TimeWait,
}

/// <summary>Names of <see cref="TcpState"/> values.</summary>
public static class TcpStateExtensions
{
    /// <summary>The RFC's spelling, e.g. "SYN-RECEIVED".</summary>
    public static string ToRfcName(this TcpState state) => state switch
    {
        TcpState.Closed => "CLOSED",
        TcpState.Listen => "LISTEN",
        TcpState.SynSent => "SYN-SENT",
        TcpState.SynReceived => "SYN-RECEIVED",
        TcpState.Established => "ESTABLISHED",
        TcpState.FinWait1 => "FIN-WAIT-1",
        TcpState.FinWait2 => "FIN-WAIT-2",
        TcpState.CloseWait => "CLOSE-WAIT",
        TcpState.Closing => "CLOSING",
        TcpState.LastAck => "LAST-ACK",
        TcpState.TimeWait => "TIME-WAIT",
        _ => state.ToString(),
    };
}
