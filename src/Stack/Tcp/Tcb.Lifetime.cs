using TunStack.Diagnostics;
using TunStack.Tcp.Send;
using TunStack.Wire;

namespace TunStack.Tcp;

// How a connection ends on its own or reacts to the network: the application releasing it (close(2) on a socket),
// the FIN-WAIT-2 timeout, keep-alives (RFC 9293 §3.8.4), reopening from TIME-WAIT (RFC 6191), and ICMP errors
// (RFC 1122 §4.2.3.9, RFC 5927, RFC 1191 path MTU discovery).
internal sealed partial class Tcb
{
    private bool _released;
    private long _finWait2Deadline = Never;
    private long _keepAliveDeadline = Never;
    private long _lastReceiveTime;
    private int _keepAliveProbes;
    private bool _keepAlive;

    /// <summary>The application has let go of the connection: it will neither read nor write any more.</summary>
    public bool IsReleased => _released;

    /// <summary>The latest soft error an ICMP message reported (e.g. "network unreachable"), for diagnostics.</summary>
    public string? SoftError { get; private set; }

    /// <summary>
    /// Keep-alives (RFC 9293 §3.8.4): after <see cref="NetStackOptions.KeepAliveIdleMicros"/> without a segment from the
    /// peer, probe it; a peer that answers none of the probes is given up. Off unless asked for (MAY-5).
    /// </summary>
    public bool KeepAlive
    {
        get => _keepAlive;
        set
        {
            _keepAlive = value;
            _keepAliveProbes = 0;
            if (value) ArmKeepAlive();
            else _keepAliveDeadline = Never;
        }
    }

    /// <summary>
    /// The application is done with this connection — the equivalent of close(2) on a socket, where
    /// <see cref="Close"/> is shutdown(SHUT_WR). Received data it never read makes this an abort with RST
    /// (RFC 1122 §4.2.2.13, RFC 2525 §2.17), so the peer learns its data was lost. Otherwise our FIN goes after the
    /// queued data, and once the peer has acknowledged it the FIN-WAIT-2 timeout bounds how long we wait for its FIN.
    /// </summary>
    public void Release(bool unreadData = false)
    {
        if (_released || State is TcpState.Closed or TcpState.TimeWait) return;
        _released = true;
        if (unreadData || _receiveBuffer.Count > 0 || _reassembler is { IsEmpty: false })
        {
            _stack.Counters.ResetsOnUnreadData++;
            Abort();
            return;
        }
        if (State is TcpState.SynSent or TcpState.Listen)
        {
            _stack.Tcp.Remove(this, CloseReason.Aborted, "close()");
            return;
        }
        Close();
        if (State == TcpState.FinWait2)
            StartFinWait2Timer();
    }

    private void StartFinWait2Timer()
    {
        if (!_released || _finWait2Deadline != Never) return;
        _finWait2Deadline = Now + _stack.Options.FinWait2TimeoutMicros;
        _stack.Tcp.ScheduleTimer(this, _finWait2Deadline);
    }

    /// <summary>Text for a connection the application released: it can never be read, so reset (RFC 2525 §2.17).</summary>
    private void DataAfterRelease()
    {
        _stack.Counters.ResetsOnUnreadData++;
        Abort();
    }

    /// <summary>Called for every acceptable segment: the peer is alive.</summary>
    private void PeerHeardFrom()
    {
        _lastReceiveTime = Now;
        _keepAliveProbes = 0;
    }

    private void ArmKeepAlive()
    {
        if (!_keepAlive || State is not (TcpState.Established or TcpState.CloseWait)) return;
        long deadline = Math.Max(_lastReceiveTime, _lastSendTime) + (_keepAliveProbes == 0
            ? _stack.Options.KeepAliveIdleMicros
            : _keepAliveProbes * _stack.Options.KeepAliveIntervalMicros + _stack.Options.KeepAliveIdleMicros);
        _keepAliveDeadline = Math.Max(deadline, Now + 1);
        _stack.Tcp.ScheduleTimer(this, _keepAliveDeadline);
    }

    /// <summary>
    /// RFC 9293 §3.8.4: the connection has been idle; send a keep-alive (SEG.SEQ = SND.NXT − 1, no text), which the
    /// peer must answer with an ACK. After the configured number of unanswered probes the connection is dropped.
    /// </summary>
    private void KeepAliveTimeout()
    {
        _keepAliveDeadline = Never;
        if (!_keepAlive || State is not (TcpState.Established or TcpState.CloseWait)) return;
        long idleSince = Math.Max(_lastReceiveTime, _lastSendTime);
        if (Now - idleSince < _stack.Options.KeepAliveIdleMicros || !_sent.IsEmpty)
        {
            _keepAliveProbes = 0;
            ArmKeepAlive();
            return;
        }
        if (_keepAliveProbes >= _stack.Options.KeepAliveProbes)
        {
            GiveUp("keep-alive timeout");
            return;
        }
        _keepAliveProbes++;
        _stack.Counters.KeepAlivesSent++;
        _stack.Tcp.Sender.Send(this, Tuple, SndNxt - 1, RcvNxt, TcpFlags.Ack, AdvertisedWindow(), SegmentOptions(0), default,
            default, TraceNote.KeepAlive);
        AckSent();
        long next = Now + _stack.Options.KeepAliveIntervalMicros;
        _keepAliveDeadline = next;
        _stack.Tcp.ScheduleTimer(this, next);
    }

