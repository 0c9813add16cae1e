using BenchmarkDotNet.Attributes;

namespace TunStack.Benchmarks;

/// <summary>
/// The send side, end to end inside the engine: the application writes bytes (<see cref="Tcb.Send"/>, a copy into the
/// send ring), <see cref="NetStack.Poll"/> cuts them into full-sized segments (options, header, the payload copied out
/// of the ring and summed in one pass, IP header, the segment recorded for retransmission, timers), the event loop
/// takes them off the transmit queue, and the peer's ACKs come back and free the ring. Must not allocate.
/// </summary>
/// <remarks>
/// One invocation sends 16 full-sized segments' worth of bytes and BenchmarkDotNet divides by 16
/// (<c>OperationsPerInvoke</c>), so the figure is per segment. Every invocation checks that exactly 16 segments of
/// full size and consecutive sequence numbers went out. The peer's ACKs are part of the cost: one cumulative ACK per
/// 16 segments (the least ACK work, close to the send side alone), or one per two segments, as a delayed-ACK
/// receiver like Linux sends them. The peer's window is large and the congestion window has grown past 16 segments
/// during setup, so neither limits a round.
/// </remarks>
[MemoryDiagnoser]
public class SendPathBenchmarks
{
    private const int Segments = 16;

    /// <summary>MssOnly: 1,460-byte segments without options. Linux: the captured SYN's options, 1,448 bytes + timestamps.</summary>
    [Params(PeerOptions.MssOnly, PeerOptions.Linux)]
    public PeerOptions Peer { get; set; }

    private PeerConnection _peer = null!;
    private NetStack _stack = null!;
    private byte[] _data = [];
    private int _payload;

    [GlobalSetup]
    public void Setup()
    {
        _peer = PeerConnection.Establish(Peer);
        _stack = _peer.Stack;
        _payload = _peer.FullSizedPayload;
        _data = PeerConnection.CapturedPayload(Segments * _payload);

        // Let the congestion window grow from the initial window to more than a round: send, acknowledge, repeat.
        for (int round = 0; round < 200; round++)
        {
            if (_peer.Tcb.Send(_data) != _data.Length)
                throw new InvalidOperationException("The send buffer did not take a round of data.");
            while (_peer.Tcb.BytesQueued > 0)
            {
                _peer.Now += 10;
                _stack.Poll(_peer.Now);
                while (_stack.Transmit.TryDequeue(out var p))
                {
                    _peer.ReadSent(p, out uint seq, out int length);
                    _stack.Transmit.Return(p);
                    if (seq == _peer.StackNext) _peer.StackNext += (uint)length;
                }
                _peer.Now += 10;
                _stack.Receive(_peer.Ack(_peer.StackNext, ushort.MaxValue), _peer.Now);
            }
        }
        if (_peer.Tcb.CongestionWindow < 2 * Segments * _payload)
            throw new InvalidOperationException($"The congestion window is only {_peer.Tcb.CongestionWindow} bytes after warming up.");
        for (int i = 0; i < 10; i++)
        {
            SegmentsWithOneAck();
            SegmentsWithAckEverySecond();
        }
    }

    [Benchmark(OperationsPerInvoke = Segments, Description = "app bytes -> 16 full-sized segments, 1 cumulative ACK (per segment)")]
    public int SegmentsWithOneAck()
    {
        uint first = SendRound();
        _peer.Now += 10;
        _stack.Receive(_peer.Ack(_peer.StackNext, ushort.MaxValue), _peer.Now);
        return CheckAcknowledged(first);
    }

    [Benchmark(OperationsPerInvoke = Segments, Description = "app bytes -> 16 full-sized segments, ACK every 2nd (per segment)")]
    public int SegmentsWithAckEverySecond()
    {
        uint first = SendRound();
        for (int i = 2; i <= Segments; i += 2)
        {
            _peer.Now += 10;
            _stack.Receive(_peer.Ack(first + (uint)(i * _payload), ushort.MaxValue), _peer.Now);
        }
        return CheckAcknowledged(first);
    }

    /// <summary>The application writes a round of bytes; one Poll sends them; the segments are checked and freed.</summary>
    private uint SendRound()
    {
        uint first = _peer.StackNext;
        if (_peer.Tcb.Send(_data) != _data.Length)
            throw new InvalidOperationException("The send buffer did not take the round's bytes.");
        _peer.Now += 10;
        _stack.Poll(_peer.Now);
        int count = 0;
        while (_stack.Transmit.TryDequeue(out var p))
        {
            _peer.ReadSent(p, out uint seq, out int length);
            _stack.Transmit.Return(p);
            if (seq != _peer.StackNext || length != _payload)
                throw new InvalidOperationException($"Segment {count}: seq {seq}, {length} bytes; expected seq {_peer.StackNext}, {_payload} bytes.");
            _peer.StackNext += (uint)length;
            count++;
        }
        if (count != Segments)
            throw new InvalidOperationException($"{count} segments went out, not {Segments}.");
        return first;
    }

    private int CheckAcknowledged(uint first)
    {
        if (_peer.Tcb.BytesQueued != 0 || _stack.Transmit.Count != 0 || _peer.Tcb.SndUna.Value != first + (uint)_data.Length)
            throw new InvalidOperationException($"After the ACKs: {_peer.Tcb.BytesQueued} bytes still queued, {_stack.Transmit.Count} packets out.");
        return Segments;
    }
}
