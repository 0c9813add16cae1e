using TunStack.Diagnostics;
using TunStack.Tcp.Congestion;
using TunStack.Tcp.Receive;
using TunStack.Tcp.Send;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// The transmission control block (RFC 9293 §3.3.1): everything known about one connection. Its behaviour is split
/// by topic, one partial file each:
/// <list type="bullet">
/// <item><c>Tcb.SegmentArrives.cs</c> — RFC 9293 §3.10.7, the spine: the checks in the RFC's order.</item>
/// <item><c>Tcb.Receive.cs</c> — segment text: reassembly, the receive window, the ACK policy, SACK blocks to send,
/// timestamps and PAWS (RFC 7323).</item>
/// <item><c>Tcb.Acknowledgment.cs</c> — the ACK field: the SACK scoreboard (RFC 6675), RACK-TLP loss detection
/// (RFC 8985), fast recovery with PRR (RFC 6937) or NewReno (RFC 6582).</item>
/// <item><c>Tcb.Output.cs</c> — sending: retransmissions first, then new data within the windows (Nagle, SWS), probes.</item>
/// <item><c>Tcb.Timers.cs</c> — retransmission, loss probe, reordering, persist, delayed ACK and TIME-WAIT timers.</item>
/// <item><c>Tcb.UserCalls.cs</c> — SEND, RECEIVE, CLOSE, ABORT (RFC 9293 §3.10).</item>
/// </list>
/// </summary>
internal sealed partial class Tcb
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
        _sendBuffer = new ByteRing(o.SendBufferSize, stack.Buffers);
        _receiveBuffer = new ByteRing(o.ReceiveBufferSize, stack.Buffers);
        _rto = new RtoEstimator(o.InitialRtoMicros, o.MinRtoMicros, o.MaxRtoMicros);
        // RFC 9293 §3.7.1: the MTU less the fixed IP and TCP headers, 40 bytes over IPv4 and 60 over IPv6 (RFC 8200 §3).
        LocalMss = (ushort)Math.Min(ushort.MaxValue, o.Mtu - IpHeader.LengthFor(tuple.LocalAddress) - TcpSegment.MinHeaderLength);
        NoDelay = o.NoDelay;
        _keepAlive = o.KeepAlive;
    }

    public FourTuple Tuple { get; }
    public TcpState State { get; private set; } = TcpState.Closed;
    public ListenEndpoint? Listener { get; }
    public CloseReason CloseReason { get; private set; }

    // Send sequence variables (RFC 9293 §3.3.1, Figure 3).
    public SeqNumber Iss { get; private set; }
    public SeqNumber SndUna { get; private set; }
    /// <summary>The next new sequence number to send. Retransmissions resend recorded segments and never move it back.</summary>
    public SeqNumber SndNxt { get; private set; }
    /// <summary>The highest sequence number sent so far (equal to SND.NXT; named for RFC 6675 / RFC 8985 readers).</summary>
    public SeqNumber SndMax => SndNxt;
    public uint SndWnd { get; private set; }
    private SeqNumber _sndWl1;
    private SeqNumber _sndWl2;
    /// <summary>MAX.SND.WND of RFC 5961 §5: the largest window the peer ever offered.</summary>
    private uint _maxSndWnd;

    // Receive sequence variables (RFC 9293 §3.3.1, Figure 4).
    public SeqNumber Irs { get; private set; }
    public SeqNumber RcvNxt { get; private set; }
    /// <summary>
    /// RCV.NXT + RCV.WND as last advertised: the largest right edge ever offered, never moved left. Set to RCV.NXT as
    /// soon as the peer's ISN is known: sequence numbers compare modulo 2^32, so a default of 0 would be "ahead" of
    /// half the ISNs.
    /// </summary>
    private SeqNumber _rcvAdvertisedEdge;

    // Negotiated at the handshake.
    public ushort PeerMss { get; private set; }
    public ushort LocalMss { get; }
    /// <summary>min(peer MSS, our MSS) (RFC 9293 §3.7.1): the largest segment text before options are subtracted.</summary>
    public int SendMss { get; private set; }
    private byte _sndWndShift;  // the peer's window scale (RFC 7323 §2.3)
    private byte _rcvWndShift;  // ours, when both sides offered scaling
    private bool _windowScaling;
    /// <summary>Both SYNs carried SACK-permitted (RFC 2018 §2).</summary>
    public bool SackEnabled { get; private set; }
    /// <summary>Both SYNs carried timestamps (RFC 7323 §3.2).</summary>
    public bool TimestampsEnabled { get; private set; }

    /// <summary>Payload bytes in a full-sized segment: SendMss less the timestamps option (RFC 6691 §2).</summary>
    public int MaxPayload => SendMss - (TimestampsEnabled ? TcpOptions.TimestampsLength : 0);

    /// <summary>Sequence number of the first byte in the send buffer (the oldest unacknowledged data byte).</summary>
    private SeqNumber _sndBufSeq;
    /// <summary>The application called CLOSE: a FIN follows the last byte of the send buffer.</summary>
    private bool _finQueued;
    /// <summary>CLOSE came in SYN-RECEIVED: the FIN goes once the handshake completes.</summary>
    private bool _closeWhenEstablished;
    /// <summary>The peer's FIN has been received (in order).</summary>
    public bool FinReceived { get; private set; }

    private bool _outputPending;
    private ConnectionEvents _events;

    private SeqNumber FinSeq => _sndBufSeq + _sendBuffer.Count;
    private bool FinSent => _finQueued && SndNxt > FinSeq;
    private bool FinAcked => _finQueued && SndUna > FinSeq;

    /// <summary>Nagle's algorithm (RFC 9293 §3.7.4) is off for this connection: small segments go out at once.</summary>
    public bool NoDelay { get; set; }

    /// <summary>Bytes received in order and not yet read by the application.</summary>
    public int BytesAvailable => _receiveBuffer.Count;
    /// <summary>Bytes in the send buffer (unacknowledged plus not yet sent).</summary>
    public int BytesQueued => _sendBuffer.Count;
    /// <summary>Bytes held out of order, waiting for a gap to fill.</summary>
    public int BytesOutOfOrder => _reassembler?.BytesHeld ?? 0;
    public int SendSpace => CanSend ? _sendBuffer.Free : 0;
    public long SmoothedRttMicros => _rto.SmoothedRtt;
    public long CurrentRtoMicros => _rto.Current;
    public long CongestionWindow => _cc?.Cwnd ?? 0;
    public long SlowStartThreshold => _cc?.Ssthresh ?? 0;
    public string CongestionControlName => _cc?.Name ?? "";
    /// <summary>Bytes in flight by the RFC 6675 estimate ("pipe").</summary>
    public long BytesInFlight => Pipe;
    /// <summary>Segments this connection retransmitted, for diagnostics.</summary>
    public long Retransmissions { get; private set; }
    /// <summary>True while the connection recovers from a loss (fast recovery or after a timeout).</summary>
    public bool InRecovery => _inFastRecovery || _inTimeoutRecovery;

    private bool CanSend => !_finQueued && State is TcpState.Established or TcpState.CloseWait;

    private long Now => _stack.Now;

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
        int payloadLength, in TcpOptions options, TcpState before, DropReason drop = DropReason.None, TraceNote note = TraceNote.None)
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
            Note = note,
        });
    }

    public override string ToString() => $"{Tuple} {State.ToRfcName()}";
}
