using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using TunStack.Tcp;
using TunStack.Tests.Wire;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// A passive open from a new 4-tuple each time, as a busy server sees them: the captured Linux SYN (MSS, SACK
/// permitted, timestamps, window scale) from a new source address and port comes in, the stack answers with its
/// SYN-ACK (ISN from the keyed hash, RFC 6528), the peer's ACK (echoing the SYN-ACK's timestamp) comes in, and the
/// connection is ESTABLISHED; the application accepts it.
/// </summary>
/// <remarks>
/// To keep the connection table at its usual size, every invocation then removes the connection again (the engine's
/// <c>TcpLayer.Remove</c>: no RST is built, nothing is sent), which is part of the measured time. The clock moves
/// 10 µs per handshake (100,000 handshakes per second), which decides how many stale entries the timer heap holds:
/// the SYN-ACK's retransmission timer stays queued until its time (1 s) has passed — a small entry each, detached from
/// its TCB when the connection is removed, so the TCBs themselves are garbage at once. Every invocation checks that
/// exactly one SYN-ACK went out and that the connection is ESTABLISHED. Each new connection allocates its TCB.
/// </remarks>
[MemoryDiagnoser]
public class HandshakeBenchmarks
{
    private NetStack _stack = null!;
    private byte[] _syn = [];
    private readonly byte[] _ack = new byte[Ipv4Packet.MinHeaderLength + TcpSegment.MinHeaderLength + TcpOptions.TimestampsLength];
    private long _now = 1_000_000;
    private uint _n;

    [GlobalSetup]
    public void Setup()
    {
        _stack = new NetStack(new NetStackOptions { Address = LinuxCaptures.Server, IsnSecret = new byte[16] });
        _stack.Listen(18080);
        _syn = LinuxCaptures.Syn;
        for (int i = 0; i < 1000; i++)
            PassiveOpen();
    }

    [Benchmark(Description = "SYN in, SYN-ACK out, ACK in -> ESTABLISHED (new 4-tuple)")]
    public TcpState PassiveOpen()
    {
        // A new peer: 198.19.0.0/16 × ports 1024..60999, a new tuple for the next 3.9 billion handshakes.
        _n++;
        uint peer = 0xC613_0000u | (_n / 60000 & 0xFFFF);
        var port = (ushort)(1024 + _n % 60000);
        uint peerIsn = _n * 2654435761u;
        uint peerTimestamp = (uint)(_now / 1000);
        var syn = _syn.AsSpan();
        var synTcp = syn[Ipv4Packet.MinHeaderLength..];
        BinaryPrimitives.WriteUInt32BigEndian(syn[12..], peer);
        BinaryPrimitives.WriteUInt16BigEndian(synTcp, port);
        BinaryPrimitives.WriteUInt32BigEndian(synTcp[4..], peerIsn);
        BinaryPrimitives.WriteUInt32BigEndian(synTcp[28..], peerTimestamp); // the captured SYN's TS val (after MSS, SACK-OK, kind, length)
        Checksums(syn);

        _now += 10;
        _stack.Receive(syn, _now);
        _stack.Poll(_now);
        if (!_stack.Transmit.TryDequeue(out var synAck) || _stack.Transmit.Count != 0)
            throw new InvalidOperationException("Not exactly one SYN-ACK: " + PeerConnection.Drops(_stack));
        var synAckTcp = synAck.Span[Ipv4Packet.MinHeaderLength..];
        // Our SYN-ACK lays out its options as Linux does: MSS, SACK-OK, timestamps (kind at 26, TS val at 28), NOP, WS.
        if ((TcpFlags)synAckTcp[13] != (TcpFlags.Syn | TcpFlags.Ack) || synAckTcp[26] != TcpOptions.KindTimestamps)
            throw new InvalidOperationException("Not the expected SYN-ACK.");
        uint isn = BinaryPrimitives.ReadUInt32BigEndian(synAckTcp[4..]);
        uint stackTimestamp = BinaryPrimitives.ReadUInt32BigEndian(synAckTcp[28..]);
        _stack.Transmit.Return(synAck);

        var tcp = _ack.AsSpan(Ipv4Packet.MinHeaderLength);
        var options = new TcpOptions { HasTimestamps = true, TimestampValue = peerTimestamp, TimestampEcho = stackTimestamp };
        int optionsLength = options.WriteTo(tcp[TcpSegment.MinHeaderLength..]);
        TcpSegment.WriteHeader(tcp, port, 18080, peerIsn + 1, isn + 1, TcpFlags.Ack, 502, optionsLength);
        TcpSegment.WriteChecksum(tcp, IpAddress.FromV4(peer), LinuxCaptures.Server);
        Ipv4Packet.WriteHeader(_ack, IpAddress.FromV4(peer), LinuxCaptures.Server, IpProtocol.Tcp, tcp.Length, 0);
        _stack.Receive(_ack, _now);

        if (!_stack.TryTakeEvents(out var tcb, out var events) || (events & ConnectionEvents.Established) == 0)
            throw new InvalidOperationException("No Established event after the ACK: " + PeerConnection.Drops(_stack));
        var state = tcb.State;
        if (state != TcpState.Established)
            throw new InvalidOperationException("The connection is " + state);
        _stack.Accepted(tcb);
        _stack.Tcp.Remove(tcb, CloseReason.Aborted, "benchmark");
        while (_stack.TryTakeEvents(out _, out _)) { }
        return state;
    }

    /// <summary>The IPv4 header checksum and the TCP checksum of a packet whose fields were rewritten.</summary>
    private static void Checksums(Span<byte> packet)
    {
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], Checksum.Compute(packet[..Ipv4Packet.MinHeaderLength]));
        TcpSegment.WriteChecksum(packet[Ipv4Packet.MinHeaderLength..], IpAddress.FromV4(packet.Slice(12, 4)),
            IpAddress.FromV4(packet.Slice(16, 4)));
    }
}
