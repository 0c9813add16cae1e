using System.Security.Cryptography;
using TunStack.Diagnostics;
using TunStack.Ip;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack;

/// <summary>
/// The stack as a pure state machine ("sans I/O"): packets and the current time go in through
/// <see cref="Receive"/> and <see cref="Poll"/>; packets to send come out of <see cref="Transmit"/>; things the
/// application should know come out of <see cref="TryTakeEvents"/>. No threads, sockets or clocks inside, so
/// every behaviour can be driven deterministically by a test. Not thread-safe: one owner calls it.
/// </summary>
public sealed class NetStack
{
    private readonly Queue<Tcb> _events = new();

    public NetStack(NetStackOptions options, IStackTracer? tracer = null)
    {
        Options = options;
        Tracer = tracer;
        Transmit = new TransmitQueue(Math.Max(options.Mtu, 576));
        byte[] secret = options.IsnSecret ?? RandomNumberGenerator.GetBytes(16);
        Tcp = new TcpLayer(this, new IsnGenerator(secret), new Tcp.Listen.SynCookies(secret));
    }

    public NetStackOptions Options { get; }
    public StackCounters Counters { get; } = new();
    public IStackTracer? Tracer { get; set; }
    public TransmitQueue Transmit { get; }

    /// <summary>The time of the latest <see cref="Receive"/> or <see cref="Poll"/> call, in microseconds.</summary>
    public long Now { get; private set; }

    internal TcpLayer Tcp { get; }
    internal bool InSegmentArrival { get; private set; }

    /// <summary>Live connections (every state but CLOSED), for diagnostics.</summary>
    public IReadOnlyCollection<Tcb> Connections => Tcp.Connections;

    public Tcb? FindConnection(in FourTuple tuple) => Tcp.Find(tuple);

    /// <summary>True while <paramref name="tuple"/> is in TIME-WAIT (a record, no longer a <see cref="Tcb"/>).</summary>
    public bool IsInTimeWait(in FourTuple tuple) => Tcp.IsInTimeWait(tuple);

    /// <summary>Connections in TIME-WAIT.</summary>
    public int TimeWaitCount => Tcp.TimeWaitCount;

    /// <summary>
    /// Passive OPEN on <paramref name="port"/> (RFC 9293 §3.10.1). <paramref name="backlog"/> bounds the accept queue
    /// (established connections not yet accepted, see <see cref="Accepted"/>); <paramref name="halfOpenLimit"/> the
    /// connections in SYN-RECEIVED, beyond which SYN cookies answer.
    /// </summary>
    public ListenEndpoint Listen(ushort port, int? backlog = null, int? halfOpenLimit = null) =>
        Tcp.Listen(port, backlog ?? Options.Backlog, halfOpenLimit ?? Options.HalfOpenLimit);

    /// <summary>The application accepted <paramref name="connection"/>: it leaves its listener's accept queue.</summary>
    public void Accepted(Tcb connection) => Tcp.Accepted(connection);

    /// <summary>Pooled memory the connections' send and receive buffers hold now.</summary>
    public BufferBudget Buffers { get; } = new();

    /// <summary>
    /// Active OPEN (RFC 9293 §3.10.1): connects to <paramref name="remote"/>:<paramref name="port"/> from our address and
    /// an ephemeral port (RFC 6056), or from <paramref name="localPort"/>. The SYN goes out at the next <see cref="Poll"/>;
    /// the connection raises <see cref="ConnectionEvents.Established"/> or <see cref="ConnectionEvents.Closed"/>
    /// (refused, timed out).
    /// </summary>
    public Tcb Connect(IpAddress remote, ushort port, ushort localPort = 0) =>
        Tcp.Connect(Options.Address, remote, port, localPort);

    /// <summary>
    /// One packet from the device. Never throws for any input: a malformed or unwanted packet is dropped and
    /// counted. Replies are queued; call <see cref="Poll"/> to let connections send.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> packet, long nowMicros)
    {
        Now = nowMicros;
        Counters.PacketsReceived++;
        InSegmentArrival = true;
        DropReason reason;
        try
        {
            reason = ReceiveIp(packet);
        }
        catch (Exception e)
        {
            // Never let one packet take the stack down; the counter and the trace make the bug visible.
            Counters.LastInternalError = e;
            reason = DropReason.InternalError;
        }
        finally
        {
            InSegmentArrival = false;
        }
        if (reason != DropReason.None)
        {
            Counters.Drop(reason);
            if (!IsTracedAsSegment(reason)) Tracer?.OnPacketDropped(nowMicros, reason);
        }
    }