    /// <summary>
    /// An ICMP error about one of our segments. It is believed only if it quotes a sequence number in flight
    /// (RFC 5927 §4.1). Fragmentation needed lowers the segment size (RFC 1191); protocol or port unreachable while
    /// opening aborts the open (hard errors, RFC 1122 §4.2.3.9, RFC 5461 §4); anything else is a soft error: noted,
    /// never fatal in a synchronized state.
    /// </summary>
    internal DropReason IcmpErrorArrives(byte type, byte code, ushort nextHopMtu, SeqNumber seq)
    {
        bool inFlight = State == TcpState.SynSent ? seq == Iss : SndUna <= seq && seq < SndNxt;
        if (!inFlight)
            return DropReason.IcmpOutOfWindow;
        if (type == IcmpV4Packet.TypeDestinationUnreachable)
        {
            switch (code)
            {
                case IcmpV4Packet.CodeFragmentationNeeded:
                    PathMtuDecreased(nextHopMtu);
                    return DropReason.None;
                case IcmpV4Packet.CodeProtocolUnreachable or IcmpV4Packet.CodePortUnreachable when State == TcpState.SynSent:
                    SoftError = code == IcmpV4Packet.CodePortUnreachable ? "port unreachable" : "protocol unreachable";
                    _stack.Tcp.Remove(this, CloseReason.Refused, SoftError);
                    return DropReason.None;
                default:
                    SoftError = code switch { 0 => "network unreachable", 1 => "host unreachable", _ => $"destination unreachable (code {code})" };
                    return DropReason.None;
            }
        }
        SoftError = type == IcmpV4Packet.TypeParameterProblem ? "parameter problem" : "time exceeded";
        return DropReason.None;
    }

    /// <summary>RFC 8201 §4: an ICMPv6 Packet Too Big quoting a segment in flight (RFC 5927 §4.1) lowers the MSS.</summary>
    internal DropReason PacketTooBigArrives(ushort mtu, SeqNumber seq)
    {
        if (!(SndUna <= seq && seq < SndNxt))
            return DropReason.IcmpOutOfWindow;
        PathMtuDecreased(mtu);
        return DropReason.None;
    }

    /// <summary>
    /// RFC 1191 §6: the path cannot carry our segments. Lower the segment size to fit the reported MTU (or the next
    /// plateau below the current one when the router did not say, §5), split what is in flight to the new size and send
    /// it again.
    /// </summary>
    private void PathMtuDecreased(ushort reportedMtu)
    {
        int ipHeader = IpHeader.LengthFor(Tuple.LocalAddress);
        int currentMtu = SendMss + ipHeader + TcpSegment.MinHeaderLength;
        int mtu = reportedMtu != 0 ? reportedMtu : NextLowerPlateau(currentMtu);
        // RFC 1191 §3 allows ignoring absurd values (Linux's floor for IPv4 is 552); IPv6 links carry 1280 (RFC 8201 §4).
        mtu = Math.Max(mtu, Tuple.LocalAddress.IsV4 ? MinimumPathMtu : 1280);
        int mss = mtu - ipHeader - TcpSegment.MinHeaderLength;
        if (mss >= SendMss)
            return;
        SendMss = Math.Max(MinimumMss, mss);
        if (_cc is not null) _cc.Mss = MaxPayload;
        _stack.Counters.PathMtuReductions++;
        if (_sent.SplitLargerThan(MaxPayload))
            RecountScoreboard();
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (!s.Is(SentFlags.Sacked)) MarkLost(ref s);
        }
        RequestOutput();
    }

    private const int MinimumPathMtu = 552;

    /// <summary>RFC 1191 §7 table of common MTU plateaus.</summary>
    private static int NextLowerPlateau(int mtu)
    {
        ReadOnlySpan<int> plateaus = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
        foreach (int p in plateaus)
            if (p < mtu) return p;
        return 68;
    }

    /// <summary>Recomputes the scoreboard totals from the records (after they were split).</summary>
    private void RecountScoreboard()
    {
        _sackedBytes = _lostBytes = _retransmittedLostBytes = 0;
        _sackedSegments = 0;
        for (int i = 0; i < _sent.Count; i++)
        {
            ref var s = ref _sent[i];
            if (s.Is(SentFlags.Sacked)) { _sackedBytes += s.Length; _sackedSegments++; }
            if (s.Is(SentFlags.Lost)) _lostBytes += s.Length;
            if (s.Is(SentFlags.RetransmittedSinceLost)) _retransmittedLostBytes += s.Length;
        }
    }
}
