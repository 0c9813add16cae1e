using System.Buffers.Binary;
using TunStack.Tcp;
using TunStack.Tests.Wire;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>What the simulated peer offers in its SYN, and so what every later segment of the connection looks like.</summary>
public enum PeerOptions
{
    /// <summary>MSS 1460 and window scale 7, nothing else: a full-sized segment carries 1,460 bytes and no options.</summary>
    MssOnly,

    /// <summary>
    /// The captured Linux SYN itself (<see cref="LinuxCaptures.Syn"/>: MSS 1460, SACK permitted, timestamps, window scale
    /// 10): every segment carries the 12-byte timestamps option, so a full-sized segment carries 1,448 bytes.
    /// </summary>
    Linux,
}

/// <summary>
/// A <see cref="NetStack"/> with one connection that a simulated peer has opened, and the peer's side of it: it
/// builds the segments the peer sends (valid checksums, into a reused buffer, with the timestamps option when
/// negotiated) and reads the numbers out of what the stack sends. The addresses and ports are those of the Linux
/// captures: the peer is 198.18.0.1:50560, the stack listens on 198.18.0.2:18080. Every step checks its outcome,
/// so a segment the stack drops stops the benchmark instead of making it look fast.
/// </summary>
internal sealed class PeerConnection
{
    public static readonly IpAddress StackAddress = LinuxCaptures.Server;
    public static readonly IpAddress PeerAddress = LinuxCaptures.Client;
    public const ushort StackPort = 18080;
    public const ushort PeerPort = 50560;

    /// <summary>The timestamps option as Linux lays it out on a data segment or ACK: NOP, NOP, kind 8, length 10.</summary>
    private const int TimestampValueOffset = 24;
    private const int TimestampEchoOffset = 28;

    private readonly byte[] _segment = new byte[Ipv4Packet.MinHeaderLength + TcpSegment.MaxHeaderLength + 1460];
    private ushort _ipIdentification;

    private PeerConnection(NetStack stack, PeerOptions options)
    {
        Stack = stack;
        Options = options;
    }

    public NetStack Stack { get; }
    public PeerOptions Options { get; }
    public Tcb Tcb { get; private set; } = null!;
    public bool Timestamps => Options == PeerOptions.Linux;

    /// <summary>Payload bytes in a full-sized segment each way (MSS 1460 less the timestamps option, if any).</summary>
    public int FullSizedPayload => Timestamps ? 1460 - TcpOptions.TimestampsLength : 1460;

    /// <summary>The time the stack is told, in microseconds; the benchmarks move it forward.</summary>
    public long Now { get; set; } = 1_000_000;

    /// <summary>The peer's SND.NXT: the sequence number of its next byte.</summary>
    public uint PeerNext { get; set; }

    /// <summary>The peer's RCV.NXT: the stack's sequence number the peer expects next (and acknowledges).</summary>
    public uint StackNext { get; set; }

    /// <summary>The stack's latest timestamp value, which the peer echoes (RFC 7323 §4.3).</summary>
    public uint StackTimestamp { get; private set; }

    /// <summary>The peer's timestamp clock: Linux's runs in milliseconds (RFC 7323 §5.4).</summary>
    public uint PeerTimestamp => unchecked(1370366983u + (uint)(Now / 1000));

