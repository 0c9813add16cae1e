using System.Buffers.Binary;
using TunStack.Wire;

namespace TunStack.Fuzz;

/// <summary>
/// The byte layout of an <see cref="EngineHarness"/> input. Any byte string is a valid input: a short read yields
/// zeros, so the fuzzer never wastes runs on framing.
/// <code>
/// config     2 bytes   see EngineConfig.From
/// record*    op byte, then by op (op &amp; 7):
///   0..3 segment   op bits 3-4 client port, bit 5 to the closed port 81, bit 6 second peer address;
///                  time step, flags, seq mode, seq (2 bytes, or 4 in mode 3), ack mode, ack (2 or 4), window (2),
///                  urgent pointer code, options length (0..40) + options bytes, payload length code
///   4 app send     op bits 3-5 connection (port, peer); amount code: (code * 64 + 1) bytes
///   5 app receive  op bits 3-5 connection; amount code: code * 16 bytes, 0 = everything
///   6 app close    op bits 3-5 connection; bit 6: abort instead of close
///   7 advance      time step
/// </code>
/// Sequence modes (relative to RCV.NXT of the connection, or the peer's next sequence number without one):
/// 0 = base + offset, 1 = base + offset·1024, 2 = base + offset·65536, 3 = the absolute 32-bit value.
/// Acknowledgment modes: 0 = SND.NXT + offset, 1 = SND.UNA + offset, 2 = SND.MAX + offset·1024, 3 = absolute.
/// Offsets are signed 16-bit. A time step code c advances c·100 µs below 128, else (c − 127)²·20 ms (up to 5.5 min).
/// </summary>
internal static class EngineInput
{
    public const int OpMask = 0x07;

    public enum Op : byte
    {
        Segment0 = 0, Segment1 = 1, Segment2 = 2, Segment3 = 3,
        AppSend = 4,
        AppReceive = 5,
        AppClose = 6,
        Advance = 7,
    }

    /// <summary>Microseconds for a time step code.</summary>
    public static long TimeStep(byte code) => code < 128 ? code * 100L : (long)(code - 127) * (code - 127) * 20_000;

    /// <summary>Payload bytes for a length code: the code itself up to 128, then steps of 64 (up to 8128).</summary>
    public static int PayloadLength(byte code) => code <= 128 ? code : (code - 128) * 64;

    /// <summary>The urgent pointer for a code: 0 and 255 stand for 0 and 0xFFFF, others for themselves.</summary>
    public static ushort UrgentPointer(byte code) => code == 255 ? ushort.MaxValue : code;

    /// <summary>Reads an input front to back; past the end every read yields zeros.</summary>
    public ref struct Reader
    {
        private readonly ReadOnlySpan<byte> _input;
        private int _offset;

        public Reader(ReadOnlySpan<byte> input) => _input = input;

        public readonly bool AtEnd => _offset >= _input.Length;

        public byte ReadByte() => _offset < _input.Length ? _input[_offset++] : (byte)0;

        public ushort ReadUInt16() => (ushort)(ReadByte() << 8 | ReadByte());

        public uint ReadUInt32() => (uint)ReadUInt16() << 16 | ReadUInt16();

        public byte[] ReadBytes(int count)
        {
            var bytes = new byte[count];
            for (int i = 0; i < count; i++) bytes[i] = ReadByte();
            return bytes;
        }
    }

    /// <summary>One segment record, decoded.</summary>
    public readonly record struct SegmentRecord(
        int PortIndex, bool ToClosedPort, int PeerIndex, byte TimeStep, byte Flags,
        int SeqMode, short SeqOffset, uint SeqAbsolute, int AckMode, short AckOffset, uint AckAbsolute,
        ushort Window, ushort UrgentPointer, byte[] Options, int PayloadLength)
    {
        public static SegmentRecord Read(byte op, ref Reader reader)
        {
            byte timeStep = reader.ReadByte();
            byte flags = reader.ReadByte();
            int seqMode = reader.ReadByte() & 3;
            uint seqRaw = seqMode == 3 ? reader.ReadUInt32() : reader.ReadUInt16();
            int ackMode = reader.ReadByte() & 3;
            uint ackRaw = ackMode == 3 ? reader.ReadUInt32() : reader.ReadUInt16();
            ushort window = reader.ReadUInt16();
            ushort urgent = EngineInput.UrgentPointer(reader.ReadByte());
            int optionsLength = Math.Min(reader.ReadByte() & 0x3F, TcpPacketBuilder.MaxOptionsLength);
            byte[] options = reader.ReadBytes(optionsLength);
            int payloadLength = EngineInput.PayloadLength(reader.ReadByte());
            return new SegmentRecord((op >> 3) & 3, (op & 0x20) != 0, (op >> 6) & 1, timeStep, flags,
                seqMode, (short)seqRaw, seqRaw, ackMode, (short)ackRaw, ackRaw, window, urgent, options, payloadLength);
        }
    }

    /// <summary>Writes inputs for <see cref="EngineHarness"/>: the seed corpus and tests use it to script sessions.</summary>
    public sealed class Writer
    {
        private readonly List<byte> _bytes = new();

        public Writer(EngineConfig config)
        {
            var (first, second) = config.ToBytes();
            _bytes.Add(first);
            _bytes.Add(second);
        }

