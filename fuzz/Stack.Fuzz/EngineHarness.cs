using System.Buffers.Binary;
using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Wire;
using static TunStack.Fuzz.HarnessViolation;

namespace TunStack.Fuzz;

/// <summary>
/// Plays a fuzz input against a <see cref="NetStack"/> with a listener on port 80 as a sequence of steps, each at an
/// explicit time: segments from a peer, application calls and pure clock advances. Segments are described by their
/// content (flags, window, options bytes, payload length) with sequence and acknowledgment numbers relative to the
/// connection's current state, and are built with valid IPv4 and TCP headers and checksums around that content, so
/// they get past the parsers into the state machine. The input layout is <see cref="EngineInput"/>'s.
/// <para>
/// After every step the harness checks: no internal error was recorded; every packet the stack sent is valid
/// (<see cref="WireHarness.CheckOutgoing"/>) and fits the MTU; no RST answered a RST; the stack's data bytes are the
/// application's bytes at the right sequence numbers; the bytes the application reads are the peer's bytes in
/// order; SND.UNA ≤ SND.NXT ≤ SND.MAX and the buffers stay within their sizes; the next timer deadline lies in the
/// future. Payload bytes are a function of their absolute sequence number, so any mix-up of data is visible.
/// </para>
/// </summary>
internal sealed class EngineHarness
{
    public const ushort ListenPort = 80;
    public const ushort ClosedPort = 81;
    /// <summary>Client ports the records can choose from (two bits).</summary>
    public static readonly ushort[] ClientPorts = [40000, 40001, 40002, 40003];
    public static readonly IpAddress StackAddress = IpAddress.Parse("198.18.0.2");
    /// <summary>Peer addresses the records can choose from.</summary>
    public static readonly IpAddress[] PeerAddresses = [IpAddress.Parse("198.18.0.1"), IpAddress.Parse("198.18.1.7")];
    public static readonly IpAddress StackAddress6 = IpAddress.Parse("2001:2::2");
    /// <summary>Peer addresses over IPv6 (<see cref="EngineConfig.Ipv6"/>): the second differs in its upper 64 bits.</summary>
    public static readonly IpAddress[] PeerAddresses6 = [IpAddress.Parse("2001:2::1"), IpAddress.Parse("2001:2:0:1::7")];

    private const long StartMicros = 1_000_000;
    private const int MaxPacketsPerStep = 4096;

    private readonly NetStack _stack;
    private readonly EngineConfig _config;
    private readonly Dictionary<Tcb, AppSide> _apps = new(ReferenceEqualityComparer.Instance);
    /// <summary>Connections whose Established event the application has seen.</summary>
    private readonly HashSet<Tcb> _established = new(ReferenceEqualityComparer.Instance);
    /// <summary>Per (peer address, client port): the peer's next sequence number and the last ISS we showed it.</summary>
    private readonly Dictionary<(IpAddress, ushort), PeerView> _peers = new();
    private readonly byte[] _readBuffer = new byte[65536];
    private readonly IpAddress _stackAddress;
    private readonly IpAddress[] _peerAddresses;
    private long _now = StartMicros;
    private int _step;

    private EngineHarness(EngineConfig config)
    {
        _config = config;
        _stackAddress = config.Ipv6 ? StackAddress6 : StackAddress;
        _peerAddresses = config.Ipv6 ? PeerAddresses6 : PeerAddresses;
        _stack = new NetStack(new NetStackOptions
        {
            Address = _stackAddress,
            Mtu = config.Mtu,
            MslMicros = config.MslMicros,
            ReceiveBufferSize = config.ReceiveBufferSize,
            SendBufferSize = config.SendBufferSize,
            Backlog = config.Backlog,
            MaxTimeWait = config.MaxTimeWait,
            IsnSecret = new byte[16],
        }, TraceTo is { } writer ? new TextTracer(writer) : config.Trace ? new TextTracer(TextWriter.Null) : null);
        _stack.Listen(ListenPort);
    }

    /// <summary>When set, every run traces its segments here (for reading a crash), whatever the input's config says.</summary>
    public static TextWriter? TraceTo { get; set; }

