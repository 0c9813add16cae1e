using TunStack.Fuzz;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// A stack with a listener on port 80 (port 81 is closed), driven by a <see cref="ScriptedPeer"/>, for injecting
/// malformed or hostile packets: what each one caused is read back exactly (segments sent, drop counters), and
/// <see cref="AssertStillServes"/> proves afterwards that the stack still accepts and serves a connection.
/// </summary>
internal sealed class TargetStack
{
    public const ushort ListenPort = 80;
    public const ushort ClosedPort = 81;
    public const ushort AttackerPort = 40000;

    private ushort _nextClientPort = 50000;

    public TargetStack(NetStackOptions? options = null)
    {
        Peer = new ScriptedPeer(options);
        Peer.Stack.Listen(ListenPort);
    }

    public ScriptedPeer Peer { get; }
    public NetStack Stack => Peer.Stack;
    public StackCounters Counters => Stack.Counters;

    /// <summary>A valid SYN-less segment from the peer to the listener, to be adjusted and built by the test.</summary>
    public static TcpPacketBuilder Packet(TcpFlags flags = TcpFlags.Ack, uint seq = 1000, uint ack = 0,
        ushort destinationPort = ListenPort, ushort sourcePort = AttackerPort) => new()
    {
        Source = ScriptedPeer.PeerAddress, Destination = ScriptedPeer.StackAddress,
        SourcePort = sourcePort, DestinationPort = destinationPort, Seq = seq, Ack = ack, Flags = flags,
    };

    /// <summary>Injects one raw packet, lets the stack send, and returns what it sent.</summary>
    public List<Seg> Inject(byte[] packet)
    {
        Stack.Receive(packet, Peer.Now);
        return Peer.Poll();
    }

    /// <summary>
    /// Injects <paramref name="packet"/> and asserts that it was dropped for <paramref name="reason"/> (that counter
    /// grew by one and no other) and that nothing was sent in reply.
    /// </summary>
    public void AssertDropped(byte[] packet, DropReason reason)
    {
        long before = Counters.Dropped(reason), total = Counters.TotalDropped, segments = Counters.SegmentsReceived;
        int connections = Stack.Connections.Count;
        Assert.Empty(Inject(packet));
        Assert.Equal(before + 1, Counters.Dropped(reason));
        Assert.Equal(total + 1, Counters.TotalDropped);
        Assert.Equal(connections, Stack.Connections.Count);
        if (IsIpOrHeaderDrop(reason))
            Assert.Equal(segments, Counters.SegmentsReceived); // never reached the state machine
    }

    private static bool IsIpOrHeaderDrop(DropReason reason) => reason is DropReason.TooShort or DropReason.BadIpVersion
        or DropReason.BadIpHeaderLength or DropReason.BadIpTotalLength or DropReason.BadIpChecksum or DropReason.IpFragment
        or DropReason.NotForUs or DropReason.UnsupportedProtocol or DropReason.BadTcpDataOffset or DropReason.BadTcpChecksum
        or DropReason.BadTcpOption or DropReason.BadTcpPort or DropReason.BadSourceAddress;

    /// <summary>A new connection from a fresh client port, established.</summary>
    public (ScriptedConnection Connection, Tcb Tcb) Connect(TcpOptions? synOptions = null, ushort window = 65535)
    {
        var c = new ScriptedConnection(Peer, ListenPort, clientIsn: 7_000_000u + _nextClientPort, clientPort: _nextClientPort++);
        return (c, c.Establish(synOptions, window));
    }

    /// <summary>
    /// The stack still works: no internal error was recorded, and a fresh handshake and a data exchange in both
    /// directions on the listener succeed with exactly the expected segments.
    /// </summary>
    public void AssertStillServes()
    {
        Assert.Null(Counters.LastInternalError);
        var (c, tcb) = Connect();

        Assert.Empty(c.SendData("ping"u8)); // one small segment: its ACK is delayed and rides on the answer
        var buffer = new byte[16];
        Assert.Equal("ping", System.Text.Encoding.ASCII.GetString(buffer, 0, tcb.Receive(buffer)));

        Assert.Equal(4, tcb.Send("pong"u8));
        var data = Assert.Single(Peer.Poll());
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, data.Flags);
        Assert.Equal(c.ClientNxt, data.Ack);
        Assert.Equal(c.ServerNxt, data.Seq);
        Assert.Equal("pong"u8.ToArray(), data.Payload);
        c.ServerNxt += 4;
        Assert.Empty(c.SendAck());
        Assert.Equal(tcb.SndMax, tcb.SndUna);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.Null(Counters.LastInternalError);
    }
}

/// <summary>Lets a test change a few fields of a packet description inline.</summary>
internal static class TcpPacketBuilderExtensions
{
    public static TcpPacketBuilder With(this TcpPacketBuilder builder, Action<TcpPacketBuilder> change)
    {
        change(builder);
        return builder;
    }
}