        /// <summary>A segment from peer 0 on <paramref name="portIndex"/> at RCV.NXT + <paramref name="seqOffset"/>,
        /// acknowledging SND.NXT + <paramref name="ackOffset"/>.</summary>
        public Writer Segment(TcpFlags flags, int payloadLength = 0, ReadOnlySpan<byte> options = default, ushort window = 65535,
            short seqOffset = 0, short ackOffset = 0, byte timeStep = 10, int portIndex = 0, bool toClosedPort = false,
            int seqMode = 0, int ackMode = 0, byte urgentPointerCode = 0)
        {
            _bytes.Add((byte)((portIndex & 3) << 3 | (toClosedPort ? 0x20 : 0)));
            _bytes.Add(timeStep);
            _bytes.Add((byte)flags);
            _bytes.Add((byte)seqMode);
            AddUInt16((ushort)seqOffset);
            _bytes.Add((byte)ackMode);
            AddUInt16((ushort)ackOffset);
            AddUInt16(window);
            _bytes.Add(urgentPointerCode);
            int optionsLength = Math.Min(options.Length, TcpPacketBuilder.MaxOptionsLength);
            _bytes.Add((byte)optionsLength);
            _bytes.AddRange(options[..optionsLength].ToArray());
            _bytes.Add(PayloadCode(payloadLength));
            return this;
        }

        public Writer AppSend(byte amountCode, int portIndex = 0) => Add(Op.AppSend, portIndex, amountCode);
        public Writer AppReceive(byte amountCode = 0, int portIndex = 0) => Add(Op.AppReceive, portIndex, amountCode);
        public Writer AppClose(int portIndex = 0, bool abort = false) => Add(Op.AppClose, portIndex, null, abort ? 0x40 : 0);
        public Writer Advance(byte timeStep) => Add(Op.Advance, 0, timeStep);

        public byte[] ToArray() => _bytes.ToArray();

        private Writer Add(Op op, int portIndex, byte? argument, int extra = 0)
        {
            _bytes.Add((byte)((byte)op | (portIndex & 3) << 3 | extra));
            if (argument is byte a) _bytes.Add(a);
            return this;
        }

        private void AddUInt16(ushort value)
        {
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(b, value);
            _bytes.Add(b[0]);
            _bytes.Add(b[1]);
        }

        /// <summary>The length code whose payload length is closest to <paramref name="length"/> without exceeding it.</summary>
        private static byte PayloadCode(int length) =>
            length <= 128 ? (byte)Math.Max(length, 0) : (byte)Math.Min(255, 128 + length / 64);
    }
}

/// <summary>The stack configuration an <see cref="EngineHarness"/> input starts with (its first two bytes).</summary>
internal readonly record struct EngineConfig(
    int ReceiveBufferSize, int SendBufferSize, bool Trace, bool ApplicationReads, int Mtu,
    int MaxTimeWait, int Backlog, long MslMicros, bool ApplicationWaitsForEstablished, bool Ipv6 = false)
{
    private static readonly int[] BufferSizes = [65536, 4096, 1024, 300];
    private static readonly int[] Mtus = [1500, 576, 296, 9000];
    private static readonly int[] TimeWaitLimits = [65536, 0, 1, 4];
    private static readonly int[] Backlogs = [256, 1, 2, 8];
    private static readonly long[] Msls = [1_000_000, 30_000_000];

    /// <summary>The default: 64 KiB buffers, MTU 1500, an application that reads everything, no trace.</summary>
    public static EngineConfig Default => From(0x20, 0);

    /// <summary>
    /// First byte: bits 0-1 receive buffer (64 KiB, 4 KiB, 1 KiB, 300 B), bits 2-3 send buffer (same), bit 4 trace
    /// through <see cref="Diagnostics.TextTracer"/>, bit 5 the application reads on every Readable event, bits 6-7
    /// MTU (1500, 576, 296, 9000). Second byte: bits 0-1 TIME-WAIT limit (65536, 0, 1, 4), bits 2-3 backlog (256,
    /// 1, 2, 8), bit 4 MSL (1 s, 30 s), bit 5 the application touches a connection only after its Established
    /// event, as behind the event loop (otherwise it may call SEND, CLOSE or ABORT on any connection the stack has,
    /// which the <see cref="Tcp.Tcb"/> API allows), bit 6 the connections run over IPv6 (2001:2::/48 addresses; an
    /// MTU below IPv6's minimum of 1280 is taken as 1280, RFC 8200 §5).
    /// </summary>
    public static EngineConfig From(byte first, byte second)
    {
        bool ipv6 = (second & 0x40) != 0;
        int mtu = Mtus[(first >> 6) & 3];
        return new(
            BufferSizes[first & 3], BufferSizes[(first >> 2) & 3], (first & 0x10) != 0, (first & 0x20) != 0,
            ipv6 ? Math.Max(mtu, 1280) : mtu, TimeWaitLimits[second & 3], Backlogs[(second >> 2) & 3], Msls[(second >> 4) & 1],
            (second & 0x20) != 0, ipv6);
    }

    public (byte First, byte Second) ToBytes() => (
        (byte)(Array.IndexOf(BufferSizes, ReceiveBufferSize) | Array.IndexOf(BufferSizes, SendBufferSize) << 2
               | (Trace ? 0x10 : 0) | (ApplicationReads ? 0x20 : 0) | Math.Max(Array.IndexOf(Mtus, Mtu), 0) << 6),
        (byte)(Array.IndexOf(TimeWaitLimits, MaxTimeWait) | Array.IndexOf(Backlogs, Backlog) << 2
               | Array.IndexOf(Msls, MslMicros) << 4 | (ApplicationWaitsForEstablished ? 0x20 : 0) | (Ipv6 ? 0x40 : 0)));
}
