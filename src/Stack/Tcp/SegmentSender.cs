using TunStack.Diagnostics;
using TunStack.Wire;

namespace TunStack.Tcp;

/// <summary>
/// Builds outgoing TCP segments as complete IPv4 or IPv6 packets in pooled buffers — IP header, TCP header, options,
/// payload, checksums — and queues them for transmission. One copy of the payload, no allocation. When the device
/// offloads, the TCP checksum is left to it (only the pseudo-header sum is written, virtio NEEDS_CSUM), and a segment
/// carrying more than <c>segmentSize</c> bytes goes as one super-packet the device cuts into segments of that size.
/// </summary>
internal sealed class SegmentSender
{
    private readonly NetStack _stack;
    private ushort _ipIdentification;

    public SegmentSender(NetStack stack) => _stack = stack;

    public void Send(Tcb? tcb, in FourTuple tuple, SeqNumber seq, SeqNumber ack, TcpFlags flags, ushort window,
        in TcpOptions options, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> payloadContinued, TraceNote note = TraceNote.None,
        in DetachedTrace detached = default, int segmentSize = 0)
    {
        var transmit = _stack.Transmit;
        int ipHeaderLength = IpHeader.LengthFor(tuple.LocalAddress);
        int payloadTotal = payload.Length + payloadContinued.Length;
        byte[] buffer = payloadTotal + ipHeaderLength + TcpSegment.MaxHeaderLength > transmit.BufferSize
            ? transmit.Rent(payloadTotal + ipHeaderLength + TcpSegment.MaxHeaderLength)
            : transmit.Rent();
        var tcp = buffer.AsSpan(ipHeaderLength);

        int optionsLength = options.WriteTo(tcp[TcpSegment.MinHeaderLength..]);
        int headerLength = TcpSegment.MinHeaderLength + optionsLength;
        TcpSegment.WriteHeader(tcp, tuple.LocalPort, tuple.RemotePort, seq.Value, ack.Value, flags, window, optionsLength);
        int payloadLength = payload.Length + payloadContinued.Length;
        int segmentLength = headerLength + payloadLength;
        var offloads = _stack.DeviceOffloads;
        PacketInfo info = default;
        if ((offloads & DeviceOffloads.Checksum) != 0)
        {
            // The device completes the checksum from the TCP header on (RFC 9293 §3.1 over the pseudo-header): the
            // payload is only copied.
            payload.CopyTo(tcp[headerLength..]);
            payloadContinued.CopyTo(tcp[(headerLength + payload.Length)..]);
            TcpSegment.WritePartialChecksum(tcp[..segmentLength], tuple.LocalAddress, tuple.RemoteAddress);
            info = info with { Checksum = ChecksumStatus.Partial };
        }
        else
        {
            // One pass over the payload: copied out of the send ring and summed on the way; then only the
            // pseudo-header and the header are summed.
            uint payloadSum = Checksum.CopyAndAdd(payload, payloadContinued, tcp[headerLength..], 0);
            TcpSegment.WriteChecksum(tcp[..segmentLength], headerLength, payloadSum, tuple.LocalAddress, tuple.RemoteAddress);
        }
        if (segmentSize > 0 && payloadLength > segmentSize)
        {
            info = info with
            {
                Segmentation = tuple.LocalAddress.IsV4 ? SegmentationKind.TcpV4 : SegmentationKind.TcpV6,
                SegmentSize = (ushort)segmentSize,
            };
            _stack.Counters.SuperPacketsSent++;
        }
        IpHeader.Write(buffer, tuple.LocalAddress, tuple.RemoteAddress, IpProtocol.Tcp, segmentLength, _ipIdentification++);

        transmit.Enqueue(buffer, ipHeaderLength + segmentLength, info);
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
