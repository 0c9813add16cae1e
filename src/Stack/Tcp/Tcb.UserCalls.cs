using TunStack.Wire;

namespace TunStack.Tcp;

// The user interface of RFC 9293 §3.9.1 and its event processing in §3.10: SEND, RECEIVE, CLOSE, ABORT.
internal sealed partial class Tcb
{
    /// <summary>SEND (RFC 9293 §3.10.2): queues as much of <paramref name="data"/> as the send buffer takes.</summary>
    public int Send(ReadOnlySpan<byte> data)
    {
        if (!CanSend || data.IsEmpty)
            return 0;
        int n = _sendBuffer.Write(data);
        if (n > 0)
            RequestOutput();
        return n;
    }

    /// <summary>RECEIVE (RFC 9293 §3.10.3): copies out received in-order bytes; opening the window may trigger an update.</summary>
    public int Receive(Span<byte> destination)
    {
        int n = _receiveBuffer.Read(destination);
        if (n > 0)
            MaybeSendWindowUpdate();
        if (ReceiveRingIdle)
            _receiveBuffer.Release(); // empty: give the memory back; it is rented again when data arrives
        return n;
    }

    /// <summary>True while this connection holds pooled buffer memory (for tests of bounded memory).</summary>
    public bool HoldsBufferMemory => _sendBuffer.HoldsMemory || _receiveBuffer.HoldsMemory;

    /// <summary>The peer sent FIN and every byte before it has been read: the receive stream has ended.</summary>
    public bool ReceiveFinished => FinReceived && _receiveBuffer.Count == 0;

    /// <summary>
    /// CLOSE (RFC 9293 §3.10.4): "I have no more to send". The FIN follows the queued data.
    /// </summary>
    public void Close()
    {
        switch (State)
        {
            case TcpState.SynSent:
                // §3.10.4: "Delete the TCB and return 'error: closing' responses to any queued SENDs".
                _stack.Tcp.Remove(this, CloseReason.Aborted, "close()");
                break;
            case TcpState.SynReceived:
                // §3.10.4 lets the FIN wait for ESTABLISHED; it does here, always, so that the SYN-ACK keeps being
                // retransmitted until acknowledged (our FIN would otherwise sit before an unacknowledged SYN).
                _closeWhenEstablished = true;
                break;
            case TcpState.Established:
                _finQueued = true;
                SetState(TcpState.FinWait1, "close()");
                RequestOutput();
                break;
            case TcpState.CloseWait:
                _finQueued = true;
                SetState(TcpState.LastAck, "close()");
                RequestOutput();
                break;
        }
    }

    /// <summary>
    /// ABORT (RFC 9293 §3.10.5): send RST (in synchronized states) and delete the TCB at once. The RST carries the
    /// highest sequence number sent, so that the peer finds it in its window even after retransmissions.
    /// </summary>
    public void Abort()
    {
        if (State is TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.CloseWait)
            _stack.Tcp.SendReset(Tuple, SndNxt, default, TcpFlags.Rst);
        // In SYN-SENT there is nothing to reset: the TCB is simply deleted (§3.10.5).
        if (State != TcpState.Closed)
            _stack.Tcp.Remove(this, CloseReason.Aborted, "abort()");
    }

    internal void MarkClosed(CloseReason reason, string cause)
    {
        if (State == TcpState.SynReceived && Listener is not null)
            Listener.HalfOpenCount--;
        LeaveAcceptQueue();
        CloseReason = reason;
        SetState(TcpState.Closed, cause);
        _sendBuffer.Clear();      // nothing can be sent any more
        _sent.Clear();
        DropReassembly();
        _receiveBuffer.Release(); // unless the application still has bytes to read
        StopLossTimers();
        _persistDeadline = Never;
        _delayedAckDeadline = Never;
        TimerQueue.Cancel(this);
        Raise(ConnectionEvents.Closed);
    }
}
