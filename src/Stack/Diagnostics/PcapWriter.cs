using System.Buffers;
using System.Buffers.Binary;
using System.Threading.Channels;

namespace TunStack.Diagnostics;

/// <summary>
/// Writes packets to a stream in the classic pcap format (draft-ietf-opsawg-pcap, as tcpdump and Wireshark read
/// it): a 24-byte file header — magic 0xA1B2C3D4 (microsecond timestamps) in little-endian order, version 2.4,
/// snap length, link type LINKTYPE_RAW (101: each record is a bare IPv4 or IPv6 packet, told apart by its version
/// nibble) — then per packet a 16-byte record header (seconds, microseconds, captured length, original length)
/// followed by the packet.
/// <para>
/// Capturing stays off the caller's path: <see cref="TryCapture"/> copies the packet into a pooled buffer and
/// queues it, and a background task writes the queue out and flushes the stream whenever the queue runs empty.
/// The queue is bounded in packets and bytes; when it is full the packet is dropped and counted
/// (<see cref="PacketsDropped"/>), never waited for. The file never grows past its size limit: the first record
/// that would cross it stops the capture, once, with a message to <c>onStopped</c>.
/// </para>
/// <see cref="TryCapture"/> may be called from one thread at a time; the counters may be read from any thread.
/// </summary>
public sealed class PcapWriter : IAsyncDisposable
{
    /// <summary>The classic pcap magic number (microsecond timestamps).</summary>
    public const uint Magic = 0xA1B2C3D4;
    /// <summary>pcap format version 2.4: major.</summary>
    public const ushort VersionMajor = 2;
    /// <summary>pcap format version 2.4: minor.</summary>
    public const ushort VersionMinor = 4;
    /// <summary>LINKTYPE_RAW: each record is a bare IPv4 or IPv6 packet.</summary>
    public const uint LinkTypeRaw = 101;

    /// <summary>Largest number of bytes kept per packet: tcpdump's maximum, above any IP packet including 64 KiB offload super-packets.</summary>
    public const int SnapLength = 262144;

    /// <summary>Bytes of the pcap file header.</summary>
    public const int FileHeaderLength = 24;
    /// <summary>Bytes of each record header.</summary>
    public const int RecordHeaderLength = 16;

    /// <summary>Packets the writer queues at most by default before it stops capturing and counts drops.</summary>
    public const int DefaultQueueCapacity = 8192;
    /// <summary>Bytes the writer queues at most by default.</summary>
    public const int DefaultMaxQueuedBytes = 32 << 20;

    private readonly Stream _stream;
    private readonly Channel<Captured> _queue;
    // A pool of our own: buffers are rented on the caller's thread and returned on the writer's, which the shared
    // pool (per-thread caches) would keep reallocating under bursts. Up to 1024 buffers per size are kept.
    private readonly ArrayPool<byte> _pool = ArrayPool<byte>.Create(SnapLength, 1024);
    private readonly long _limitBytes;
    private readonly long _maxQueuedBytes;
    private readonly Action<string>? _onStopped;
    private readonly Task _writer;
    private readonly byte[] _recordHeader = new byte[RecordHeaderLength];
    private long _queuedBytes;
    private long _packetsDropped;
    private long _packetsWritten;
    private long _bytesWritten;
    private volatile bool _stopped;
    private volatile bool _closing;
    private int _disposed;

    private readonly record struct Captured(byte[] Buffer, int Length, int OriginalLength, long UnixMicros);

