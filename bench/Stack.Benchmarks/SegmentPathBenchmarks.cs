using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// The hot core, end to end inside the engine: one 1460-byte data segment arrives for an established connection
/// (IPv4 + TCP parse and checksums, connection lookup, the RFC 9293 segment-arrival checks, copy into the receive
/// buffer), the stack emits its ACK (headers + checksums), and the application reads the bytes. Must not allocate.
/// </summary>
[MemoryDiagnoser]
public class SegmentPathBenchmarks
{
    private static readonly IpAddress Local = IpAddress.Parse("198.18.0.2");
    private static readonly IpAddress Remote = IpAddress.Parse("198.18.0.1");
    private const ushort RemotePort = 40000;

    private NetStack _stack = null!;
    private Tcb _tcb = null!;
    private byte[] _packet = [];
    private readonly byte[] _appBuffer = new byte[2048];
    private uint _peerSeq;
    private long _now;

    [GlobalSetup]
    public void Setup()
    {
        _stack = new NetStack(new NetStackOptions { Address = Local, IsnSecret = new byte[16] });
        _stack.Listen(80);
        _now = 1_000_000;
        _peerSeq = 1000;
        _stack.Receive(Build(_peerSeq, 0, TcpFlags.Syn, new TcpOptions { Mss = 1460, WindowScale = 7 }, 0), _now);
        uint ourIsn = DrainOne(); // the SYN-ACK's sequence number
        _peerSeq++;
        Inject(Build(_peerSeq, ourIsn + 1, TcpFlags.Ack, default, 0));
        _tcb = _stack.FindConnection(new FourTuple(Local, 80, Remote, RemotePort))!;
        _packet = Build(_peerSeq, ourIsn + 1, TcpFlags.Ack | TcpFlags.Psh, default, 1460);

        // Make sure the benchmark measures the real path: every segment must be accepted and read.
        for (int i = 0; i < 3; i++)
            if (DataSegmentToAck() != 1460)
                throw new InvalidOperationException("The data segment was not accepted: " + string.Join(", ", _stack.Counters.Drops()));
    }

    [Benchmark(Description = "data segment in -> ACK out -> app read (1460 B)")]
    public int DataSegmentToAck()
    {
        // Advance the segment's sequence number; patch the TCP checksum incrementally (RFC 1624).
        var tcp = _packet.AsSpan(20);
        uint oldSeq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], _peerSeq);
        ushort checksum = BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]);
        uint sum = (ushort)~checksum;
        sum += (uint)(ushort)~(oldSeq >> 16) + (ushort)~(oldSeq & 0xFFFF) + (_peerSeq >> 16) + (_peerSeq & 0xFFFF);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Finish(sum));
        _peerSeq += 1460;

        _now += 10;
        _stack.Receive(_packet, _now);
        DrainOne();
        return _tcb.Receive(_appBuffer);
    }

    private void Inject(byte[] packet)
    {
        _stack.Receive(packet, _now);
        _stack.Poll(_now);
        while (_stack.Transmit.TryDequeue(out var p)) _stack.Transmit.Return(p);
    }

    private uint DrainOne()
    {
        _stack.Poll(_now);
        uint seq = 0;
        while (_stack.Transmit.TryDequeue(out var p))
        {
            seq = BinaryPrimitives.ReadUInt32BigEndian(p.Span[24..]);
            _stack.Transmit.Return(p);
        }
        return seq;
    }

    private static byte[] Build(uint seq, uint ack, TcpFlags flags, TcpOptions options, int payloadLength)
    {
        var buffer = new byte[20 + 60 + payloadLength];
        var tcp = buffer.AsSpan(20);
        int optionsLength = options.WriteTo(tcp[20..]);
        TcpSegment.WriteHeader(tcp, RemotePort, 80, seq, ack, flags, 65535, optionsLength);
        int segmentLength = 20 + optionsLength + payloadLength;
        TcpSegment.WriteChecksum(tcp[..segmentLength], Remote, Local);
        Ipv4Packet.WriteHeader(buffer, Remote, Local, IpProtocol.Tcp, segmentLength, 1);
        return buffer[..(20 + segmentLength)];
    }
}
