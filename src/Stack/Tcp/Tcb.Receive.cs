using TunStack.Diagnostics;
using TunStack.Tcp.Receive;
using TunStack.Wire;

namespace TunStack.Tcp;

// The receiving half: segment text into the receive ring (in order, or held out of order until the gap fills), the
// window we advertise, when we acknowledge, which SACK blocks we report, and timestamps (RFC 7323).
internal sealed partial class Tcb
{
    /// <summary>Out-of-order ranges held beyond RCV.NXT; created on the first out-of-order segment.</summary>
    private Reassembler? _reassembler;
    private SackReporter? _sackReporter;

    /// <summary>A FIN that arrived out of order: processed once RCV.NXT reaches it.</summary>
    private bool _finHeld;
    private SeqNumber _heldFinSeq;

    /// <summary>An ACK must go out as soon as the current segment (or application call) is handled.</summary>
    private bool _ackNow;
    /// <summary>RCV.NXT as acknowledged by the last segment we sent (Last.ACK.sent of RFC 7323 §4.3).</summary>
    private SeqNumber _lastAckSent;
    /// <summary>The largest segment text seen from the peer: "full-sized" for the ACK-every-second-segment rule.</summary>
    private int _rcvMss;

    /// <summary>Where in-order text goes as it arrives, ahead of the ring (see <see cref="IReceiveSink"/>); null for none.</summary>
    internal IReceiveSink? ReceiveSink { get; set; }

    // Timestamps (RFC 7323).
    private uint _timestampOffset;
    private uint _tsRecent;
    private long _tsRecentTime;