    /// <summary>The bytes the peer puts at sequence number <paramref name="seq"/>: a function of the number alone.</summary>
    public static byte PeerByte(uint seq) => (byte)((seq * 0x9E3779B1u) >> 24);

    /// <summary>The application's byte at offset <paramref name="position"/> of its stream.</summary>
    public static byte AppByte(long position) => (byte)(position * 131 + (position >> 9) + 17);

    /// <summary>Runs one input; throws <see cref="HarnessViolation"/> (or whatever escaped the stack) on failure.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        var reader = new EngineInput.Reader(input);
        var harness = new EngineHarness(EngineConfig.From(reader.ReadByte(), reader.ReadByte()));
        while (!reader.AtEnd)
            harness.Step(ref reader);
    }

    private void Step(ref EngineInput.Reader reader)
    {
        _step++;
        byte op = reader.ReadByte();
        bool incomingRst = false;
        switch ((EngineInput.Op)(op & EngineInput.OpMask))
        {
            case EngineInput.Op.Segment0:
            case EngineInput.Op.Segment1:
            case EngineInput.Op.Segment2:
            case EngineInput.Op.Segment3:
                incomingRst = SendSegment(op, ref reader);
                break;
            case EngineInput.Op.AppSend:
                AppSend(op, reader.ReadByte());
                break;
            case EngineInput.Op.AppReceive:
                AppReceive(op, reader.ReadByte());
                break;
            case EngineInput.Op.AppClose:
                AppClose(op);
                break;
            case EngineInput.Op.Advance:
                _now += EngineInput.TimeStep(reader.ReadByte());
                break;
        }
        long deadline = _stack.Poll(_now);
        Check(deadline > _now, $"step {_step}: Poll returned deadline {deadline} <= now {_now}: a due timer did not fire");
        DrainOutput(incomingRst);
        HandleEvents();
        CheckInvariants();
    }

    /// <summary>Builds and injects one segment; returns true when it carried RST.</summary>
    private bool SendSegment(byte op, ref EngineInput.Reader reader)
    {
        var seg = EngineInput.SegmentRecord.Read(op, ref reader);
        _now += EngineInput.TimeStep(seg.TimeStep);
        var peerAddress = _peerAddresses[seg.PeerIndex];
        ushort clientPort = ClientPorts[seg.PortIndex];
        ushort localPort = seg.ToClosedPort ? ClosedPort : ListenPort;
        var peer = Peer(peerAddress, clientPort);
        var tcb = _stack.FindConnection(new FourTuple(_stackAddress, localPort, peerAddress, clientPort));

        uint seqBase = tcb is not null && tcb.State != TcpState.Closed ? tcb.RcvNxt.Value : peer.NextSeq;
        uint seq = seg.SeqMode switch
        {
            0 => seqBase + (uint)seg.SeqOffset,
            1 => seqBase + (uint)(seg.SeqOffset * 1024),
            2 => seqBase + ((uint)seg.SeqOffset << 16),
            _ => seg.SeqAbsolute,
        };
        uint sndNxt = tcb?.SndNxt.Value ?? peer.ServerIss + 1;
        uint ack = seg.AckMode switch
        {
            0 => sndNxt + (uint)seg.AckOffset,
            1 => (tcb?.SndUna.Value ?? peer.ServerIss) + (uint)seg.AckOffset,
            2 => (tcb?.SndMax.Value ?? sndNxt) + (uint)(seg.AckOffset * 1024),
            _ => seg.AckAbsolute,
        };

        var flags = (TcpFlags)seg.Flags;
        uint firstDataSeq = seq + ((flags & TcpFlags.Syn) != 0 ? 1u : 0u);
        var payload = new byte[seg.PayloadLength];
        for (int i = 0; i < payload.Length; i++)
            payload[i] = PeerByte(firstDataSeq + (uint)i);

        var packet = new TcpPacketBuilder
        {
            Source = peerAddress, Destination = _stackAddress, SourcePort = clientPort, DestinationPort = localPort,
            Seq = seq, Ack = ack, Flags = flags, Window = seg.Window, UrgentPointer = seg.UrgentPointer,
            Options = seg.Options, Payload = payload, Identification = (ushort)_step,
        }.Build();
        _stack.Receive(packet, _now);
        if (_stack.Counters.LastInternalError is { } error)
            throw new HarnessViolation($"step {_step}: internal error on segment {flags.ToShortString()} seq {seq} ack {ack}", error);

        uint segEnd = firstDataSeq + (uint)payload.Length + ((flags & TcpFlags.Fin) != 0 ? 1u : 0u);
        if ((flags & TcpFlags.Rst) == 0 && new SeqNumber(segEnd) > new SeqNumber(peer.NextSeq) || (flags & TcpFlags.Syn) != 0)
            peer.NextSeq = segEnd;
        return (flags & TcpFlags.Rst) != 0;
    }

    private PeerView Peer(IpAddress address, ushort port)
    {
        if (!_peers.TryGetValue((address, port), out var peer))
        {
            peer = new PeerView { NextSeq = 1000u + 1_000_000u * (uint)Array.IndexOf(ClientPorts, port) };
            _peers.Add((address, port), peer);
        }
        return peer;
    }

    private Tcb? Connection(byte op)
    {
        int index = (op >> 3) & 7; // port (2 bits) and peer address (1 bit)
        var tuple = new FourTuple(_stackAddress, ListenPort, _peerAddresses[index >> 2], ClientPorts[index & 3]);
        var tcb = _stack.FindConnection(tuple);
        return tcb is not null && _config.ApplicationWaitsForEstablished && !_established.Contains(tcb) ? null : tcb;
    }

    private AppSide App(Tcb tcb)
    {
        if (!_apps.TryGetValue(tcb, out var app))
        {
            app = new AppSide();
            _apps.Add(tcb, app);
        }
        return app;
    }

    private void AppSend(byte op, byte amount)
    {
        if (Connection(op) is not { } tcb)
            return;
        var app = App(tcb);
        var data = new byte[amount * 64 + 1];
        for (int i = 0; i < data.Length; i++)
            data[i] = AppByte(app.Sent + i);
        int accepted = tcb.Send(data);
        Check(accepted >= 0 && accepted <= data.Length, $"step {_step}: Send accepted {accepted} of {data.Length}");
        app.Sent += accepted;
    }

    private void AppReceive(byte op, byte amount)
    {
        if (Connection(op) is { } tcb)
            Read(tcb, amount == 0 ? _readBuffer.Length : amount * 16);
    }

    private void AppClose(byte op)
    {
        if (Connection(op) is not { } tcb)
            return;
        if ((op & 0x40) != 0) tcb.Abort();
        else tcb.Close();
    }

    private void Read(Tcb tcb, int max)
    {
        var app = App(tcb);
        int n = tcb.Receive(_readBuffer.AsSpan(0, Math.Min(max, _readBuffer.Length)));
        Check(n >= 0 && n <= max, $"step {_step}: Receive returned {n}");
        uint first = tcb.Irs.Value + 1 + (uint)app.Received;
        for (int i = 0; i < n; i++)
        {
            if (_readBuffer[i] != PeerByte(first + (uint)i))
                throw new HarnessViolation(
                    $"step {_step}: {tcb}: byte {app.Received + i} of the received stream is 0x{_readBuffer[i]:x2}, " +
                    $"the peer sent 0x{PeerByte(first + (uint)i):x2} at seq {first + (uint)i}");
        }
        app.Received += n;
    }

    private void HandleEvents()
    {
        while (_stack.TryTakeEvents(out var tcb, out var events))
        {
            if ((events & ConnectionEvents.Established) != 0)
                _established.Add(tcb);
            if ((events & ConnectionEvents.Readable) != 0 && _config.ApplicationReads)
                Read(tcb, _readBuffer.Length);
            if ((events & ConnectionEvents.Closed) != 0)
            {
                if (_config.ApplicationReads) Read(tcb, _readBuffer.Length);
                _apps.Remove(tcb);
                _established.Remove(tcb);
            }
        }
    }

    private void DrainOutput(bool incomingRst)
    {
        int count = 0;
        while (_stack.Transmit.TryDequeue(out var packet))
        {
            try
            {
                Check(++count <= MaxPacketsPerStep, $"step {_step}: more than {MaxPacketsPerStep} packets from one step");
                CheckOutgoingSegment(packet.Span, incomingRst);
            }
            finally
            {
                _stack.Transmit.Return(packet);
            }
        }
    }

    private void CheckOutgoingSegment(ReadOnlySpan<byte> packet, bool incomingRst)
    {
        WireHarness.CheckOutgoing(packet, _config.Mtu);
        Check(packet.Length <= Math.Max(_config.Mtu, 576), $"step {_step}: a {packet.Length}-byte packet with MTU {_config.Mtu}");
        IpAddress destination;
        ReadOnlySpan<byte> tcp;
        if (_config.Ipv6)
        {
            Check(Ipv6Packet.TryParse(packet, out var ip6, out _), $"step {_step}: an IPv4 packet from an IPv6-only stack");
            if (ip6.Protocol != IpProtocol.Tcp)
                return;
            destination = ip6.Destination;
            tcp = ip6.Payload;
        }
        else
        {
            Check(Ipv4Packet.TryParse(packet, out var ip, out _), $"step {_step}: an IPv6 packet from an IPv4-only stack");
            if (ip.Protocol != IpProtocol.Tcp)
                return;
            destination = ip.Destination;
            tcp = ip.Payload;
        }
        TcpSegment.TryParse(tcp, out var seg, out _);
        var flags = seg.Flags;
        // RFC 9293 §3.10.7: a RST is never sent in response to a RST.
        Check(!(incomingRst && (flags & TcpFlags.Rst) != 0), $"step {_step}: a RST answered a RST");

        var peer = Peer(destination, seg.DestinationPort);
        if ((flags & (TcpFlags.Syn | TcpFlags.Ack)) == (TcpFlags.Syn | TcpFlags.Ack))
            peer.ServerIss = seg.SequenceNumber;
        if (seg.Payload.IsEmpty || seg.SourcePort != ListenPort)
            return;
        // Data: our bytes at their sequence numbers (retransmissions included).
        var tcb = _stack.FindConnection(new FourTuple(_stackAddress, seg.SourcePort, destination, seg.DestinationPort));
        Check(tcb is not null, $"step {_step}: data sent for a connection that does not exist");
        Check((flags & TcpFlags.Syn) == 0, $"step {_step}: data on a SYN");
        long position = (long)(seg.SequenceNumber - (tcb!.Iss.Value + 1));
        var payload = seg.Payload;
        for (int i = 0; i < payload.Length; i++)
        {
            if (payload[i] != AppByte(position + i))
                throw new HarnessViolation(
                    $"step {_step}: {tcb}: sent byte at stream offset {position + i} is 0x{payload[i]:x2}, " +
                    $"the application wrote 0x{AppByte(position + i):x2}");
        }
        var app = App(tcb);
        Check(position + payload.Length <= app.Sent, $"step {_step}: {tcb}: sent bytes up to {position + payload.Length}, " +
                                                     $"the application wrote {app.Sent}");
    }

    private void CheckInvariants()
    {
        if (_stack.Counters.LastInternalError is { } error)
            throw new HarnessViolation($"step {_step}: internal error", error);
        Check(_stack.Connections.Count <= _peerAddresses.Length * ClientPorts.Length,
            $"step {_step}: {_stack.Connections.Count} connections from {_peerAddresses.Length * ClientPorts.Length} tuples");
        foreach (var tcb in _stack.Connections)
        {
            Check(tcb.SndUna <= tcb.SndNxt && tcb.SndNxt <= tcb.SndMax,
                $"step {_step}: {tcb}: SND.UNA {tcb.SndUna} SND.NXT {tcb.SndNxt} SND.MAX {tcb.SndMax}");
            Check(tcb.BytesQueued >= 0 && tcb.BytesQueued <= _config.SendBufferSize, $"step {_step}: {tcb}: {tcb.BytesQueued} bytes queued");
            Check(tcb.BytesAvailable >= 0 && tcb.BytesAvailable <= _config.ReceiveBufferSize,
                $"step {_step}: {tcb}: {tcb.BytesAvailable} bytes available");
            Check(tcb.State != TcpState.Closed, $"step {_step}: {tcb}: a CLOSED connection is still in the table");
        }
    }

    private sealed class AppSide
    {
        public long Sent;
        public long Received;
    }

    private sealed class PeerView
    {
        public uint NextSeq;
        public uint ServerIss;
    }
}
