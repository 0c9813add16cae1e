using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// Builds outgoing TCP segments as complete IPv4 or IPv6 packets in pooled buffers — IP header, TCP header, options,
/// payload, checksums — and queues them for transmission. One copy of the payload, no allocation.
/// </summary>
internal sealed class SegmentSender
{
    private readonly NetStack _stack;
    private ushort _ipIdentification;

    public SegmentSender(NetStack stack) => _stack = stack;

    public void Send(Tcb? tcb, in FourTuple tuple, SeqNumber seq, SeqNumber ack, TcpFlags flags, ushort window,
        in TcpOptions options, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> payloadContinued, TraceNote note = TraceNote.None,
        in DetachedTrace detached = default)
    {
        var transmit = _stack.Transmit;
        byte[] buffer = transmit.Rent();
        int ipHeaderLength = IpHeader.LengthFor(tuple.LocalAddress);
        var tcp = buffer.AsSpan(ipHeaderLength);

        int optionsLength = options.WriteTo(tcp[TcpSegment.MinHeaderLength..]);
        int headerLength = TcpSegment.MinHeaderLength + optionsLength;
        TcpSegment.WriteHeader(tcp, tuple.LocalPort, tuple.RemotePort, seq.Value, ack.Value, flags, window, optionsLength);
        // One pass over the payload: copied out of the send ring and summed on the way; then only the pseudo-header
        // and the header are summed.
        uint payloadSum = Checksum.CopyAndAdd(payload, payloadContinued, tcp[headerLength..], 0);
        int payloadLength = payload.Length + payloadContinued.Length;
        int segmentLength = headerLength + payloadLength;
        TcpSegment.WriteChecksum(tcp[..segmentLength], headerLength, payloadSum, tuple.LocalAddress, tuple.RemoteAddress);
        IpHeader.Write(buffer, tuple.LocalAddress, tuple.RemoteAddress, IpProtocol.Tcp, segmentLength, _ipIdentification++);

        transmit.Enqueue(buffer, ipHeaderLength + segmentLength);
        _stack.Counters.SegmentsSent++;
        if ((flags & TcpFlags.Rst) != 0) _stack.Counters.ResetsSent++;

        if (_stack.Tracer is null) return;
        if (tcb is not null)
            tcb.Trace(TraceDirection.Out, seq, ack, flags, window, payloadLength, options, tcb.State, DropReason.None, note);
        else
            _stack.Tcp.TraceWithoutConnection(TraceDirection.Out, tuple, seq.Value, ack.Value, flags, window, payloadLength,
                options, detached);
    }
}
