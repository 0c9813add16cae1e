using TunStack.Sharding;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Sharding;

/// <summary>
/// Several stack shards over one address set: who owns which packet, ports picked by the owning shard, and the
/// stack-wide limits counted across shards.
/// </summary>
public sealed class ShardingTests
{
    private static readonly IpAddress Us = ScriptedPeer.StackAddress;
    private static readonly IpAddress Peer = ScriptedPeer.PeerAddress;

    private static NetStack[] MakeShards(StackShards shards, NetStackOptions? options = null) =>
        Enumerable.Range(0, shards.Count).Select(i => new NetStack(options ?? ScriptedPeer.DefaultOptions(), shards, i)).ToArray();

    [Fact]
    public void A_tcp_segment_is_placed_by_its_tuple_seen_from_our_side()
    {
        var packet = ScriptedPeer.BuildPacket(Peer, Us, 40000, 80, 1, 0, TcpFlags.Syn, 65535, default, default);
        Assert.True(FlowSteering.TryGetFlow(packet, out var tuple));
        Assert.Equal(new FourTuple(Us, 80, Peer, 40000), tuple);

        var packet6 = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress6, ScriptedPeer.StackAddress6, 50000, 443, 1, 0, TcpFlags.Ack, 100, default, [1, 2, 3]);
        Assert.True(FlowSteering.TryGetFlow(packet6, out var tuple6));
        Assert.Equal(new FourTuple(ScriptedPeer.StackAddress6, 443, ScriptedPeer.PeerAddress6, 50000), tuple6);
    }

    [Fact]
    public void An_icmp_error_is_placed_by_the_segment_it_quotes()
    {
        // Our segment 198.18.0.2:80 -> 198.18.0.1:40000, quoted in a "fragmentation needed" from a router.
        var ours = ScriptedPeer.BuildPacket(Us, Peer, 80, 40000, 7, 9, TcpFlags.Ack, 100, default, new byte[32]);
        var icmp = new byte[8 + ours.Length];
        icmp[0] = IcmpV4Packet.TypeDestinationUnreachable;
        icmp[1] = IcmpV4Packet.CodeFragmentationNeeded;
        ours.CopyTo(icmp, 8);
        var packet = new byte[20 + icmp.Length];
        IpHeader.Write(packet, IpAddress.Parse("198.18.0.9"), Us, IpProtocol.Icmp, icmp.Length, 1);
        icmp.CopyTo(packet, 20);

        Assert.True(FlowSteering.TryGetFlow(packet, out var tuple));
        Assert.Equal(new FourTuple(Us, 80, Peer, 40000), tuple);

        // An echo request is nobody's in particular.
        packet[20] = IcmpV4Packet.TypeEchoRequest;
        Assert.False(FlowSteering.TryGetFlow(packet, out _));
    }

    [Fact]
    public void Fragments_short_packets_and_other_protocols_are_not_placed()
    {
        var packet = ScriptedPeer.BuildPacket(Peer, Us, 40000, 80, 1, 0, TcpFlags.Syn, 65535, default, default);
        Assert.False(FlowSteering.TryGetFlow(packet.AsSpan(0, 22), out _));
        var fragment = (byte[])packet.Clone();
        fragment[7] = 8; // fragment offset 64 bytes: no ports in it
        Assert.False(FlowSteering.TryGetFlow(fragment, out _));
        var udp = (byte[])packet.Clone();
        udp[9] = 17;
        Assert.False(FlowSteering.TryGetFlow(udp, out _));
        Assert.False(FlowSteering.TryGetFlow([], out _));
        Assert.Equal(-1, new StackShards(4).OwnerOf(udp));
    }

    [Fact]
    public void Ownership_is_stable_and_spreads_connections_over_every_shard()
    {
        var shards = new StackShards(4);
        var perShard = new int[4];
        for (ushort port = 40000; port < 44000; port++)
        {
            var tuple = new FourTuple(Us, 80, Peer, port);
            int owner = shards.OwnerOf(tuple);
            Assert.Equal(owner, shards.OwnerOf(tuple));
            Assert.Equal(owner, shards.OwnerOf(ScriptedPeer.BuildPacket(Peer, Us, port, 80, 1, 0, TcpFlags.Syn, 65535, default, default)));
            perShard[owner]++;
        }
        Assert.All(perShard, n => Assert.InRange(n, 800, 1200)); // 1000 each, give or take
        Assert.Equal(0, new StackShards(1).OwnerOf(new FourTuple(Us, 80, Peer, 1)));
    }

    [Fact]
    public void Each_shard_opens_connections_only_on_ports_it_owns()
    {
        var shards = new StackShards(2);
        var stacks = MakeShards(shards);
        var seen = new HashSet<ushort>();
        for (int i = 0; i < 200; i++)
        {
            int index = i % 2;
            var tcb = stacks[index].Connect(Peer, 8080, nowMicros: 1_000_000);
            Assert.Equal(index, shards.OwnerOf(tcb.Tuple));
            Assert.True(seen.Add(tcb.Tuple.LocalPort), $"port {tcb.Tuple.LocalPort} handed out twice");
        }
        Assert.Equal(200, shards.Connections);

        // A port another shard owns is refused outright.
        ushort foreign = Enumerable.Range(50000, 100).Select(p => (ushort)p)
            .First(p => shards.OwnerOf(new FourTuple(Us, p, Peer, 8080)) == 1);
        Assert.Throws<ArgumentException>(() => stacks[0].Connect(Peer, 8080, localPort: foreign));
        Assert.Equal(1, shards.OwnerOf(stacks[1].Connect(Peer, 8080, localPort: foreign).Tuple));
    }

    [Fact]
    public void The_connection_limit_counts_every_shard()
    {
        var shards = new StackShards(2);
        var options = ScriptedPeer.DefaultOptions();
        var stacks = MakeShards(shards, new NetStackOptions
        {
            Addresses = options.Addresses, Mtu = 1500, IsnSecret = options.IsnSecret, MaxConnections = 3,
        });
        foreach (var stack in stacks) stack.Listen(80);
        var peers = stacks.Select(s => new ScriptedPeer(s)).ToArray();

        // Connections from successive client ports, each handed to the shard that owns it.
        int established = 0;
        var refusedOn = new HashSet<int>();
        for (ushort port = 41000; port < 41020; port++)
        {
            int owner = shards.OwnerOf(new FourTuple(Us, 80, Peer, port));
            var answer = new ScriptedConnection(peers[owner], clientPort: port).SendSyn();
            if (established < 3)
            {
                Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, Assert.Single(answer).Flags);
                established++;
            }
            else
            {
                Assert.Empty(answer); // over the limit: dropped, whichever shard it reached
                refusedOn.Add(owner);
            }
        }
        Assert.Equal(3, shards.Connections);
        Assert.Equal(2, refusedOn.Count);
        Assert.Equal(17, stacks.Sum(s => s.Counters.ConnectionLimitReached));
        Assert.Equal(3, stacks.Sum(s => s.Connections.Count));
    }

    [Fact]
    public void Listener_limits_are_shared_out_and_buffer_memory_is_one_budget()
    {
        var shards = new StackShards(3);
        var stacks = MakeShards(shards);
        var endpoints = stacks.Select(s => s.Listen(80, backlog: 100, halfOpenLimit: 256)).ToArray();
        Assert.All(endpoints, e => Assert.Equal(34, e.AcceptBacklog));
        Assert.All(endpoints, e => Assert.Equal(86, e.HalfOpenLimit));
        Assert.All(stacks, s => Assert.Same(shards.Buffers, s.Buffers));

        // Data received on two shards is held in the one budget.
        var peers = stacks.Select(s => new ScriptedPeer(s)).ToArray();
        var byShard = new Dictionary<int, ushort>();
        for (ushort port = 42000; byShard.Count < 2; port++)
            byShard.TryAdd(shards.OwnerOf(new FourTuple(Us, 80, Peer, port)), port);
        foreach (var (owner, port) in byShard)
        {
            var connection = new ScriptedConnection(peers[owner], clientPort: port);
            connection.Establish();
            connection.SendData(new byte[1000]);
        }
        Assert.True(shards.Buffers.InUse > 0);
        Assert.Equal(shards.Buffers.InUse, stacks[0].Buffers.InUse);
    }
}
