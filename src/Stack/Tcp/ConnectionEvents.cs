namespace TunStack.Tcp;

/// <summary>What happened to a connection that the application side should look at (the engine's "actions out").</summary>
[Flags]
internal enum ConnectionEvents
{
    None = 0,
    /// <summary>The handshake completed (a passive open can be accepted; an active open can be used).</summary>
    Established = 1,
    /// <summary>In-order data is waiting in the receive buffer.</summary>
    Readable = 2,
    /// <summary>The peer's FIN arrived: after the buffered data, the stream ends.</summary>
    ReadClosed = 4,
    /// <summary>Send-buffer space was freed by an acknowledgment.</summary>
    Writable = 8,
    /// <summary>The connection is gone (closed, reset or timed out); see <see cref="Tcb.CloseReason"/>.</summary>
    Closed = 16,
}

/// <summary>Why a connection ended.</summary>
internal enum CloseReason
{
    None,
    /// <summary>Both sides closed normally.</summary>
    Normal,
    /// <summary>The peer sent an acceptable RST (RFC 9293 §3.10.7.4).</summary>
    ResetByPeer,
    /// <summary>The application aborted it; we sent RST.</summary>
    Aborted,
    /// <summary>Retransmissions ran out (RFC 9293 §3.8.3, R2), or an active open found no answer in time.</summary>
    TimedOut,
    /// <summary>Our SYN was answered with RST: nothing listens there ("connection refused", RFC 9293 §3.10.7.3).</summary>
    Refused,
}
