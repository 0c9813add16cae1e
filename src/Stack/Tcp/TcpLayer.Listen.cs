using TunStack.Diagnostics;
using TunStack.Tcp.Listen;
using TunStack.Wire;

namespace TunStack.Tcp;

// LISTEN (RFC 9293 §3.10.7.2): SYNs become connections in SYN-RECEIVED while the half-open queue has room, and SYN
// cookies (RFC 4987) beyond it; established connections wait in the accept queue, which the backlog bounds; and the
// stack as a whole admits no more connections than its limits allow.
internal sealed partial class TcpLayer
{
    public ListenEndpoint Listen(ushort port, int acceptBacklog, int halfOpenLimit)
    {
        if (_listeners.ContainsKey(port))
            throw new InvalidOperationException($"Port {port} already has a listener.");
        var listener = new ListenEndpoint(port, acceptBacklog, halfOpenLimit);
        _listeners.Add(port, listener);
        return listener;
    }

    /// <summary>RFC 9293 §3.10.7.2: a segment for a port in LISTEN.</summary>
    private DropReason ListenSegmentArrives(ListenEndpoint listener, in FourTuple tuple, in TcpSegment seg, in TcpOptions options,
        SeqNumber? previousSndNxt = null)
    {
        // First: an incoming RST is ignored.
        if (seg.Has(TcpFlags.Rst))
            return Traced(tuple, seg, options, DropReason.Stale);

        // Second: any ACK is bad in LISTEN: <SEQ=SEG.ACK><CTL=RST> — unless it returns a SYN cookie of ours.
        if (seg.Has(TcpFlags.Ack))
        {
            if (!seg.Has(TcpFlags.Syn) && TryCookie(listener, tuple, seg, options, out var drop))
                return drop;
            Traced(tuple, seg, options, DropReason.Stale);
            SendReset(tuple, new SeqNumber(seg.AcknowledgmentNumber), default, TcpFlags.Rst);
            return DropReason.Stale;
        }

        // Third: a SYN opens a connection. Anything else is dropped.
        if (!seg.Has(TcpFlags.Syn))
            return Traced(tuple, seg, options, DropReason.Stale);

        if (listener.AcceptQueueFull)
        {
            // The application is not accepting: a new connection would only wait (Linux drops such SYNs too).
            listener.SynsDropped++;
            return Traced(tuple, seg, options, DropReason.AcceptQueueFull);
        }
        if (!HasRoomForConnection(out var refusal))
            return Traced(tuple, seg, options, refusal);
        if (listener.HalfOpenCount >= listener.HalfOpenLimit)
        {
            if (!_stack.Options.SynCookies)
            {
                listener.SynsDropped++;
                return Traced(tuple, seg, options, DropReason.BacklogFull);
            }
            SendSynCookie(listener, tuple, seg, options);
            return DropReason.None;
        }

        var tcb = new Tcb(_stack, tuple, listener);
        AddConnection(tuple, tcb);
        listener.HalfOpenCount++;
        _stack.Counters.PassiveOpens++;
        var iss = _isn.Next(tuple, _stack.Now);
        if (previousSndNxt is SeqNumber old && iss - old < MinimumIncarnationGap)
            iss = old + MinimumIncarnationGap; // RFC 6191 §2: above the old incarnation's sequence space
        tcb.OpenFromSyn(seg, options, iss, _isn.TimestampOffset(tuple));
        if (_stack.Tracer is not null)
            tcb.Trace(TraceDirection.In, new SeqNumber(seg.SequenceNumber), default, seg.Flags, seg.Window,
                seg.Payload.Length, options, TcpState.Listen);
        return DropReason.None;
    }

    /// <summary>How far above a TIME-WAIT incarnation's SND.NXT a reopened connection's ISN starts, at least.</summary>
    private const int MinimumIncarnationGap = 65536;

    /// <summary>
    /// The stack-wide limits: <see cref="NetStackOptions.MaxConnections"/> connections, and buffer memory within
    /// <see cref="NetStackOptions.BufferMemoryLimit"/> with room for one more connection's buffers (like Linux's tcp_mem).
    /// </summary>
    private bool HasRoomForConnection(out DropReason refusal)
    {
        var o = _stack.Options;
        if (ConnectionCount >= o.MaxConnections)
        {
            _stack.Counters.ConnectionLimitReached++;
            refusal = DropReason.ConnectionLimit;
            return false;
        }
        if (_stack.Buffers.InUse + o.SendBufferSize + o.ReceiveBufferSize > o.BufferMemoryLimit)
        {
            _stack.Counters.MemoryLimitReached++;
            refusal = DropReason.MemoryLimit;
            return false;
        }
        refusal = DropReason.None;
        return true;
    }

