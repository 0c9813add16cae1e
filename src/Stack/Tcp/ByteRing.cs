using System.Buffers;

namespace TunStack.Tcp;

/// <summary>
/// A fixed-capacity FIFO of bytes, used for both the send buffer (unacknowledged + unsent data) and the receive
/// buffer (in-order data the application has not read yet, followed in the free space by out-of-order data the
/// reassembly keeps track of: <see cref="WriteAt"/> and <see cref="Extend"/>). Never grows. Its storage is rented
/// from a pool on the first write and can be given back while empty (<see cref="Release"/>), so idle, embryonic and
/// TIME-WAIT connections hold no buffer memory.
/// </summary>
internal sealed class ByteRing
{
    private readonly int _capacity;
    private readonly BufferBudget? _budget;
    private byte[] _buffer = [];
    private int _head;   // index of the oldest byte
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

    /// <summary>Returns the storage to the pool if the ring is empty; it is rented again on the next write.</summary>
    public void Release()
    {
        if (_count != 0 || _buffer.Length == 0) return;
        _budget?.Returned(_buffer.Length);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
        _head = 0;
    }

    private void Rent()
    {
        _buffer = ArrayPool<byte>.Shared.Rent(_capacity);
        _budget?.Rented(_buffer.Length);
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
        if (_buffer.Length == 0) Rent();
        int tail = (_head + _count) % _capacity;
        int first = Math.Min(n, _capacity - tail);
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
        if (_buffer.Length == 0) Rent();
        int start = (_head + _count + offset) % _capacity;
        int first = Math.Min(data.Length, _capacity - start);
        data[..first].CopyTo(_buffer.AsSpan(start));
        data[first..].CopyTo(_buffer);
    }

    /// <summary>Makes the next <paramref name="n"/> bytes of free space, stored earlier by <see cref="WriteAt"/>, part of the FIFO.</summary>
    public void Extend(int n)
    {
        if ((uint)n > (uint)Free || (n > 0 && _buffer.Length == 0))
            throw new ArgumentOutOfRangeException(nameof(n));
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
        _head = (_head + n) % _capacity;
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
        int start = (_head + offset) % _capacity;
        int firstLength = Math.Min(length, _capacity - start);
        first = _buffer.AsSpan(start, firstLength);
        second = _buffer.AsSpan(0, length - firstLength);
    }
}
