using System.Text;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

internal sealed partial class ScriptedPeer
{
    private readonly Dictionary<(ushort StackPort, ushort PeerPort), uint> _latestTsVal = new();

    /// <summary>Everything the stack did, as its <c>--trace</c> lines: put it in assertion messages.</summary>
    public StringWriter TraceWriter { get; } = new();
    public string Trace => TraceWriter.ToString();

    /// <summary>The TSval of the latest segment the stack sent from <paramref name="stackPort"/> to <paramref name="peerPort"/>.</summary>
    public uint LatestTsVal(ushort stackPort, ushort peerPort) => _latestTsVal.GetValueOrDefault((stackPort, peerPort));

    private void Observe(Seg seg)
    {
        if (seg.Options.HasTimestamps)
            _latestTsVal[(seg.SourcePort, seg.DestinationPort)] = seg.Options.TimestampValue;
    }

    /// <summary>
    /// Hands one segment to the stack without polling: replies the segment forces at once (immediate ACKs) wait in the
    /// transmit queue with everything else until the next <see cref="Poll"/>. Several injections and one poll are a
    /// batch, as the event loop delivers it.
    /// </summary>
    public void Inject(ushort sourcePort, ushort destinationPort, uint seq, uint ack, TcpFlags flags,
        ReadOnlySpan<byte> payload = default, ushort window = 65535, TcpOptions options = default) =>
        Stack.Receive(BuildPacket(PeerAddress, StackAddress, sourcePort, destinationPort, seq, ack, flags, window, options, payload), Now);
}

/// <summary>
/// The peer's side of the options that follow the handshake: timestamps on every segment (RFC 7323 §3.2), SACK blocks
/// (RFC 2018), and helpers that name sequence numbers by stream offset. For a connection the stack opened (active
/// open), "server" still means the stack and "client" the scripted peer.
/// </summary>
internal sealed partial class ScriptedConnection
{
    /// <summary>Both SYNs carried timestamps: the peer stamps every segment it sends (RFC 7323 §3.2).</summary>
    public bool Timestamps { get; set; }

    /// <summary>The peer's timestamp clock: one tick per millisecond of <see cref="ScriptedPeer.Now"/> from this base.</summary>
    public uint TsBase { get; set; } = 5_000_000;
    public uint TsVal => unchecked(TsBase + (uint)(Peer.Now / 1000));

    /// <summary>What the peer echoes: the TSval of the latest segment the stack sent on this connection.</summary>
    public uint TsEcr => Peer.LatestTsVal(ServerPort, ClientPortNumber);

    /// <summary>The sequence number of the peer's data byte at <paramref name="offset"/> (0 = the first after its SYN).</summary>
    public uint PeerSeq(int offset) => unchecked(ClientIsn + 1 + (uint)offset);

    /// <summary>The sequence number of the stack's data byte at <paramref name="offset"/> (0 = the first after its SYN).</summary>
    public uint StackSeq(int offset) => unchecked(ServerIsn + 1 + (uint)offset);

    /// <summary>Adds the peer's timestamps unless the caller set them or the segment is a RST.</summary>
    private TcpOptions Stamp(TcpFlags flags, TcpOptions options)
    {
        if (Timestamps && !options.HasTimestamps && (flags & TcpFlags.Rst) == 0)
        {
            options.HasTimestamps = true;
            options.TimestampValue = TsVal;
            options.TimestampEcho = TsEcr;
        }
        return options;
    }

    /// <summary>The stack's SYN-ACK, once <see cref="EstablishWith"/> has seen it.</summary>
    public Seg? SynAck { get; private set; }

    /// <summary>The SYN options of a modern peer (Linux): MSS, SACK-permitted, timestamps, window scale.</summary>
    public TcpOptions SynOptions(bool sack = true, bool timestamps = true, byte? windowScale = null, ushort mss = 1460)
    {
        var options = new TcpOptions { Mss = mss, SackPermitted = sack, WindowScale = windowScale };
        if (timestamps)
        {
            options.HasTimestamps = true;
            options.TimestampValue = TsVal;
        }
        return options;
    }

    /// <summary>
    /// The three-way handshake with the options the peer offers; the final ACK arrives <paramref name="rttMicros"/> after
    /// the SYN-ACK, which gives the stack its first RTT sample. From then on the peer stamps its segments if both SYNs
    /// carried timestamps.
    /// </summary>
    public Tcb EstablishWith(bool sack = true, bool timestamps = true, byte? windowScale = null, ushort mss = 1460,
        ushort window = 65535, long rttMicros = 0)
    {
        var synAck = Assert.Single(SendSyn(SynOptions(sack, timestamps, windowScale, mss), window));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        SynAck = synAck;
        Timestamps = synAck.Options.HasTimestamps;
        Peer.Now += rttMicros;
        Assert.Empty(SendAck(window: window));
        var tcb = Assert.IsType<Tcb>(Tcb);
        Assert.Equal(TcpState.Established, tcb.State);
        return tcb;
    }

