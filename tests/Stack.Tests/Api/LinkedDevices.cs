using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using TunStack.Runtime;

namespace TunStack.Tests.Api;

/// <summary>
/// Two packet devices joined back to back in memory, like a veth pair: what one writes, the other reads. Each write
/// can be observed first (<see cref="LinkedDevice.OnWrite"/>), for tests that look at the segments on the wire.
/// </summary>
public sealed class LinkedDevice : IPacketDevice
{
    private readonly ConcurrentQueue<byte[]> _inbox = new();
    private readonly SemaphoreSlim _wake = new(0);
    private int _disposed;

    public LinkedDevice(string name, int mtu = 1500)
    {
        Name = name;
        Mtu = mtu;
    }

    public LinkedDevice? Peer { get; set; }
    public string Name { get; }
    public int Mtu { get; }

    /// <summary>Sees every packet this side writes, before the peer gets it; returning false drops it.</summary>
    public Func<byte[], bool>? OnWrite { get; set; }

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
        var a = new LinkedDevice("link-a");
        var b = new LinkedDevice("link-b");
        a.Peer = b;
        b.Peer = a;
        return (a, b);
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

    public static async Task<LinkedStacks> StartAsync(TunStackOptions? client = null, TunStackOptions? server = null)
    {
        var (a, b) = LinkedDevice.Pair();
        var clientHost = await TunStackHost.StartAsync(a, With(client, ClientAddress));
        var serverHost = await TunStackHost.StartAsync(b, With(server, ServerAddress));
        return new LinkedStacks(a, b, clientHost, serverHost);
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
            MaximumSegmentLifetime = TimeSpan.FromMilliseconds(100),
        };
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
    }
}
