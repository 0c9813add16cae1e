using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>An outgoing segment as the test sees it, copied out of the packet (IPv4 or IPv6).</summary>
internal sealed record Seg(
    IpAddress Source, IpAddress Destination, ushort SourcePort, ushort DestinationPort,
    uint Seq, uint Ack, TcpFlags Flags, ushort Window, byte[] Payload, TcpOptions Options)
{
    /// <summary>Length of the whole IP packet that carried the segment.</summary>
    public int PacketLength { get; init; }

    public bool Is(TcpFlags flags) => Flags == flags;
    public override string ToString() => $"{Flags.ToShortString()} seq {Seq} ack {Ack} win {Window} len {Payload.Length}";
}

/// <summary>
/// Drives a <see cref="NetStack"/> the way packetdrill does: inject a segment from a scripted peer at an explicit
/// time, then look at exactly what the stack sent back. No threads, no sleeps.
/// </summary>
internal sealed partial class ScriptedPeer
{
    public static readonly IpAddress StackAddress = IpAddress.Parse("198.18.0.2");
    public static readonly IpAddress PeerAddress = IpAddress.Parse("198.18.0.1");
    public static readonly IpAddress StackAddress6 = IpAddress.Parse("2001:2::2");
    public static readonly IpAddress PeerAddress6 = IpAddress.Parse("2001:2::1");
    public static readonly byte[] FixedSecret = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();

    public ScriptedPeer(NetStackOptions? options = null)
    {
        Stack = new NetStack(options ?? DefaultOptions(), new TextTracer(TraceWriter));
    }

    /// <summary>Drives a stack made elsewhere (a shard, say).</summary>
    public ScriptedPeer(NetStack stack)
    {
        Stack = stack;
    }

    public static NetStackOptions DefaultOptions(long mslMicros = 1_000_000, int receiveBuffer = 65536, int sendBuffer = 65536) => new()
    {
        Addresses = [StackAddress, StackAddress6],
        Mtu = 1500,
        MslMicros = mslMicros,
        ReceiveBufferSize = receiveBuffer,
        SendBufferSize = sendBuffer,
        IsnSecret = FixedSecret,
    };

    public NetStack Stack { get; }
    public long Now { get; set; } = 1_000_000;

    /// <summary>Injects one TCP segment from the peer and returns everything the stack sends in response.</summary>
    public List<Seg> Send(ushort sourcePort, ushort destinationPort, uint seq, uint ack, TcpFlags flags,
        ReadOnlySpan<byte> payload = default, ushort window = 65535, TcpOptions options = default, IpAddress? source = null)
    {
        var from = source ?? PeerAddress;
        Stack.Receive(BuildPacket(from, StackAddressFor(from), sourcePort, destinationPort, seq, ack, flags, window, options, payload), Now);
        return Poll();
    }

    /// <summary>Our address of the same family as <paramref name="peer"/>.</summary>
    public static IpAddress StackAddressFor(IpAddress peer) => peer.IsV4 ? StackAddress : StackAddress6;

    /// <summary>Moves the clock forward and returns what the stack sent because of it (timers).</summary>
    public List<Seg> Advance(long micros)
    {
        Now += micros;
        return Poll();
    }

    /// <summary>Lets the stack send (after application calls) and collects its output.</summary>
    public List<Seg> Poll()
    {
        Stack.Poll(Now);
        return Drain();
    }

    public List<Seg> Drain()
    {
        var result = new List<Seg>();
        while (Stack.Transmit.TryDequeue(out var packet))
        {
            var seg = Parse(packet.Span);
            Observe(seg);
            result.Add(seg);
            Stack.Transmit.Return(packet);
        }
        return result;
    }

    public static Seg Parse(ReadOnlySpan<byte> packet)
    {
        IpAddress source, destination;
        ReadOnlySpan<byte> segment;
        DropReason reason;
        if (packet[0] >> 4 == 6)
        {
            Assert.True(Ipv6Packet.TryParse(packet, out var ip6, out reason), $"bad IPv6 from the stack: {reason}");
            Assert.Equal(0, ip6.ExtensionHeadersLength);
            Assert.Equal(64, ip6.HopLimit);
            Assert.Equal(packet.Length, ip6.TotalLength);
            Assert.Equal(IpProtocol.Tcp, ip6.Protocol);
            source = ip6.Source;
            destination = ip6.Destination;
            segment = ip6.Payload;
        }
        else
        {
            Assert.True(Ipv4Packet.TryParse(packet, out var ip, out reason), $"bad IPv4 from the stack: {reason}");
            Assert.Equal(IpProtocol.Tcp, ip.Protocol);
            source = ip.Source;
            destination = ip.Destination;
            segment = ip.Payload;
        }
        Assert.True(TcpSegment.TryParse(segment, out var tcp, out reason), $"bad TCP from the stack: {reason}");
        Assert.True(tcp.VerifyChecksum(source, destination), "bad TCP checksum from the stack");
        Assert.True(TcpOptions.TryParse(tcp.Options, out var options));
        return new Seg(source, destination, tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber,
            tcp.AcknowledgmentNumber, tcp.Flags, tcp.Window, tcp.Payload.ToArray(), options) { PacketLength = packet.Length };
    }

