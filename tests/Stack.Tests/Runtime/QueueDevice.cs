using System.Collections.Concurrent;
using TunStack.Runtime;

namespace TunStack.Tests.Runtime;

/// <summary>An in-memory packet device for unit tests: the test enqueues packets "from the wire" and reads what the stack wrote.</summary>
public sealed class QueueDevice : IPacketDevice
{
    private readonly ConcurrentQueue<byte[]> _toStack = new();
    private readonly SemaphoreSlim _wake = new(0);

    public string Name => "queue0";
    public int Mtu => 1500;
    public ConcurrentQueue<byte[]> Written { get; } = new();

    /// <summary>The timeout of every <see cref="WaitReadable"/> call, in order.</summary>
    public ConcurrentQueue<TimeSpan> WaitTimeouts { get; } = new();

    public void Inject(byte[] packet)
    {
        _toStack.Enqueue(packet);
        _wake.Release();
    }

    public int TryRead(Span<byte> buffer)
    {
        if (!_toStack.TryDequeue(out var packet)) return 0;
        packet.CopyTo(buffer);
        return packet.Length;
    }

    public void Write(ReadOnlySpan<byte> packet) => Written.Enqueue(packet.ToArray());

    public void WaitReadable(TimeSpan timeout)
    {
        WaitTimeouts.Enqueue(timeout);
        _wake.Wait(timeout);
    }

    public void Wake() => _wake.Release();

    public void Dispose() => _wake.Dispose();
}