    /// <summary>
    /// Active open: the stack connects to the peer's <paramref name="peerPort"/>; returns the connection as the peer sees
    /// it (its ISN is <paramref name="peerIsn"/>), the stack's TCB and the SYN it sent.
    /// </summary>
    public static (ScriptedConnection Connection, Tcb Tcb, Seg Syn) ConnectFromStack(ScriptedPeer peer, ushort peerPort = 80,
        uint peerIsn = 9000)
    {
        // The stack's clock is the time of its latest Receive or Poll; bring it to now before connecting.
        peer.Stack.Poll(peer.Now);
        var tcb = peer.Stack.Connect(ScriptedPeer.PeerAddress, peerPort);
        var syn = Assert.Single(peer.Poll());
        Assert.Equal(TcpFlags.Syn, syn.Flags);
        var c = new ScriptedConnection(peer, serverPort: tcb.Tuple.LocalPort, clientIsn: peerIsn, clientPort: peerPort);
        c.ServerIsn = syn.Seq;
        c.ServerNxt = syn.Seq + 1;
        return (c, tcb, syn);
    }

    /// <summary>The peer's SYN-ACK to the stack's SYN (active open); returns the stack's answer.</summary>
    public List<Seg> SendSynAck(TcpOptions options, ushort window = 65535, uint? ack = null)
    {
        var result = Send(ClientNxt, ack ?? ServerNxt, TcpFlags.Syn | TcpFlags.Ack, default, window, options);
        ClientNxt++;
        return result;
    }

    /// <summary>Peer data at stream offset <paramref name="offset"/>, without moving <see cref="ClientNxt"/>.</summary>
    public List<Seg> SendAt(int offset, int length, TcpFlags flags = TcpFlags.Ack) =>
        Send(PeerSeq(offset), ServerNxt, flags, Pattern(offset, length));

    /// <summary>As <see cref="SendAt"/>, without polling (see <see cref="ScriptedPeer.Inject"/>).</summary>
    public void InjectAt(int offset, int length, TcpFlags flags = TcpFlags.Ack) =>
        Peer.Inject(ClientPortNumber, ServerPort, PeerSeq(offset), ServerNxt, flags, Pattern(offset, length), 65535,
            Stamp(flags, default));

    /// <summary>
    /// An ACK of the stack's data up to stream offset <paramref name="ackOffset"/> carrying SACK blocks, each given as
    /// [from, to) stream offsets of the stack's data, first block first.
    /// </summary>
    public List<Seg> SendSack(int ackOffset, params (int From, int To)[] blocks)
    {
        var options = new TcpOptions();
        foreach (var (from, to) in blocks)
            options.AddSackBlock(new SackBlock(StackSeq(from), StackSeq(to)));
        return Send(ClientNxt, StackSeq(ackOffset), TcpFlags.Ack, default, 65535, options);
    }

    /// <summary>A plain ACK of the stack's data up to stream offset <paramref name="ackOffset"/>.</summary>
    public List<Seg> SendAckOf(int ackOffset, ushort window = 65535) =>
        Send(ClientNxt, StackSeq(ackOffset), TcpFlags.Ack, default, window);

    /// <summary>The SACK blocks of a segment the stack sent, as [from, to) stream offsets of the peer's data.</summary>
    public (int From, int To)[] PeerSackBlocks(Seg seg)
    {
        var blocks = new (int, int)[seg.Options.SackBlockCount];
        for (int i = 0; i < blocks.Length; i++)
            blocks[i] = ((int)(seg.Options.SackBlocks[i].Left - PeerSeq(0)), (int)(seg.Options.SackBlocks[i].Right - PeerSeq(0)));
        return blocks;
    }

    /// <summary>The bytes of the peer's stream at <paramref name="offset"/>: recognisable, never all equal.</summary>
    public static byte[] Pattern(int offset, int length)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
            bytes[i] = (byte)((offset + i) * 7 + (offset + i) / 251);
        return bytes;
    }

    /// <summary>Everything the application can read now.</summary>
    public static byte[] ReadAll(Tcb tcb)
    {
        var buffer = new byte[tcb.BytesAvailable];
        int n = tcb.Receive(buffer);
        return buffer[..n];
    }

    /// <summary>One line per segment, for assertion messages.</summary>
    public static string Describe(IEnumerable<Seg> segments)
    {
        var sb = new StringBuilder();
        foreach (var s in segments) sb.AppendLine(s.ToString());
        return sb.ToString();
    }
}
