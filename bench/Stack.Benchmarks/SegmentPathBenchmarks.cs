using BenchmarkDotNet.Attributes;

namespace TunStack.Benchmarks;

/// <summary>
/// The hot core of the receive side, end to end inside the engine: full-sized data segments arrive for an established
/// connection (IPv4 + TCP parse and checksums, connection lookup, the RFC 9293 segment-arrival checks, copy into the
/// receive buffer), the stack acknowledges them, and the application reads the bytes. Must not allocate.
/// </summary>
/// <remarks>
/// The stack delays ACKs (RFC 9293 §3.8.6.3, RFC 5681 §4.2): it acknowledges every second full-sized segment at once
/// and the first of a pair only when the delayed-ACK timer fires. So one invocation is two segments — each received,
/// polled and read by the application, as the event loop does — and exactly one ACK, and BenchmarkDotNet divides by
/// two (<c>OperationsPerInvoke = 2</c>): the figure is per segment, with half an ACK in it. Every invocation checks
/// that both segments were accepted and read in full and that the one ACK acknowledges both, so a drop cannot make
/// the number look good.
/// </remarks>
[MemoryDiagnoser]
public class SegmentPathBenchmarks
{
    /// <summary>MssOnly: 1,460-byte segments without options. Linux: the captured SYN's options, 1,448 bytes + timestamps.</summary>
    [Params(PeerOptions.MssOnly, PeerOptions.Linux)]
    public PeerOptions Peer { get; set; }

    private PeerConnection _peer = null!;
    private NetStack _stack = null!;
    private byte[] _segment = [];
    private readonly byte[] _appBuffer = new byte[4096];
    private int _payload;

    [GlobalSetup]
    public void Setup()
    {
        _peer = PeerConnection.Establish(Peer);
        _stack = _peer.Stack;
        _payload = _peer.FullSizedPayload;
        _segment = _peer.Data(PeerConnection.CapturedPayload(_payload)).ToArray();
        for (int i = 0; i < 100; i++)
            TwoSegmentsOneAck();
    }

    [Benchmark(OperationsPerInvoke = 2, Description = "data segment in -> app read, ACK every 2nd (per segment)")]
    public int TwoSegmentsOneAck()
    {
        int read = OneSegment();
        if (_stack.Transmit.Count != 0)
            throw new InvalidOperationException("The first segment of a pair was acknowledged at once.");
        read += OneSegment();
        if (!_stack.Transmit.TryDequeue(out var ack) || _stack.Transmit.Count != 0)
            throw new InvalidOperationException("Not exactly one ACK for two full-sized segments: " + PeerConnection.Drops(_stack));
        uint acknowledged = _peer.ReadSent(ack, out _, out _);
        _stack.Transmit.Return(ack);
        if (acknowledged != _peer.PeerNext || read != 2 * _payload)
            throw new InvalidOperationException($"ACK {acknowledged}, expected {_peer.PeerNext}; read {read} bytes: " + PeerConnection.Drops(_stack));
        return read;
    }

    /// <summary>One segment at the peer's next sequence number: received, polled, read by the application.</summary>
    private int OneSegment()
    {
        // The same built segment every time: its sequence number (and timestamp) patched, the checksum updated
        // incrementally, so the peer's side costs a few nanoseconds.
        PeerConnection.Patch(_segment, PeerConnection.SequenceOffset, _peer.PeerNext);
        if (_peer.Timestamps)
            PeerConnection.Patch(_segment, PeerConnection.PeerTimestampOffset, _peer.PeerTimestamp);
        _peer.PeerNext += (uint)_payload;
        _peer.Now += 10;
        _stack.Receive(_segment, _peer.Now);
        _stack.Poll(_peer.Now);
        return _peer.Tcb.Receive(_appBuffer);
    }
}
