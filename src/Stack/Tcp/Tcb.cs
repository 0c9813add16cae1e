using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// The transmission control block (RFC 9293 §3.3.1): everything known about one connection. Its behaviour is
/// split by topic: <c>Tcb.SegmentArrives.cs</c> (RFC 9293 §3.10.7), <c>Tcb.Output.cs</c> (sending),
/// <c>Tcb.Timers.cs</c> (retransmission, TIME-WAIT) and <c>Tcb.UserCalls.cs</c> (SEND/RECEIVE/CLOSE/ABORT).
/// </summary>
public sealed partial class Tcb
{
    private readonly NetStack _stack;
    private readonly ByteRing _sendBuffer;
    private readonly ByteRing _receiveBuffer;

    internal Tcb(NetStack stack, in FourTuple tuple, ListenEndpoint? listener)
    {
        _stack = stack;
        Tuple = tuple;
        Listener = listener;
        var o = stack.Options;
        _sendBuffer = new ByteRing(o.SendBufferSize);
        _receiveBuffer = new ByteRing(o.ReceiveBufferSize);
        _rto = new RtoEstimator(o.InitialRtoMicros, o.MinRtoMicros, o.MaxRtoMicros);
        // RFC 9293 §3.7.1: the MTU less the fixed IP and TCP headers, 40 bytes over IPv4 and 60 over IPv6 (RFC 8200 §3).
        LocalMss = (ushort)(o.Mtu - IpHeader.LengthFor(tuple.LocalAddress) - TcpSegment.MinHeaderLength);
    }

    public FourTuple Tuple { get; }
    public TcpState State { get; private set; } = TcpState.Closed;
    public ListenEndpoint? Listener { get; }
    public CloseReason CloseReason { get; private set; }

    // Send sequence variables (RFC 9293 §3.3.1, Figure 3).
    public SeqNumber Iss { get; private set; }
    public SeqNumber SndUna { get; private set; }
    public SeqNumber SndNxt { get; private set; }
    /// <summary>The highest sequence number sent so far; SND.NXT falls back below it after a timeout (go-back-N).</summary>
    public SeqNumber SndMax { get; private set; }
    public uint SndWnd { get; private set; }
    private SeqNumber _sndWl1;
    private SeqNumber _sndWl2;
    private uint _maxSndWnd;

    // Receive sequence variables (RFC 9293 §3.3.1, Figure 4).
    public SeqNumber Irs { get; private set; }
    public SeqNumber RcvNxt { get; private set; }
    /// <summary>RCV.NXT + RCV.WND as last advertised; never moved left (RFC 9293 §3.8.6.2.2).</summary>
    private SeqNumber _rcvAdvertisedEdge;

    // Negotiated at the handshake.
    public ushort PeerMss { get; private set; }
    public ushort LocalMss { get; }
    /// <summary>Largest payload we put in one segment: min(peer MSS, our MSS) (RFC 9293 §3.7.1).</summary>
    public int SendMss { get; private set; }
    private byte _sndWndShift;  // the peer's window scale (RFC 7323 §2.3)
    private byte _rcvWndShift;  // ours, when the peer offered scaling
    private bool _peerOfferedWindowScale;

    /// <summary>Data seq of the first byte in the send buffer (the oldest unacknowledged data byte).</summary>
    private SeqNumber _sndBufSeq;
    /// <summary>The application called CLOSE: a FIN follows the last byte of the send buffer.</summary>
    private bool _finQueued;
    /// <summary>The peer's FIN has been received (in order).</summary>
    public bool FinReceived { get; private set; }

    /// <summary>An ACK must go out at the next output, even with no data.</summary>
    private bool _ackNow;
    private bool _outputPending;
    private ConnectionEvents _events;

    private SeqNumber FinSeq => _sndBufSeq + _sendBuffer.Count;
    private bool FinSent => _finQueued && SndMax > FinSeq;
    private bool FinAcked => _finQueued && SndUna > FinSeq;

    /// <summary>Bytes received in order and not yet read by the application.</summary>
    public int BytesAvailable => _receiveBuffer.Count;
    /// <summary>Bytes in the send buffer (unacknowledged plus not yet sent).</summary>
    public int BytesQueued => _sendBuffer.Count;
    public int SendSpace => CanSend ? _sendBuffer.Free : 0;
    public long SmoothedRttMicros => _rto.SmoothedRtt;
    public long CurrentRtoMicros => _rto.Current;
    public int CongestionWindow => _cwnd;

    private bool CanSend => !_finQueued && State is TcpState.Established or TcpState.CloseWait;

    /// <summary>The receive window we may advertise now: free buffer space (RFC 9293 §3.8.6.2).</summary>
    private int ReceiveWindow => _receiveBuffer.Free;

    internal void SetState(TcpState next, string cause)
    {
        var previous = State;
        if (previous == next) return;
        State = next;
        if (!_stack.InSegmentArrival)
            _stack.Tracer?.OnStateChange(_stack.Now, Tuple, previous, next, cause);
    }

    internal void RequestOutput()
    {
        if (_outputPending) return;
        _outputPending = true;
        _stack.EnqueueOutput(this);
    }

    internal void Raise(ConnectionEvents e)
    {
        bool wasIdle = _events == ConnectionEvents.None;
        _events |= e;
        if (wasIdle)
            _stack.EnqueueEvents(this);
    }

    /// <summary>Takes and clears the pending application events.</summary>
    public ConnectionEvents TakeEvents()
    {
        var e = _events;
        _events = ConnectionEvents.None;
        return e;
    }

    internal void Trace(TraceDirection direction, SeqNumber seq, SeqNumber ack, TcpFlags flags, ushort window,
        int payloadLength, in TcpOptions options, TcpState before, DropReason drop = DropReason.None)
    {
        _stack.Tracer?.OnSegment(new SegmentTraceRecord
        {
            TimeMicros = _stack.Now,
            Direction = direction,
            Tuple = Tuple,
            Sequence = seq.Value,
            Acknowledgment = ack.Value,
            Flags = flags,
            Window = window,
            PayloadLength = payloadLength,
            Options = options,
            HasConnection = true,
            LocalIsn = Iss.Value,
            PeerIsn = Irs.Value,
            Before = before,
            After = State,
            Drop = drop,
        });
    }

    public override string ToString() => $"{Tuple} {State.ToRfcName()}";
}
