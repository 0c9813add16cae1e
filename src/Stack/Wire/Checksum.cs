using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace TunStack.Wire;

/// <summary>The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.</summary>
internal static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running 32-bit partial sum (an odd trailing byte is padded with zero).</summary>
    public static uint Add(uint sum, ReadOnlySpan<byte> data)
    {
        ulong acc = sum;
        // Sum 32-bit big-endian words into a 64-bit accumulator; fold at the end (RFC 1071 §2(B)).
        var words = MemoryMarshal.Cast<byte, uint>(data);
        // The words are read in host order; the tail below is summed big-endian, so swap on little-endian hosts
        // only (the test is a JIT-time constant).
        if (BitConverter.IsLittleEndian)
        {
            foreach (uint w in words)
                acc += BinaryPrimitives.ReverseEndianness(w);
        }
        else
        {
            foreach (uint w in words)
                acc += w;
        }
        int i = words.Length * 4;
        if (data.Length - i >= 2)
        {
            acc += (uint)(data[i] << 8 | data[i + 1]) << 16;
            i += 2;
            if (i < data.Length)
                acc += (uint)data[i] << 8;
        }
        else if (i < data.Length)
        {
            acc += (uint)data[i] << 24;
        }
        // Fold the 64-bit sum down to 32 bits so callers can keep adding.
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
        uint folded = (uint)acc;
        return (folded >> 16) + (folded & 0xFFFF);
    }

    /// <summary>Folds a partial sum to 16 bits and complements it: the value to put in a header.</summary>
    public static ushort Finish(uint sum)
    {
        while ((sum >> 16) != 0)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }

    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(0, data));

    /// <summary>
    /// Partial sum of the TCP/UDP pseudo-header: RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6.
    /// </summary>
    public static uint PseudoHeader(IpAddress source, IpAddress destination, byte protocol, int length)
    {
        Span<byte> buf = stackalloc byte[16];
        uint sum = Add(0, buf[..source.WriteTo(buf)]);
        sum = Add(sum, buf[..destination.WriteTo(buf)]);
        sum += protocol;
        sum += (uint)(length >> 16) + (uint)(length & 0xFFFF);
        return sum;
    }
}