    /// <summary>Drops decided by the TCP state machine already appear in the trace as the segment's own line.</summary>
    private static bool IsTracedAsSegment(DropReason reason) =>
        reason is DropReason.NoListener or DropReason.Unacceptable or DropReason.BacklogFull or DropReason.Stale
            or DropReason.AcceptQueueFull or DropReason.ConnectionLimit or DropReason.MemoryLimit or DropReason.PawsRejected;

    private DropReason ReceiveIp(ReadOnlySpan<byte> packet)
    {
        if (packet.IsEmpty)
            return DropReason.TooShort;
        if (packet[0] >> 4 == 6)
            return DropReason.Ipv6NotSupported; // IPv6 comes later
        if (packet[0] >> 4 != 4)
            return DropReason.BadIpVersion;
        if (!Ipv4Packet.TryParse(packet, out var ip, out var reason))
            return reason;
        if (ip.Destination != Options.Address)
            return DropReason.NotForUs;
        if (ip.IsFragment)
            return DropReason.IpFragment; // reassembly is not supported; peers use PMTUD/DF
        return ip.Protocol switch
        {
            IpProtocol.Tcp => SourceAddress.IsValidUnicast(ip.Source, Options.Address)
                ? Tcp.SegmentArrives(ip.Source, ip.Destination, ip.Payload)
                : DropReason.BadSourceAddress,
            IpProtocol.Icmp => ReceiveIcmp(ip),
            _ => DropReason.UnsupportedProtocol,
        };
    }

    private DropReason ReceiveIcmp(in Ipv4Packet ip)
    {
        if (IcmpV4Packet.TryParse(ip.Payload, out var icmp, out _)
            && icmp.Type is IcmpV4Packet.TypeDestinationUnreachable or IcmpV4Packet.TypeTimeExceeded)
        {
            // An error about a segment we sent (RFC 1122 §4.2.3.9, RFC 5927, RFC 1191).
            if (!icmp.TryGetQuotedTcp(out var source, out var destination, out ushort sourcePort, out ushort destinationPort, out uint seq))
                return DropReason.UnsupportedIcmp;
            return Tcp.IcmpErrorArrives(new FourTuple(source, sourcePort, destination, destinationPort), icmp.Type, icmp.Code,
                icmp.NextHopMtu, seq);
        }
        byte[] buffer = Transmit.Rent();
        if (IcmpEchoResponder.TryBuildReply(ip, Options.Address, buffer, out int length, out var reason))
        {
            Transmit.Enqueue(buffer, length);
            Counters.EchoRepliesSent++;
            return DropReason.None;
        }
        Transmit.Return(new OutgoingPacket(buffer, 0));
        return reason;
    }

    /// <summary>
    /// Advances time: fires due timers and lets connections send. Returns the next time (microseconds) at which
    /// Poll must be called again if nothing else happens, or <see cref="long.MaxValue"/> for never.
    /// </summary>
    public long Poll(long nowMicros)
    {
        if (nowMicros > Now) Now = nowMicros;
        Tcp.RunTimers();
        Tcp.FlushOutput();
        return Tcp.NextDeadline;
    }

    /// <summary>Takes the next connection with pending application events.</summary>
    public bool TryTakeEvents(out Tcb connection, out ConnectionEvents events)
    {
        while (_events.TryDequeue(out var tcb))
        {
            events = tcb.TakeEvents();
            if (events == ConnectionEvents.None) continue;
            connection = tcb;
            return true;
        }
        connection = null!;
        events = ConnectionEvents.None;
        return false;
    }

    internal void EnqueueOutput(Tcb tcb) => Tcp.EnqueueOutput(tcb);
    internal void EnqueueEvents(Tcb tcb) => _events.Enqueue(tcb);
}
