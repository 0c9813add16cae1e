namespace TunStack.Tcp;

/// <summary>
/// The application's side of a connection's received bytes (the input pipe of a <c>TunStackConnection</c>), handed
/// in-order text while the segment that carried it is being processed. Bytes it takes skip the receive ring (one copy
/// fewer), and the ACK for the segment then advertises the window as it is after the application took them, rather
/// than a nearly closed one followed by a window update a moment later, which a lost packet turns into a stall of the
/// sender's persist timer. Called on the engine's thread only.
/// </summary>
internal interface IReceiveSink
{
    /// <summary>
    /// Takes all of <paramref name="text"/> (the next bytes of the stream), or none when the application is behind
    /// (they then wait in the receive ring and the window closes as they accumulate). Offered only while the receive
    /// ring is empty, so taking the text keeps the stream in order.
    /// </summary>
    bool TryTake(ReadOnlySpan<byte> text);

    /// <summary>Moves what the receive ring holds in order to the application, as far as it keeps up.</summary>
    void Drain();
}