    /// <param name="stream">Where the capture goes; the writer owns it and disposes it.</param>
    /// <param name="limitBytes">Largest size of the whole capture, file header included (at least 24 bytes).</param>
    /// <param name="onStopped">
    /// Called once, on the writer's background thread, with a message when capturing stops early (limit reached or
    /// a write failed). Must not throw.
    /// </param>
    /// <param name="queueCapacity">Packets waiting to be written before further ones are dropped.</param>
    /// <param name="maxQueuedBytes">Bytes waiting to be written before further packets are dropped.</param>
    public PcapWriter(Stream stream, long limitBytes = long.MaxValue, Action<string>? onStopped = null,
        int queueCapacity = DefaultQueueCapacity, long maxQueuedBytes = DefaultMaxQueuedBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limitBytes, FileHeaderLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(queueCapacity, 1);
        _stream = stream;
        _limitBytes = limitBytes;
        _maxQueuedBytes = maxQueuedBytes;
        _onStopped = onStopped;
        _queue = Channel.CreateBounded<Captured>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of waiting or evicting
            AllowSynchronousContinuations = false,
        });

        Span<byte> header = stackalloc byte[FileHeaderLength];
        WriteFileHeader(header);
        _stream.Write(header);
        _stream.Flush();
        _bytesWritten = FileHeaderLength;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Creates (or truncates) <paramref name="path"/> and writes the file header to it.</summary>
    public static PcapWriter Create(string path, long limitBytes, Action<string>? onStopped = null) =>
        new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize: 1 << 16), limitBytes, onStopped);

    /// <summary>Packets written to the stream so far.</summary>
    public long PacketsWritten => Interlocked.Read(ref _packetsWritten);

    /// <summary>Packets not captured because the queue was full.</summary>
    public long PacketsDropped => Interlocked.Read(ref _packetsDropped);

    /// <summary>Bytes written to the stream so far, file header included.</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>Whether capturing stopped early: the next record would have crossed the size limit, or a write failed.</summary>
    public bool Stopped => _stopped;

    /// <summary>
    /// Queues a copy of <paramref name="packet"/>, stamped <paramref name="unixMicros"/> (microseconds since
    /// 1970-01-01 UTC). Never blocks. Returns false when the packet is not captured: the queue is full (counted in
    /// <see cref="PacketsDropped"/>), capturing has stopped, or the writer is being disposed.
    /// </summary>
    public bool TryCapture(ReadOnlySpan<byte> packet, long unixMicros)
    {
        if (_stopped || _closing)
            return false;
        int length = Math.Min(packet.Length, SnapLength);
        if (Interlocked.Add(ref _queuedBytes, length) > _maxQueuedBytes)
        {
            Interlocked.Add(ref _queuedBytes, -length);
            Interlocked.Increment(ref _packetsDropped);
            return false;
        }
        byte[] buffer = _pool.Rent(Math.Max(length, 1));
        packet[..length].CopyTo(buffer);
        if (_queue.Writer.TryWrite(new Captured(buffer, length, packet.Length, unixMicros)))
            return true;
        _pool.Return(buffer);
        Interlocked.Add(ref _queuedBytes, -length);
        if (!_closing)
            Interlocked.Increment(ref _packetsDropped);
        return false;
    }

    /// <summary>The 24-byte file header (little-endian, as the writing host's order; readers detect it by the magic).</summary>
    public static void WriteFileHeader(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], VersionMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], VersionMinor);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], 0);   // thiszone: timestamps are UTC
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], 0); // sigfigs
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], SnapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[20..], LinkTypeRaw);
    }

    /// <summary>A 16-byte record header: timestamp in seconds and microseconds, captured and original length.</summary>
    public static void WriteRecordHeader(Span<byte> destination, long unixMicros, int capturedLength, int originalLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)(unixMicros / 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], (uint)(unixMicros % 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], (uint)capturedLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], (uint)originalLength);
    }

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out var packet))
            {
                try
                {
                    if (!_stopped)
                        Write(packet);
                }
                finally
                {
                    Interlocked.Add(ref _queuedBytes, -packet.Length);
                    _pool.Return(packet.Buffer);
                }
            }
            // The queue ran empty: let readers of the file (tcpdump -r while we run) see everything so far.
            if (!_stopped)
                TryFlush();
        }
    }

    private void Write(in Captured packet)
    {
        long recordLength = RecordHeaderLength + packet.Length;
        if (_bytesWritten + recordLength > _limitBytes)
        {
            Stop($"reached the size limit of {_limitBytes} bytes after {_packetsWritten} packets; capture stopped");
            TryFlush();
            return;
        }
        try
        {
            WriteRecordHeader(_recordHeader, packet.UnixMicros, packet.Length, packet.OriginalLength);
            _stream.Write(_recordHeader);
            _stream.Write(packet.Buffer, 0, packet.Length);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
        {
            Stop($"writing failed ({e.Message}); capture stopped");
            return;
        }
        Interlocked.Add(ref _bytesWritten, recordLength);
        Interlocked.Increment(ref _packetsWritten);
    }

    private void TryFlush()
    {
        try
        {
            _stream.Flush();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
        {
            Stop($"writing failed ({e.Message}); capture stopped");
        }
    }

    private void Stop(string message)
    {
        if (_stopped)
            return;
        _stopped = true;
        _onStopped?.Invoke(message);
    }

    /// <summary>Writes out everything queued, flushes and closes the stream. Safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _closing = true;
        _queue.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        TryFlush();
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