    /// <summary>
    /// RFC 9293 §3.10.7.4 seventh check. In-order text goes into the receive ring; text beyond a gap is stored at its
    /// place in the ring and remembered by the reassembler; a segment filling the gap delivers everything contiguous at
    /// once. Text is accepted up to the largest right edge ever advertised (RFC 7323 §2.4), and the ring always has room
    /// for it, because no advertised edge ever exceeded the free space (see <see cref="AdvertisedWindow"/>).
    /// Returns true when a FIN now sits at RCV.NXT (everything before it has arrived).
    /// </summary>
    private bool TextArrives(in TcpSegment seg, SeqNumber seq)
    {
        var payload = seg.Payload;
        bool fin = (seg.Flags & TcpFlags.Fin) != 0;
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2))
        {
            // After the peer's FIN no new text can be legal; nothing is kept.
            return fin && seq + payload.Length == RcvNxt && !FinReceived;
        }
        if (payload.IsEmpty)
        {
            if (fin && seq > RcvNxt && seq < ReceiveEdge + 1)
            {
                // A FIN beyond a gap: hold it until the gap fills, and ask for the gap at once (RFC 5681 §4.2).
                _finHeld = true;
                _heldFinSeq = seq;
                ArrivalNote |= TraceNote.OutOfOrder;
                _ackNow = true;
                return false;
            }
            return (fin && seq == RcvNxt) || FinHeldAtRcvNxt();
        }
        if (_released && seq + payload.Length > RcvNxt)
        {
            DataAfterRelease();
            return false;
        }

        var start = seq;
        var end = seq + payload.Length;
        if (end <= RcvNxt)
        {
            // Every byte is old: a retransmission we did not need. ACK at once (RFC 5681 §4.2), with D-SACK.
            OnDuplicateData(start, end);
            _ackNow = true;
            return fin && end == RcvNxt;
        }
        if (start < RcvNxt)
        {
            payload = payload[(RcvNxt - start)..];
            start = RcvNxt;
        }
        var edge = ReceiveEdge;
        if (end > edge)
        {
            // Past the window: keep what fits, the peer sends the rest again (the FIN, if any, is cut off too). Text
            // inside what we advertised must always fit the buffer: count it if it does not (a bug of ours).
            if (end > _rcvAdvertisedEdge) _stack.Counters.BeyondWindowSegments++;
            else _stack.Counters.ReceiveBufferOverruns++;
            int keep = edge - start;
            if (keep <= 0)
            {
                _ackNow = true;
                return false;
            }
            payload = payload[..keep];
            end = edge;
            fin = false;
        }
        // The peer's full-sized segment, for the ACK-every-second-segment rule: a super-packet counts as the segments
        // it stands for, so it is acknowledged at once (its segment size is what the peer's MSS is).
        int unit = _stack.ArrivalInfo.SegmentSize > 0 ? _stack.ArrivalInfo.SegmentSize : payload.Length;
        if (unit > _rcvMss)
            _rcvMss = Math.Min(unit, (int)LocalMss);

        if (start != RcvNxt)
        {
            StoreOutOfOrder(start, end, payload, fin);
            return false;
        }

        if (_receiveBuffer.Count == 0 && ReceiveRingIdle && ReceiveSink is { } sink && sink.TryTake(payload))
        {
            // Straight to the application: the ring stays empty, so the window stays open (no gap held, nothing unread).
            RcvNxt = end;
        }
        else
        {
            _receiveBuffer.Write(payload);
            RcvNxt = end;
            if (_reassembler is { IsEmpty: false })
            {
                // RFC 5681 §4.2: a segment that fills all or part of a gap is acknowledged at once.
                var next = _reassembler.TakeContiguous(RcvNxt);
                if (next > RcvNxt)
                {
                    _receiveBuffer.Extend(next - RcvNxt);
                    RcvNxt = next;
                }
                _ackNow = true;
            }
            // Before this segment's ACK is built: what the application takes now is no longer held against the window.
            ReceiveSink?.Drain();
        }
        Raise(ConnectionEvents.Readable);
        if (!_ackNow)
            ScheduleAck();
        return (fin && end == RcvNxt) || FinHeldAtRcvNxt();
    }

    /// <summary>The right edge of what we accept: the largest edge advertised, never beyond the ring's free space.</summary>
    private SeqNumber ReceiveEdge => SeqNumber.Min(_rcvAdvertisedEdge, RcvNxt + _receiveBuffer.Free);

    private bool FinHeldAtRcvNxt() => _finHeld && RcvNxt == _heldFinSeq;

    private void StoreOutOfOrder(SeqNumber start, SeqNumber end, ReadOnlySpan<byte> payload, bool fin)
    {
        _reassembler ??= new Reassembler();
        _sackReporter ??= new SackReporter();
        // The bytes go to their place in the ring now; the reassembler remembers that they are there.
        _receiveBuffer.WriteAt(start - RcvNxt, payload);
        var result = _reassembler.Add(start, end, out var block);
        switch (result)
        {
            case ReassemblyResult.Added:
                _sackReporter.OnOutOfOrder(block);
                _stack.Counters.OutOfOrderSegments++;
                ArrivalNote |= TraceNote.OutOfOrder;
                if (fin)
                {
                    _finHeld = true;
                    _heldFinSeq = end;
                }
                break;
            case ReassemblyResult.Duplicate:
                OnDuplicateData(start, end);
                break;
            case ReassemblyResult.NoRoom:
                _stack.Counters.OutOfOrderDropped++;
                break;
        }
        // RFC 5681 §4.2: an out-of-order segment is acknowledged at once (a duplicate ACK, with SACK blocks).
        _ackNow = true;
    }

    /// <summary>The peer sent bytes we already hold: report them once with D-SACK (RFC 2883).</summary>
    private void OnDuplicateData(SeqNumber start, SeqNumber end)
    {
        _stack.Counters.DuplicateSegments++;
        ArrivalNote |= TraceNote.Duplicate;
        if (!SackEnabled) return;
        _reassembler ??= new Reassembler();
        _sackReporter ??= new SackReporter();
        _sackReporter.OnDuplicate(new SeqRange(start, end));
    }

    /// <summary>
    /// The ACK policy for in-order data (RFC 9293 §3.8.6.3, RFC 5681 §4.2, RFC 1122 §4.2.3.2): acknowledge at least
    /// every second full-sized segment at once; otherwise within the delayed-ACK time.
    /// </summary>
    private void ScheduleAck()
    {
        long delay = _stack.Options.DelayedAckMicros;
        if (delay <= 0 || RcvNxt - _lastAckSent >= 2 * _rcvMss)
        {
            _ackNow = true;
            return;
        }
        if (_delayedAckDeadline == Never)
        {
            _delayedAckDeadline = Now + delay;
            _stack.Tcp.ScheduleTimer(this, _delayedAckDeadline);
        }
    }

    /// <summary>
    /// The window field for a non-SYN segment (RFC 9293 §3.8.6.2, RFC 7323 §2.3). The right edge only moves right, and
    /// only by a worthwhile amount: receiver SWS avoidance (§3.8.6.2.2) keeps it until the free space has grown by
    /// min(half the buffer, one MSS). A new edge never goes past the ring's free space, so every byte up to any edge we
    /// advertised has room (the bug the scale-shift rounding used to cause). The field is the window scaled down,
    /// rounded up only when the rounded edge still fits the free space.
    /// </summary>
    private ushort AdvertisedWindow()
    {
        int free = _receiveBuffer.Free;
        int promised = Math.Max(0, _rcvAdvertisedEdge - RcvNxt);
        int maxWindow = ushort.MaxValue << _rcvWndShift;
        int candidate = Math.Min(free, maxWindow) >> _rcvWndShift << _rcvWndShift;
        int offer = candidate - promised >= SwsThreshold ? candidate : promised;

        int granularity = 1 << _rcvWndShift;
        int field = (offer + granularity - 1) >> _rcvWndShift;
        if ((long)field << _rcvWndShift > free)
            field = offer >> _rcvWndShift;
        field = Math.Min(field, ushort.MaxValue);
        var edge = RcvNxt + (field << _rcvWndShift);
        if (edge > _rcvAdvertisedEdge) _rcvAdvertisedEdge = edge;
        return (ushort)field;
    }

    /// <summary>Receiver SWS avoidance threshold, RFC 9293 §3.8.6.2.2: min(Fr · RCV.BUFF, Eff.snd.MSS), Fr = 1/2.</summary>
    private int SwsThreshold => Math.Min(_receiveBuffer.Capacity / 2, (int)LocalMss);

    /// <summary>
    /// The application read data: send a window update only when it is worth a segment of its own, i.e. when the
    /// window we advertised had shrunk to at most half the buffer and can now at least double (as Linux does), and the
    /// move passes receiver SWS avoidance. ACKs that go out anyway carry the new window.
    /// </summary>
    private void MaybeSendWindowUpdate()
    {
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2))
            return;
        int promised = Math.Max(0, _rcvAdvertisedEdge - RcvNxt);
        int candidate = Math.Min(_receiveBuffer.Free, ushort.MaxValue << _rcvWndShift);
        if (promised <= _receiveBuffer.Capacity / 2 && candidate >= 2 * promised && candidate - promised >= SwsThreshold)
        {
            _ackNow = true;
            RequestOutput();
        }
    }

    /// <summary>Options every segment after the SYNs carries: timestamps, and SACK blocks when there is something to report.</summary>
    private TcpOptions SegmentOptions(int payloadLength)
    {
        var options = new TcpOptions();
        int room = SendMss - payloadLength; // options share the segment with its text (RFC 6691 §2)
        if (TimestampsEnabled)
        {
            options.HasTimestamps = true;
            options.TimestampValue = TimestampNow;
            options.TimestampEcho = _tsRecent;
            room -= TcpOptions.TimestampsLength;
        }
        if (SackEnabled && _sackReporter is not null && (_sackReporter.HasDuplicate || _reassembler is { IsEmpty: false }))
        {
            int fit = Math.Min((Math.Min(room, 40 - (TimestampsEnabled ? TcpOptions.TimestampsLength : 0)) - 4) / 8, TcpOptions.MaxSackBlocks);
            if (fit > 0)
            {
                _sackReporter.Fill(ref options, fit, _reassembler!);
                if (options.SackBlockCount > 0) _stack.Counters.SackBlocksSent += options.SackBlockCount;
            }
        }
        return options;
    }

    /// <summary>Our timestamp clock: milliseconds (RFC 7323 §5.4 asks for 1 ms to 1 s per tick) plus a per-connection offset.</summary>
    private uint TimestampNow => unchecked((uint)(Now / 1000) + _timestampOffset);

    /// <summary>The timestamp value a segment sent at <paramref name="time"/> carried.</summary>
    private uint TimestampAt(long time) => unchecked((uint)(time / 1000) + _timestampOffset);

    /// <summary>RFC 7323 §5.3 R1: SEG.TSval &lt; TS.Recent, and TS.Recent is not older than 24 days (§5.5).</summary>
    private bool IsOldTimestamp(uint value)
    {
        if (unchecked((int)(value - _tsRecent)) >= 0)
            return false;
        return Now - _tsRecentTime < PawsIdleLimitMicros;
    }

    private const long PawsIdleLimitMicros = 24L * 24 * 3600 * 1_000_000;

    /// <summary>RFC 7323 §4.3 (3): "If SEG.TSval >= TS.Recent and SEG.SEQ &lt;= Last.ACK.sent, then TS.Recent = SEG.TSval".</summary>
    private void RememberTimestamp(SeqNumber seq, uint value)
    {
        // RFC 7323 §5.5: a TS.Recent idle for 24 days is invalid; the accepted segment's TSval replaces it.
        bool stale = Now - _tsRecentTime >= PawsIdleLimitMicros;
        if ((stale || unchecked((int)(value - _tsRecent)) >= 0) && seq <= _lastAckSent)
        {
            _tsRecent = value;
            _tsRecentTime = Now;
        }
    }

    /// <summary>Forgets everything held out of order (the connection is gone).</summary>
    private void DropReassembly()
    {
        _reassembler?.Clear();
        _sackReporter?.Clear();
        _finHeld = false;
    }

    /// <summary>True when the receive ring may give its memory back: nothing in order and nothing out of order in it.</summary>
    private bool ReceiveRingIdle => _reassembler is null || _reassembler.IsEmpty;
}
