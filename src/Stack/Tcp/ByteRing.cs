using System.Buffers;

namespace TunStack.Tcp;

/// <summary>
/// A fixed-capacity FIFO of bytes, used for both the send buffer (unacknowledged + unsent data) and the receive
/// buffer (in-order data the application has not read yet, followed in the free space by out-of-order data the
/// reassembly keeps track of: <see cref="WriteAt"/> and <see cref="Extend"/>). Its capacity — what the windows are
/// computed from — never changes; its storage follows the need: rented from a pool on the first write, small
/// (<see cref="InitialStorage"/>), doubled when the bytes held (or written ahead of the FIFO) outgrow it, up to the
/// capacity, and given back while empty (<see cref="Release"/>). So a connection that moves a request and a response
/// holds a few KiB, a bulk transfer the whole capacity, and idle, embryonic and TIME-WAIT connections nothing.
/// </summary>
internal sealed class ByteRing
{
    /// <summary>The storage rented first: one large segment with room to spare, a small request or response.</summary>
    internal const int InitialStorage = 4096;

    private readonly int _capacity;
    private readonly BufferBudget? _budget;
    private byte[] _buffer = [];   // the storage; bytes sit at (_head + i) % _buffer.Length
    private int _head;             // index of the oldest byte
    private int _count;

    public ByteRing(int capacity, BufferBudget? budget = null)
    {
        _capacity = capacity;
        _budget = budget;
    }

    public int Capacity => _capacity;
    public int Count => _count;
    public int Free => _capacity - _count;
    public bool HoldsMemory => _buffer.Length != 0;

    /// <summary>Bytes of storage held now (at least the capacity once grown to it, none while released).</summary>
    public int StorageLength => _buffer.Length;

    /// <summary>Returns the storage to the pool if the ring is empty; it is rented again on the next write.</summary>
    public void Release()
    {
        if (_count != 0 || _buffer.Length == 0) return;
        _budget?.Returned(_buffer.Length);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _head = 0;
    }

    /// <summary>
    /// Makes the storage hold at least <paramref name="needed"/> bytes from the head (at most the capacity): rents the
    /// first buffer, or a larger one — double, or what is needed — into which everything from the head on is copied in
    /// order, FIFO and out-of-order bytes alike.
    /// </summary>
    private void EnsureStorage(int needed)
    {
        if (needed <= _buffer.Length) return;
        int size = Math.Min(_capacity, Math.Max(needed, Math.Max(InitialStorage, _buffer.Length * 2)));
        var grown = ArrayPool<byte>.Shared.Rent(size);
        _budget?.Rented(grown.Length);
        var old = _buffer;
        if (old.Length != 0)
        {
            // Everything after the head moves to the start of the new storage (what lies past the old end wrapped).
            old.AsSpan(_head).CopyTo(grown);
            old.AsSpan(0, _head).CopyTo(grown.AsSpan(old.Length - _head));
            _budget?.Returned(old.Length);
            ArrayPool<byte>.Shared.Return(old);
        }
        _buffer = grown;
        _head = 0;
    }

    /// <summary>Drops all content and returns the storage.</summary>
    public void Clear()
    {
        _count = 0;
        Release();
    }

    /// <summary>Appends as much of <paramref name="data"/> as fits; returns the number of bytes taken.</summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        if (n == 0) return 0;
        EnsureStorage(_count + n);
        int size = _buffer.Length;
        int tail = (_head + _count) % size;
        int first = Math.Min(n, size - tail);
        data[..first].CopyTo(_buffer.AsSpan(tail));
        data[first..n].CopyTo(_buffer);
        _count += n;
        return n;
    }

    /// <summary>
    /// Stores <paramref name="data"/> in the free space, <paramref name="offset"/> bytes after the last byte of the
    /// FIFO, without making it part of the FIFO (out-of-order data waiting for the gap before it to fill).
    /// </summary>
    public void WriteAt(int offset, ReadOnlySpan<byte> data)
    {
        if (offset < 0 || offset + data.Length > Free)
            throw new ArgumentOutOfRangeException(nameof(offset));
        if (data.IsEmpty) return;
        EnsureStorage(_count + offset + data.Length);
        int size = _buffer.Length;
        int start = (_head + _count + offset) % size;
        int first = Math.Min(data.Length, size - start);
        data[..first].CopyTo(_buffer.AsSpan(start));
        data[first..].CopyTo(_buffer);
    }

    /// <summary>Makes the next <paramref name="n"/> bytes of free space, stored earlier by <see cref="WriteAt"/>, part of the FIFO.</summary>
    public void Extend(int n)
    {
        if ((uint)n > (uint)Free || _count + n > _buffer.Length)
            throw new ArgumentOutOfRangeException(nameof(n)); // only bytes WriteAt stored can join
        _count += n;
    }

    /// <summary>Copies out and removes up to <paramref name="destination"/>.Length bytes.</summary>
    public int Read(Span<byte> destination)
    {
        int n = Math.Min(destination.Length, _count);
        Peek(0, n, out var a, out var b);
        a.CopyTo(destination);
        b.CopyTo(destination[a.Length..]);
        Discard(n);
        return n;
    }

    /// <summary>Removes the oldest <paramref name="n"/> bytes.</summary>
    public void Discard(int n)
    {
        if ((uint)n > (uint)_count)
            throw new ArgumentOutOfRangeException(nameof(n));
        if (n == 0) return;
        // The head moves on even when the FIFO becomes empty: out-of-order bytes may wait right after it.
        _head = (_head + n) % _buffer.Length;
        _count -= n;
    }

    /// <summary>The <paramref name="length"/> bytes starting <paramref name="offset"/> bytes after the oldest, as up to two spans (the ring may wrap).</summary>
    public void Peek(int offset, int length, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        if (offset < 0 || length < 0 || offset + length > _count)
            throw new ArgumentOutOfRangeException(nameof(length));
        if (length == 0)
        {
            first = second = default;
            return;
        }
        int start = (_head + offset) % _buffer.Length;
        int firstLength = Math.Min(length, _buffer.Length - start);
        first = _buffer.AsSpan(start, firstLength);
        second = _buffer.AsSpan(0, length - firstLength);
    }
}
