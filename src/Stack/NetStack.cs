using System.Security.Cryptography;
using TunStack.Diagnostics;
using TunStack.Ip;
using TunStack.Sharding;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack;

/// <summary>
/// The stack as a pure state machine ("sans I/O"): packets and the current time go in through
/// <see cref="Receive"/> and <see cref="Poll"/>; packets to send come out of <see cref="Transmit"/>; things the
/// application should know come out of <see cref="TryTakeEvents"/>. No threads, sockets or clocks inside, so
/// every behaviour can be driven deterministically by a test. Not thread-safe: one owner calls it.
/// </summary>
internal sealed class NetStack
{
    private readonly Queue<Tcb> _events = new();
    private readonly IpAddress[] _addresses;

    public NetStack(NetStackOptions options, IStackTracer? tracer = null)
        : this(options, shards: null, shardIndex: 0, tracer)
    {
    }

    /// <summary>
    /// Shard <paramref name="shardIndex"/> of <paramref name="shards"/>: it owns only the connections whose 4-tuple hashes
    /// to it, picks ephemeral ports accordingly, gets an even share of each listener's backlog and half-open limit, and
    /// counts connections and buffer memory against the stack-wide limits together with the other shards. The shards
    /// should share <see cref="NetStackOptions.IsnSecret"/>.
    /// </summary>
    public NetStack(NetStackOptions options, StackShards? shards, int shardIndex, IStackTracer? tracer = null)
    {
        if (shards is not null)
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shardIndex, shards.Count);
        Shards = shards;
        ShardIndex = shardIndex;
        Buffers = shards?.Buffers ?? new BufferBudget();
        _addresses = options.Addresses.ToArray();
        if (_addresses.Length == 0)
            throw new ArgumentException("The stack needs at least one address.", nameof(options));
        if (options.Mtu < Ipv6Packet.MinimumMtu && _addresses.Any(a => !a.IsV4))
            throw new ArgumentException($"An IPv6 address needs an MTU of at least {Ipv6Packet.MinimumMtu} (RFC 8200 §5); got {options.Mtu}.", nameof(options));
        Options = options;
        Tracer = tracer;
        Transmit = new TransmitQueue(Math.Max(options.Mtu, 576), Counters);
        byte[] secret = options.IsnSecret ?? RandomNumberGenerator.GetBytes(16);
        Tcp = new TcpLayer(this, new IsnGenerator(secret), new Tcp.Listen.SynCookies(secret));
    }

    public NetStackOptions Options { get; }
    public StackCounters Counters { get; } = new();
    public IStackTracer? Tracer { get; set; }
    /// <summary>Receives measurements such as RTT samples, for metrics (<see cref="StackMetrics"/>); null: none.</summary>
    public IStackObserver? Observer { get; set; }
    public TransmitQueue Transmit { get; }

    /// <summary>The time of the latest <see cref="Receive"/> or <see cref="Poll"/> call, in microseconds.</summary>
    public long Now { get; private set; }

    internal TcpLayer Tcp { get; }
    internal bool InSegmentArrival { get; private set; }

    /// <summary>The offload metadata of the packet being received (plain outside <see cref="Receive(ReadOnlySpan{byte}, long, in PacketInfo)"/>).</summary>
    internal PacketInfo ArrivalInfo { get; private set; }

    /// <summary>
    /// An ICMPv6 Packet Too Big arrived about one of our TCP segments (RFC 4443 §3.2). Raised on the caller's thread
    /// inside <see cref="Receive"/>; the handler must not throw. The stack itself does not change any MSS (yet).
    /// </summary>
    public event Action<PacketTooBigMessage>? PacketTooBig;

    /// <summary>Whether <paramref name="address"/> is one of ours.</summary>
    public bool IsLocalAddress(IpAddress address)
    {
        foreach (var a in _addresses)
            if (a == address) return true;
        return false;
    }

    /// <summary>True for the directed broadcast address of the subnet of one of our IPv4 addresses.</summary>
    private bool IsSubnetBroadcast(IpAddress address)
    {
        int prefix = Options.Ipv4PrefixLength;
        if (!address.IsV4 || prefix is <= 0 or >= 31) return false; // /31 and /32 have no broadcast (RFC 3021)
        uint hostMask = uint.MaxValue >> prefix;
        foreach (var a in _addresses)
        {
            if (a.IsV4 && (a.V4Value | hostMask) == address.V4Value && (a.V4Value & ~hostMask) == (address.V4Value & ~hostMask))
                return true;
        }
        return false;
    }

    /// <summary>
    /// Whether a connection may be opened to <paramref name="remote"/>: not unspecified, multicast, a broadcast (limited
    /// or our subnet's), loopback, "this network" or the reserved 240/4, and not one of our own addresses.
    /// </summary>
    private bool IsUnicastPeer(IpAddress remote)
    {
        if (IsLocalAddress(remote))
            return false;
        if (!remote.IsV4)
            return !remote.IsV6Unspecified && !remote.IsV6Multicast && !remote.IsV6Loopback;
        return SourceAddress.IsValidUnicast(remote, default) && !IsSubnetBroadcast(remote);
    }

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
    public ListenEndpoint Listen(ushort port, int? backlog = null, int? halfOpenLimit = null)
    {
        int accept = backlog ?? Options.Backlog, halfOpen = halfOpenLimit ?? Options.HalfOpenLimit;
        if (Shards is { } shards)
            (accept, halfOpen) = (shards.ShareOf(accept), shards.ShareOf(halfOpen));
        return Tcp.Listen(port, accept, halfOpen);
    }

    /// <summary>
    /// Forwarding mode: a passive OPEN for TCP to every unicast destination that is not one of ours and that
    /// <paramref name="accept"/> lets through (the connection's local end is the original destination), as tun2socks
    /// does. Our own addresses keep their port listeners. <paramref name="accept"/> runs inside <see cref="Receive"/>
    /// for each segment without a connection, so it must be quick; an exception refuses the connection.
    /// </summary>
    public ListenEndpoint ListenAny(Func<FourTuple, bool> accept, int? backlog = null, int? halfOpenLimit = null) =>
        Tcp.ListenAny(accept, backlog ?? Options.Backlog, halfOpenLimit ?? Options.HalfOpenLimit);

    /// <summary>Closes a listener: new SYNs for it are answered with RST; its connections go on.</summary>
    public void StopListening(ListenEndpoint listener) => Tcp.StopListening(listener);

    /// <summary>Whether a packet to <paramref name="destination"/>, not one of ours, goes to TCP: only in forwarding mode, only unicast.</summary>
    private bool ForwardsTo(IpAddress destination, byte protocol) =>
        protocol == IpProtocol.Tcp && Tcp.ForwardsNonLocal
        && (destination.IsV4 ? destination.V4Value >> 28 < 0xE && destination.V4Value >> 24 != 0 : !destination.IsV6Unspecified);

    /// <summary>The application accepted <paramref name="connection"/>: it leaves its listener's accept queue.</summary>
    public void Accepted(Tcb connection) => Tcp.Accepted(connection);

    /// <summary>
    /// What the device offloads (set by whoever connects the stack to a device, e.g. the event loop): with checksum
    /// offload the stack leaves TCP checksums to the device; with segmentation offload it sends super-packets.
    /// </summary>
    public DeviceOffloads DeviceOffloads { get; set; }

    /// <summary>Pooled memory the connections' send and receive buffers hold now (all shards' when sharded).</summary>
    public BufferBudget Buffers { get; }

    /// <summary>The shards this stack is one of, or null when it is the only one.</summary>
    public StackShards? Shards { get; }

    /// <summary>Which shard of <see cref="Shards"/> this is (0 when not sharded).</summary>
    public int ShardIndex { get; }

    /// <summary>Whether this stack owns <paramref name="tuple"/>: always, unless sharded.</summary>
    public bool Owns(in FourTuple tuple) => Shards is null || Shards.OwnerOf(tuple) == ShardIndex;

    /// <summary>
    /// Active OPEN (RFC 9293 §3.10.1): connects to <paramref name="remote"/>:<paramref name="port"/> from our address and
    /// an ephemeral port (RFC 6056), or from <paramref name="localPort"/>. The SYN goes out at the next <see cref="Poll"/>;
    /// the connection raises <see cref="ConnectionEvents.Established"/> or <see cref="ConnectionEvents.Closed"/>
    /// (refused, timed out).
    /// </summary>
    public Tcb Connect(IpAddress remote, ushort port, ushort localPort = 0, long? nowMicros = null)
    {
        // MUST-46 (§3.9.1.1): an OPEN to an address that is not one host (broadcast, multicast, unspecified) is an error.
        if (!IsUnicastPeer(remote))
            throw new ArgumentException($"{remote} is not a unicast address: a connection needs exactly one peer (RFC 9293 MUST-46).", nameof(remote));
        if (nowMicros > Now) Now = nowMicros.Value; // the ISN clock and the connect deadline count from now
        foreach (var local in Options.Addresses)
        {
            if (local.IsV4 == remote.IsV4)
                return Tcp.Connect(local, remote, port, localPort);
        }
        throw new InvalidOperationException($"The stack has no {(remote.IsV4 ? "IPv4" : "IPv6")} address to connect to {remote} from.");
    }

    /// <summary>
    /// One packet from the device. Never throws for any input: a malformed or unwanted packet is dropped and
    /// counted. Replies are queued; call <see cref="Poll"/> to let connections send.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> packet, long nowMicros) => Receive(packet, nowMicros, PacketInfo.Plain);

    /// <summary>
    /// One packet from an offloading device, with its metadata: a TCP checksum the device left partial or verified is
    /// not checked again; a super-packet (segmentation offload) is processed whole, as the segments it stands for.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> packet, long nowMicros, in PacketInfo info)
    {
        Now = nowMicros;
        Counters.PacketsReceived++;
        ArrivalInfo = info;
        if (info.Segmentation != SegmentationKind.None) Counters.SuperPacketsReceived++;
        Counters.BytesReceived += packet.Length;
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
            ArrivalInfo = PacketInfo.Plain;
        }
        if (reason != DropReason.None)
        {
            Counters.Drop(reason);
            if (!IsTracedAsSegment(reason)) Tracer?.OnPacketDropped(nowMicros, reason);
        }
    }

    /// <summary>
    /// A packet of <paramref name="length"/> bytes that reached the stack but was dropped before any shard could take it
    /// (the owning shard's queue was full): counted as received and dropped for <paramref name="reason"/>.
    /// </summary>
    internal void CountDrop(DropReason reason, int length, long nowMicros)
    {
        Counters.PacketsReceived++;
        Counters.BytesReceived += length;
        Counters.Drop(reason);
        Tracer?.OnPacketDropped(nowMicros, reason);
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
            return ReceiveIpv6(packet);
        if (packet[0] >> 4 != 4)
            return DropReason.BadIpVersion;
        if (!Ipv4Packet.TryParse(packet, out var ip, out var reason))
            return reason;
        if (!IsLocalAddress(ip.Destination) && !ForwardsTo(ip.Destination, ip.Protocol))
            return DropReason.NotForUs;
        if (ip.IsFragment)
            return DropReason.IpFragment; // reassembly is not supported; peers use PMTUD/DF
        return ip.Protocol switch
        {
            IpProtocol.Tcp => SourceAddress.IsValidUnicast(ip.Source, ip.Destination) && !IsLocalAddress(ip.Source)
                    && !IsSubnetBroadcast(ip.Source)
                ? Tcp.SegmentArrives(ip.Source, ip.Destination, ip.Payload)
                : DropReason.BadSourceAddress,
            IpProtocol.Icmp => ReceiveIcmp(ip),
            _ => DropReason.UnsupportedProtocol,
        };
    }

    private DropReason ReceiveIcmp(in Ipv4Packet ip)
    {
        if (IcmpV4Packet.TryParse(ip.Payload, out var icmp, out _)
            && icmp.Type is IcmpV4Packet.TypeDestinationUnreachable or IcmpV4Packet.TypeTimeExceeded or IcmpV4Packet.TypeParameterProblem)
        {
            // An error about a segment we sent (RFC 1122 §4.2.3.9, RFC 5927, RFC 1191).
            if (!icmp.TryGetQuotedTcp(out var source, out var destination, out ushort sourcePort, out ushort destinationPort, out uint seq))
                return DropReason.UnsupportedIcmp;
            return Tcp.IcmpErrorArrives(new FourTuple(source, sourcePort, destination, destinationPort), icmp.Type, icmp.Code,
                icmp.NextHopMtu, seq);
        }
        byte[] buffer = Transmit.Rent();
        if (IcmpEchoResponder.TryBuildReply(ip, ip.Destination, buffer, out int length, out var reason))
        {
            Transmit.Enqueue(buffer, length);
            Counters.EchoRepliesSent++;
            return DropReason.None;
        }
        Transmit.Return(new OutgoingPacket(buffer, 0));
        return reason;
    }

    private DropReason ReceiveIpv6(ReadOnlySpan<byte> packet)
    {
        if (!Ipv6Packet.TryParse(packet, out var ip, out var reason))
            return reason;
        IpAddress destination = ip.Destination;
        if (destination.IsV6Multicast)
            return DropReason.MulticastDestination;
        // IPv4-mapped addresses (RFC 4291 §2.5.5.2) stand for IPv4 nodes; in an IPv6 header one would compare equal
        // to our IPv4 address (IpAddress holds IPv4 in that form), but it is not ours over IPv6.
        if (destination.IsV4 || !IsLocalAddress(destination) && !ForwardsTo(destination, ip.Protocol))
            return DropReason.NotForUs;
        IpAddress source = ip.Source;
        if (source.IsV6Unspecified || source.IsV6Loopback || source.IsV6Multicast || source.IsV4 || IsLocalAddress(source))
            return DropReason.BadSourceAddress;
        return ip.Protocol switch
        {
            IpProtocol.Tcp => Tcp.SegmentArrives(source, destination, ip.Payload),
            IpProtocol.IcmpV6 => ReceiveIcmpV6(ip),
            _ => DropReason.UnknownNextHeader,
        };
    }

    private DropReason ReceiveIcmpV6(in Ipv6Packet ip)
    {
        if (!IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var icmp, out var reason))
            return reason;
        if (icmp.IsEchoRequest)
        {
            byte[] buffer = Transmit.Rent();
            if (IcmpV6EchoResponder.TryBuildReply(ip, icmp, buffer, out int length, out reason))
            {
                Transmit.Enqueue(buffer, length);
                Counters.EchoRepliesSent++;
                return DropReason.None;
            }
            Transmit.Return(new OutgoingPacket(buffer, 0));
            return reason;
        }
        if (icmp.Type == IcmpV6Packet.TypePacketTooBig)
        {
            if (!PacketTooBigMessage.TryRead(ip, icmp, out var message, out reason))
                return reason;
            // Only a segment we sent can be too big (RFC 5927 §4.1 asks for more, which is the TCP layer's check).
            if (!IsLocalAddress(message.Connection.LocalAddress))
                return DropReason.BadQuotedPacket;
            Counters.PacketTooBigReceived++;
            PacketTooBig?.Invoke(message);
            // RFC 8201 §4: the connection lowers its segment size (never below what 1280 allows).
            return Tcp.PacketTooBigArrives(message.Connection, message.ReportedMtu, message.SequenceNumber);
        }
        if (icmp.Type is IcmpV6Packet.TypeDestinationUnreachable or IcmpV6Packet.TypeTimeExceeded or IcmpV6Packet.TypeParameterProblem)
        {
            // MUST-54 applies to ICMPv6 as to ICMP (§3.9.2.2): an error about a segment we sent, in ICMP's terms.
            if (!icmp.TryGetQuotedTcp(out var source, out var destination, out ushort sourcePort, out ushort destinationPort, out uint seq))
                return DropReason.BadQuotedPacket;
            if (!IsLocalAddress(source))
                return DropReason.BadQuotedPacket;
            var (type, code) = AsIcmpV4Error(icmp.Type, icmp.Code);
            return Tcp.IcmpErrorArrives(new FourTuple(source, sourcePort, destination, destinationPort), type, code, 0, seq);
        }
        return DropReason.UnsupportedIcmp;
    }

    /// <summary>
    /// An ICMPv6 error (RFC 4443 §3) as the ICMP error of the same meaning, which is what the TCP layer acts on: no route
    /// is net unreachable, address unreachable host unreachable, port unreachable port unreachable (hard while opening,
    /// RFC 5461 §4), administratively prohibited the same (code 13); time exceeded and parameter problem map directly.
    /// </summary>
    private static (byte Type, byte Code) AsIcmpV4Error(byte type, byte code) => type switch
    {
        IcmpV6Packet.TypeDestinationUnreachable => (IcmpV4Packet.TypeDestinationUnreachable, code switch
        {
            0 => 0,
            1 => 13,
            4 => IcmpV4Packet.CodePortUnreachable,
            _ => 1,
        }),
        IcmpV6Packet.TypeTimeExceeded => (IcmpV4Packet.TypeTimeExceeded, code),
        _ => (IcmpV4Packet.TypeParameterProblem, code),
    };

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
