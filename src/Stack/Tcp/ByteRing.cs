namespace TunStack.Tcp;

/// <summary>
/// A fixed-capacity FIFO of bytes, used for both the send buffer (unacknowledged + unsent data) and the receive
/// buffer (in-order data the application has not read yet). Never grows, never allocates after construction.
/// </summary>
internal sealed class ByteRing
{
    private readonly byte[] _buffer;
    private int _head;   // index of the oldest byte
    private int _count;

    public ByteRing(int capacity) => _buffer = new byte[capacity];

    public int Capacity => _buffer.Length;
    public int Count => _count;
    public int Free => _buffer.Length - _count;

    /// <summary>Appends as much of <paramref name="data"/> as fits; returns the number of bytes taken.</summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        int tail = (_head + _count) % _buffer.Length;
        int first = Math.Min(n, _buffer.Length - tail);
        data[..first].CopyTo(_buffer.AsSpan(tail));
        data[first..n].CopyTo(_buffer);
        _count += n;
        return n;
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
        _head = (_head + n) % _buffer.Length;
        _count -= n;
        if (_count == 0)
            _head = 0;
    }

    /// <summary>The <paramref name="length"/> bytes starting <paramref name="offset"/> bytes after the oldest, as up to two spans (the ring may wrap).</summary>
    public void Peek(int offset, int length, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        if (offset < 0 || length < 0 || offset + length > _count)
            throw new ArgumentOutOfRangeException(nameof(length));
        int start = (_head + offset) % _buffer.Length;
        int firstLength = Math.Min(length, _buffer.Length - start);
        first = _buffer.AsSpan(start, firstLength);
        second = _buffer.AsSpan(0, length - firstLength);
    }
}
