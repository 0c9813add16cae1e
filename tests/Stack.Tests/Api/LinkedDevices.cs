using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using TunStack.Runtime;

namespace TunStack.Tests.Api;

/// <summary>
/// Two packet devices joined back to back in memory, like a veth pair: what one writes, the other reads. Each write
/// can be observed first (<see cref="LinkedDevice.OnWrite"/>), for tests that look at the segments on the wire. A side
/// can have several queues, as a multi-queue TUN device has (<see cref="Queues"/>): then the other side's packets are
/// dealt over them in turn, one packet each, so that most of a flow's packets arrive on a queue its shard does not own.
/// </summary>
public sealed class LinkedDevice : IPacketDevice
{
    private readonly ConcurrentQueue<byte[]> _inbox = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly SideState _side;
    private int _disposed;

    public LinkedDevice(string name, int mtu = 1500) : this(name, mtu, new SideState())
    {
    }

    private LinkedDevice(string name, int mtu, SideState side)
    {
        Name = name;
        Mtu = mtu;
        _side = side;
    }

    public LinkedDevice? Peer { get; set; }
    public string Name { get; }
    public int Mtu { get; }

    /// <summary>Sees every packet this side (any of its queues) writes, before the peer gets it; returning false drops it.</summary>
    public Func<byte[], bool>? OnWrite
    {
        get => _side.OnWrite;
        set => _side.OnWrite = value;
    }

    /// <summary>This device's side: the queues written to in turn when the other side sends.</summary>
    private sealed class SideState
    {
        public Func<byte[], bool>? OnWrite;
        public LinkedDevice[] Queues = [];
        public int Next;
    }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public int TryRead(Span<byte> buffer)
    {
        if (!_inbox.TryDequeue(out var packet)) return 0;
        packet.CopyTo(buffer);
        return packet.Length;
    }

    public void Write(ReadOnlySpan<byte> packet)
    {
        var copy = packet.ToArray();
        if (OnWrite is { } tap && !tap(copy)) return;
        var queues = Peer?._side.Queues;
        if (queues is { Length: > 1 })
            queues[(int)((uint)Interlocked.Increment(ref Peer!._side.Next) % (uint)queues.Length)].Deliver(copy);
        else
            Peer?.Deliver(copy);
    }

    private void Deliver(byte[] packet)
    {
        if (IsDisposed) return;
        _inbox.Enqueue(packet);
        _wake.Release();
    }

    public void WaitReadable(TimeSpan timeout)
    {
        if (!IsDisposed) _wake.Wait(timeout);
    }

    public void Wake()
    {
        if (!IsDisposed) _wake.Release();
    }

    public void Dispose() => Interlocked.Exchange(ref _disposed, 1);

    public static (LinkedDevice A, LinkedDevice B) Pair()
    {
        var (a, b) = Pair(1, 1);
        return (a[0], b[0]);
    }

    /// <summary>Two sides with <paramref name="queuesA"/> and <paramref name="queuesB"/> queues.</summary>
    public static (LinkedDevice[] A, LinkedDevice[] B) Pair(int queuesA, int queuesB)
    {
        var a = Side("link-a", queuesA);
        var b = Side("link-b", queuesB);
        foreach (var queue in a) queue.Peer = b[0];
        foreach (var queue in b) queue.Peer = a[0];
        return (a, b);
    }

    private static LinkedDevice[] Side(string name, int queues)
    {
        var side = new SideState();
        side.Queues = Enumerable.Range(0, queues).Select(_ => new LinkedDevice(name, 1500, side)).ToArray();
        return side.Queues;
    }
}

/// <summary>An IPv4/TCP packet's fields that the tests look at.</summary>
public readonly record struct TcpHeaderView(IPAddress Source, IPAddress Destination, ushort SourcePort, ushort DestinationPort,
    byte Flags, ushort Window, int PayloadLength)
{
    public static bool TryRead(byte[] packet, out TcpHeaderView view)
    {
        view = default;
        if (packet.Length < 40 || packet[0] >> 4 != 4 || packet[9] != 6) return false;
        int ihl = (packet[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2));
        var tcp = packet.AsSpan(ihl);
        int offset = (tcp[12] >> 4) * 4;
        view = new TcpHeaderView(new IPAddress(packet.AsSpan(12, 4)), new IPAddress(packet.AsSpan(16, 4)),
            BinaryPrimitives.ReadUInt16BigEndian(tcp), BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]), tcp[13],
            BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]), total - ihl - offset);
        return true;
    }
}

/// <summary>
/// Two stacks on linked devices, each with its own event loop thread: the client 198.18.0.1 and the server
/// 198.18.0.2. The tests use only the public API on them.
/// </summary>
public sealed class LinkedStacks : IAsyncDisposable
{
    public static readonly IPAddress ClientAddress = IPAddress.Parse("198.18.0.1");
    public static readonly IPAddress ServerAddress = IPAddress.Parse("198.18.0.2");

    private LinkedStacks(LinkedDevice clientDevice, LinkedDevice serverDevice, TunStackHost client, TunStackHost server)
    {
        ClientDevice = clientDevice;
        ServerDevice = serverDevice;
        Client = client;
        Server = server;
    }

    public LinkedDevice ClientDevice { get; }
    public LinkedDevice ServerDevice { get; }
    public TunStackHost Client { get; }
    public TunStackHost Server { get; }

    public static Task<LinkedStacks> StartAsync(TunStackOptions? client = null, TunStackOptions? server = null) =>
        StartAsync(1, client, server);

    /// <summary>
    /// Two stacks with <paramref name="queues"/> device queues each (engine shards on their own loop threads; the
    /// client with one more, so the two sides never split flows alike).
    /// </summary>
    public static async Task<LinkedStacks> StartAsync(int queues, TunStackOptions? client = null, TunStackOptions? server = null)
    {
        int clientQueues = queues == 1 ? 1 : queues + 1;
        var (a, b) = LinkedDevice.Pair(clientQueues, queues);
        var clientHost = await TunStackHost.StartAsync(a, With(client, ClientAddress));
        var serverHost = await TunStackHost.StartAsync(b, With(server, ServerAddress));
        return new LinkedStacks(a[0], b[0], clientHost, serverHost);
    }

    private static TunStackOptions With(TunStackOptions? options, IPAddress address)
    {
        var o = options ?? new TunStackOptions();
        return new TunStackOptions
        {
            Addresses = options is null || options.Addresses.SequenceEqual(new TunStackOptions().Addresses) ? [address] : o.Addresses,
            ReceiveBufferSize = o.ReceiveBufferSize,
            SendBufferSize = o.SendBufferSize,
            ConnectTimeout = o.ConnectTimeout,
            KeepAlive = o.KeepAlive,
            KeepAliveIdle = o.KeepAliveIdle,
            KeepAliveInterval = o.KeepAliveInterval,
            KeepAliveProbes = o.KeepAliveProbes,
            Backlog = o.Backlog,
            MaxConnections = o.MaxConnections,
            MaximumSegmentLifetime = TimeSpan.FromMilliseconds(100),
        };
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
    }
}