    /// <summary>
    /// The half-open queue is full: answer with a SYN-ACK whose ISN is a cookie (RFC 4987 §3.6) and keep nothing.
    /// Without timestamps the cookie cannot carry window scale or SACK, so the SYN-ACK offers neither (as Linux does).
    /// </summary>
    private void SendSynCookie(ListenEndpoint listener, in FourTuple tuple, in TcpSegment seg, in TcpOptions peer)
    {
        var o = _stack.Options;
        var peerIsn = new SeqNumber(seg.SequenceNumber);
        var cookie = _cookies.Create(tuple, peerIsn, peer.Mss ?? (tuple.RemoteAddress.IsV4 ? (ushort)536 : (ushort)1220), _stack.Now);
        var options = new TcpOptions { Mss = LocalMss(tuple) };
        bool timestamps = peer.HasTimestamps && o.Timestamps;
        if (timestamps)
        {
            byte? peerScale = peer.WindowScale;
            bool sack = peer.SackPermitted && o.Sack;
            if (peerScale is not null) options.WindowScale = o.WindowScale ?? Tcb.ShiftFor(o.ReceiveBufferSize);
            options.SackPermitted = sack;
            options.HasTimestamps = true;
            uint clock = unchecked((uint)(_stack.Now / 1000) + _isn.TimestampOffset(tuple));
            options.TimestampValue = SynCookies.EncodeTimestamp(clock, peerScale, sack);
            options.TimestampEcho = peer.TimestampValue;
        }
        listener.SynCookiesSent++;
        listener.LastCookieTime = _stack.Now;
        _stack.Counters.SynCookiesSent++;
        Traced(tuple, seg, options: peer, DropReason.None, TraceNote.SynCookie);
        Sender.Send(null, tuple, cookie, peerIsn + 1, TcpFlags.Syn | TcpFlags.Ack, CookieWindow, options, default, default,
            TraceNote.SynCookie, new DetachedTrace(TcpState.Listen));
    }

    /// <summary>The (unscaled) window a cookie SYN-ACK offers, which the reconstructed connection then honours.</summary>
    private ushort CookieWindow => (ushort)Math.Min(_stack.Options.ReceiveBufferSize, ushort.MaxValue);

    private ushort LocalMss(in FourTuple tuple) =>
        (ushort)Math.Min(ushort.MaxValue, _stack.Options.Mtu - IpHeader.LengthFor(tuple.LocalAddress) - TcpSegment.MinHeaderLength);

    /// <summary>
    /// An ACK to a listener: if cookies were sent lately and this ACK returns a valid one, the connection is rebuilt
    /// from it in ESTABLISHED and the segment processed as its first. False (a reset follows) otherwise.
    /// </summary>
    private bool TryCookie(ListenEndpoint listener, in FourTuple tuple, in TcpSegment seg, in TcpOptions options, out DropReason drop)
    {
        drop = DropReason.None;
        if (!_stack.Options.SynCookies || _stack.Now - listener.LastCookieTime > SynCookies.MaxAgeMinutes * 60_000_000L + 60_000_000L)
            return false;
        var peerIsn = new SeqNumber(seg.SequenceNumber) - 1;
        var cookie = new SeqNumber(seg.AcknowledgmentNumber) - 1;
        if (!_cookies.TryCheck(tuple, peerIsn, cookie, _stack.Now, out ushort mss))
            return false;
        if (listener.AcceptQueueFull || !HasRoomForConnection(out _))
        {
            listener.SynsDropped++;
            drop = Traced(tuple, seg, options, DropReason.AcceptQueueFull);
            return true; // valid, but no room: drop it silently; the peer retransmits
        }
        byte? peerScale = null;
        bool sack = false, timestamps = options.HasTimestamps && _stack.Options.Timestamps;
        if (timestamps)
            SynCookies.DecodeTimestamp(options.TimestampEcho, out peerScale, out sack);

        var tcb = new Tcb(_stack, tuple, listener);
        AddConnection(tuple, tcb);
        listener.SynCookiesAccepted++;
        _stack.Counters.SynCookiesAccepted++;
        _stack.Counters.PassiveOpens++;
        tcb.OpenFromCookie(seg, options, cookie, peerIsn, mss, peerScale, sack, timestamps, CookieWindow, _isn.TimestampOffset(tuple));
        // The ACK completes the handshake; whatever else it carries (often the request) is processed as usual.
        var before = tcb.State;
        drop = tcb.SegmentArrives(seg, options);
        if (_stack.Tracer is not null)
            tcb.Trace(TraceDirection.In, new SeqNumber(seg.SequenceNumber), new SeqNumber(seg.AcknowledgmentNumber), seg.Flags,
                seg.Window, seg.Payload.Length, options, TcpState.Listen, drop, TraceNote.SynCookie);
        tcb.AfterSegment();
        return true;
    }

    private DropReason Traced(in FourTuple tuple, in TcpSegment seg, in TcpOptions options, DropReason drop, TraceNote note = TraceNote.None)
    {
        if (_stack.Tracer is not null)
            _stack.Tracer.OnSegment(new SegmentTraceRecord
            {
                TimeMicros = _stack.Now, Direction = TraceDirection.In, Tuple = tuple, Sequence = seg.SequenceNumber,
                Acknowledgment = seg.AcknowledgmentNumber, Flags = seg.Flags, Window = seg.Window,
                PayloadLength = seg.Payload.Length, Options = options, Before = TcpState.Listen, After = TcpState.Listen,
                Drop = drop, Note = note,
            });
        return drop;
    }

    /// <summary>The application took a connection from the accept queue.</summary>
    public void Accepted(Tcb tcb) => tcb.LeaveAcceptQueue();
}