    public static byte[] BuildPacket(IpAddress source, IpAddress destination, ushort sourcePort, ushort destinationPort,
        uint seq, uint ack, TcpFlags flags, ushort window, TcpOptions options, ReadOnlySpan<byte> payload)
    {
        int ipHeaderLength = IpHeader.LengthFor(source);
        var buffer = new byte[ipHeaderLength + 60 + payload.Length];
        var tcp = buffer.AsSpan(ipHeaderLength);
        int optionsLength = options.WriteTo(tcp[20..]);
        TcpSegment.WriteHeader(tcp, sourcePort, destinationPort, seq, ack, flags, window, optionsLength);
        payload.CopyTo(tcp[(20 + optionsLength)..]);
        int segmentLength = 20 + optionsLength + payload.Length;
        TcpSegment.WriteChecksum(tcp[..segmentLength], source, destination);
        IpHeader.Write(buffer, source, destination, IpProtocol.Tcp, segmentLength, 1);
        return buffer[..(ipHeaderLength + segmentLength)];
    }
}

/// <summary>One scripted connection from the peer's side: tracks the peer's sequence numbers for readable tests.</summary>
internal sealed partial class ScriptedConnection
{
    public const ushort ClientPort = 40000;

    public ScriptedConnection(ScriptedPeer peer, ushort serverPort = 80, uint clientIsn = 1000, ushort clientPort = ClientPort,
        IpAddress? clientAddress = null)
    {
        Peer = peer;
        ClientAddress = clientAddress ?? ScriptedPeer.PeerAddress;
        ServerPort = serverPort;
        ClientPortNumber = clientPort;
        ClientIsn = clientIsn;
        ClientNxt = clientIsn;
    }

    public ScriptedPeer Peer { get; }
    public ushort ServerPort { get; }
    /// <summary>The peer's address; its family decides whether the connection runs over IPv4 or IPv6.</summary>
    public IpAddress ClientAddress { get; }
    public IpAddress ServerAddress => ScriptedPeer.StackAddressFor(ClientAddress);
    public ushort ClientPortNumber { get; }
    public uint ClientIsn { get; }
    /// <summary>The peer's next sequence number.</summary>
    public uint ClientNxt { get; set; }
    public uint ServerIsn { get; private set; }
    /// <summary>The next sequence number the peer expects from the stack.</summary>
    public uint ServerNxt { get; set; }

    public FourTuple Tuple => new(ServerAddress, ServerPort, ClientAddress, ClientPortNumber);
    public Tcb? Tcb => Peer.Stack.FindConnection(Tuple);

    public List<Seg> Send(uint seq, uint ack, TcpFlags flags, ReadOnlySpan<byte> payload = default, ushort window = 65535, TcpOptions options = default) =>
        Peer.Send(ClientPortNumber, ServerPort, seq, ack, flags, payload, window, Stamp(flags, options), ClientAddress);

    /// <summary>Sends the SYN; returns the stack's answer.</summary>
    public List<Seg> SendSyn(TcpOptions? options = null, ushort window = 65535)
    {
        var result = Send(ClientNxt, 0, TcpFlags.Syn, default, window, options ?? new TcpOptions { Mss = 1460 });
        ClientNxt++;
        if (result.Count == 1 && result[0].Is(TcpFlags.Syn | TcpFlags.Ack))
        {
            ServerIsn = result[0].Seq;
            ServerNxt = ServerIsn + 1;
        }
        return result;
    }

    /// <summary>Completes the three-way handshake and asserts each step.</summary>
    public Tcb Establish(TcpOptions? options = null, ushort window = 65535)
    {
        var synAck = Assert.Single(SendSyn(options, window));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Empty(SendAck(window: window));
        var tcb = Assert.IsType<Tcb>(Tcb);
        Assert.Equal(TcpState.Established, tcb.State);
        return tcb;
    }

    public List<Seg> SendAck(uint? ack = null, ushort window = 65535) =>
        Send(ClientNxt, ack ?? ServerNxt, TcpFlags.Ack, default, window);

    public List<Seg> SendData(ReadOnlySpan<byte> data, TcpFlags extra = TcpFlags.Psh, ushort window = 65535)
    {
        var result = Send(ClientNxt, ServerNxt, TcpFlags.Ack | extra, data, window);
        ClientNxt += (uint)data.Length;
        return result;
    }

    public List<Seg> SendFin()
    {
        var result = Send(ClientNxt, ServerNxt, TcpFlags.Fin | TcpFlags.Ack);
        ClientNxt++;
        return result;
    }

    /// <summary>
    /// Our active close, played out: the application closes, the peer ACKs our FIN and sends its own; the
    /// connection ends in TIME-WAIT (RFC 9293 §3.6, Figure 12). Returns the peer's view of our last ACK.
    /// </summary>
    public List<Seg> CloseActivelyToTimeWait(Tcb tcb)
    {
        tcb.Close();
        Peer.Poll();
        ServerNxt++;
        SendAck();
        return SendFin();
    }
}