    /// <summary>
    /// Makes a stack listening on 198.18.0.2:18080 and completes a passive open from the peer: SYN in, SYN-ACK out,
    /// ACK in. The connection is ESTABLISHED and accepted, and nothing is left in the transmit queue.
    /// </summary>
    public static PeerConnection Establish(PeerOptions options, NetStackOptions? stackOptions = null)
    {
        var stack = new NetStack(stackOptions ?? new NetStackOptions { Address = StackAddress, IsnSecret = new byte[16] });
        stack.Listen(StackPort);
        var peer = new PeerConnection(stack, options);
        byte[] syn;
        if (options == PeerOptions.Linux)
        {
            syn = LinuxCaptures.Syn;
            peer.PeerNext = 3921558019;
        }
        else
        {
            peer.PeerNext = 1000;
            syn = peer.Build(TcpFlags.Syn, peer.PeerNext, 0, new TcpOptions { Mss = 1460, WindowScale = 7 }, 64240, default).ToArray();
        }
        stack.Receive(syn, peer.Now);
        stack.Poll(peer.Now);
        if (!stack.Transmit.TryDequeue(out var synAck) || stack.Transmit.Count != 0)
            throw new InvalidOperationException("The SYN did not get exactly one SYN-ACK: " + Drops(stack));
        var tcp = synAck.Span[Ipv4Packet.MinHeaderLength..];
        if ((TcpFlags)tcp[13] != (TcpFlags.Syn | TcpFlags.Ack))
            throw new InvalidOperationException("Expected a SYN-ACK, got flags " + (TcpFlags)tcp[13]);
        peer.StackNext = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]) + 1;
        if (!TcpSegment.TryParse(tcp, out var seg, out _) || !TcpOptions.TryParse(seg.Options, out var offered))
            throw new InvalidOperationException("The SYN-ACK does not parse.");
        peer.StackTimestamp = offered.TimestampValue;
        stack.Transmit.Return(synAck);
        peer.PeerNext++;

        peer.Now += 100;
        stack.Receive(peer.Ack(peer.StackNext, ushort.MaxValue), peer.Now);
        peer.Tcb = stack.FindConnection(new FourTuple(StackAddress, StackPort, PeerAddress, PeerPort))
            ?? throw new InvalidOperationException("No connection after the handshake: " + Drops(stack));
        if (peer.Tcb.State != TcpState.Established || peer.Tcb.TimestampsEnabled != peer.Timestamps)
            throw new InvalidOperationException($"After the handshake: {peer.Tcb.State}, timestamps {peer.Tcb.TimestampsEnabled}.");
        stack.Accepted(peer.Tcb);
        stack.Poll(peer.Now);
        peer.DrainTransmitQueue();
        while (stack.TryTakeEvents(out _, out _)) { }
        return peer;
    }

    /// <summary>A pure ACK from the peer: SEQ = its SND.NXT, the given ACK and window, timestamps when negotiated.</summary>
    public ReadOnlySpan<byte> Ack(uint ack, ushort window) => Build(TcpFlags.Ack, PeerNext, ack, PeerSegmentOptions(), window, default);

    /// <summary>A data segment from the peer at its SND.NXT (which the caller advances).</summary>
    public ReadOnlySpan<byte> Data(ReadOnlySpan<byte> payload, TcpFlags flags = TcpFlags.Ack | TcpFlags.Psh) =>
        Build(flags, PeerNext, StackNext, PeerSegmentOptions(), ushort.MaxValue, payload);

    /// <summary>
    /// Sets a 32-bit field of a segment built here, and patches the TCP checksum incrementally (RFC 1624 eqn. 3), so
    /// that a benchmark can reuse one built segment without summing its payload again.
    /// </summary>
    public static void Patch(Span<byte> packet, int tcpOffset, uint value)
    {
        var tcp = packet[Ipv4Packet.MinHeaderLength..];
        uint old = BinaryPrimitives.ReadUInt32BigEndian(tcp[tcpOffset..]);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[tcpOffset..], value);
        uint sum = (ushort)~BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]);
        sum += (uint)(ushort)~(old >> 16) + (ushort)~(old & 0xFFFF) + (value >> 16) + (value & 0xFFFF);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Finish(sum));
    }

    /// <summary>Offsets (within the TCP header) of the fields a reused segment changes.</summary>
    public const int SequenceOffset = 4;
    public const int AcknowledgmentOffset = 8;
    public const int PeerTimestampOffset = TimestampValueOffset;
    public const int EchoedTimestampOffset = TimestampEchoOffset;

    /// <summary>
    /// Reads a segment the stack sent: returns its acknowledgment number and remembers its timestamp value (to be
    /// echoed); throws unless it is an ACK of the expected shape.
    /// </summary>
    public uint ReadSent(in OutgoingPacket packet, out uint sequence, out int payloadLength)
    {
        var tcp = packet.Span[Ipv4Packet.MinHeaderLength..];
        if ((tcp[13] & (byte)TcpFlags.Ack) == 0)
            throw new InvalidOperationException("The stack sent a segment without ACK: " + (TcpFlags)tcp[13]);
        int headerLength = (tcp[12] >> 4) * 4;
        payloadLength = tcp.Length - headerLength;
        sequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        if (Timestamps)
        {
            if (tcp[22] != TcpOptions.KindTimestamps)
                throw new InvalidOperationException("A segment without the timestamps option on a connection that has them.");
            StackTimestamp = BinaryPrimitives.ReadUInt32BigEndian(tcp[TimestampValueOffset..]);
        }
        return BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
    }

    /// <summary>Returns every queued packet to the pool; the number there were.</summary>
    public int DrainTransmitQueue()
    {
        int n = 0;
        while (Stack.Transmit.TryDequeue(out var p))
        {
            Stack.Transmit.Return(p);
            n++;
        }
        return n;
    }

    /// <summary>
    /// <paramref name="length"/> bytes of application data: the payload of the captured full-sized Linux segment
    /// (<see cref="LinuxCaptures.FullSizeData"/>, 1,448 bytes of base64 text), repeated as needed.
    /// </summary>
    public static byte[] CapturedPayload(int length)
    {
        var captured = LinuxCaptures.FullSizeData.AsSpan(Ipv4Packet.MinHeaderLength + TcpSegment.MinHeaderLength + TcpOptions.TimestampsLength);
        var data = new byte[length];
        for (int at = 0; at < length; at += captured.Length)
            captured[..Math.Min(captured.Length, length - at)].CopyTo(data.AsSpan(at));
        return data;
    }

    public static string Drops(NetStack stack) => string.Join(", ", stack.Counters.Drops());

    private TcpOptions PeerSegmentOptions() => Timestamps
        ? new TcpOptions { HasTimestamps = true, TimestampValue = PeerTimestamp, TimestampEcho = StackTimestamp }
        : default;

    /// <summary>An IPv4 packet from the peer to the stack in the reused buffer.</summary>
    private ReadOnlySpan<byte> Build(TcpFlags flags, uint seq, uint ack, TcpOptions options, ushort window, ReadOnlySpan<byte> payload)
    {
        var tcp = _segment.AsSpan(Ipv4Packet.MinHeaderLength);
        int optionsLength = options.WriteTo(tcp[TcpSegment.MinHeaderLength..]);
        int headerLength = TcpSegment.MinHeaderLength + optionsLength;
        TcpSegment.WriteHeader(tcp, PeerPort, StackPort, seq, ack, flags, window, optionsLength);
        uint payloadSum = Checksum.CopyAndAdd(payload, tcp[headerLength..], 0);
        int segmentLength = headerLength + payload.Length;
        TcpSegment.WriteChecksum(tcp[..segmentLength], headerLength, payloadSum, PeerAddress, StackAddress);
        Ipv4Packet.WriteHeader(_segment, PeerAddress, StackAddress, IpProtocol.Tcp, segmentLength, _ipIdentification++);
        return _segment.AsSpan(0, Ipv4Packet.MinHeaderLength + segmentLength);
    }
}
