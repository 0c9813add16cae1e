using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TunStack.Wire;

/// <summary>
/// The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words.
/// </summary>
/// <remarks>
/// <para>
/// The sum is independent of byte order (RFC 1071 §2(B)): summing the words as the host reads them (little-endian
/// on x86 and Arm) and swapping the two bytes of the folded 16-bit result gives the big-endian sum. So the bytes are
/// read in wide native-order chunks and nothing is swapped per word: 32-byte vectors (<see cref="Vector256"/>), else
/// 16-byte vectors (<see cref="Vector128"/>), else 8-byte integers, each split into 32-bit halves that are added
/// into 64-bit accumulators. A 64-bit lane that receives one 32-bit value per 32 bytes of input cannot overflow
/// for any span (at most 2^31 bytes), so no carry is lost; the accumulators are folded to 16 bits once at the end
/// (RFC 1071 §2(C), "deferred carries"). Since 2^32 ≡ 2^16 ≡ 1 modulo 0xFFFF, a 32-bit chunk counts as the sum of
/// its two 16-bit words.
/// </para>
/// <para>
/// The sum depends only on the bytes, never on their alignment in memory: loads are unaligned and words are counted
/// from the start of the span.
/// </para>
/// </remarks>
internal static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running 32-bit partial sum (an odd trailing byte is padded with zero).</summary>
    /// <returns>A partial sum of at most 0x1FFFE, to add more to or to <see cref="Finish"/>.</returns>
    public static uint Add(uint sum, ReadOnlySpan<byte> data) =>
        Combine(sum, SumNative<SumOnly, Widest>(ref MemoryMarshal.GetReference(data), ref Unsafe.NullRef<byte>(), (nuint)data.Length));

    /// <summary>
    /// Copies <paramref name="source"/> to the start of <paramref name="destination"/> and adds it to the partial sum
    /// <paramref name="sum"/>, in one pass over the bytes: the same result as <c>source.CopyTo(destination)</c>
    /// followed by <see cref="Add"/>, for code that copies a payload anyway.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <paramref name="source"/>.</exception>
    public static uint CopyAndAdd(ReadOnlySpan<byte> source, Span<byte> destination, uint sum)
    {
        if (source.Length > destination.Length)
            throw new ArgumentException("The destination is shorter than the source.", nameof(destination));
        if (source.Overlaps(destination))
        {
            // The one-pass loop reads ahead of what it writes; overlapping spans take the safe route.
            source.CopyTo(destination);
            return Add(sum, destination[..source.Length]);
        }
        return Combine(sum, SumNative<CopyAndSum, Widest>(ref MemoryMarshal.GetReference(source),
            ref MemoryMarshal.GetReference(destination), (nuint)source.Length));
    }

    /// <summary>
    /// Copies <paramref name="first"/> and then <paramref name="second"/> back to back to the start of
    /// <paramref name="destination"/> and adds the bytes to <paramref name="sum"/> as one run (the two halves of a
    /// wrapped ring buffer, say). When <paramref name="first"/> has odd length, the words of <paramref name="second"/>
    /// straddle the join; its sum is taken on its own and byte-swapped into place (RFC 1071 §2(B)).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than both sources together.</exception>
    public static uint CopyAndAdd(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, Span<byte> destination, uint sum)
    {
        if (first.Length + second.Length > destination.Length)
            throw new ArgumentException("The destination is shorter than the two sources.", nameof(destination));
        sum = CopyAndAdd(first, destination, sum);
        if (second.IsEmpty)
            return sum;
        uint secondSum = CopyAndAdd(second, destination[first.Length..], 0);
        if ((first.Length & 1) != 0)
            secondSum = BinaryPrimitives.ReverseEndianness((ushort)Fold16(secondSum));
        return Combine(sum, secondSum, swap: false);
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
    /// Partial sum of the TCP/UDP pseudo-header: RFC 9293 §3.1 for IPv4 (source, destination, zero, protocol, TCP
    /// length), RFC 8200 §8.1 for IPv6 (source, destination, 32-bit length, zeros, next header).
    /// </summary>
    public static uint PseudoHeader(IpAddress source, IpAddress destination, byte protocol, int length)
    {
        // Each address contributes the sum of its 16-bit words; nothing needs to be laid out in memory first.
        ulong sum = source.SumOfWords() + destination.SumOfWords() + protocol + (uint)(length >> 16) + (uint)(length & 0xFFFF);
        return Fold32(sum);
    }

    /// <summary>Which loops a sum may use: the widest the hardware has, or narrower ones (tests check each).</summary>
    internal enum Path
    {
        /// <summary>256-bit vectors when accelerated, then 128-bit ones, then scalar: what the public methods use.</summary>
        Widest,
        /// <summary>128-bit vectors and scalar, as on hardware without 256-bit vectors.</summary>
        Vector128,
        /// <summary>8-byte integers only, as on hardware without SIMD.</summary>
        Scalar,
    }

    /// <summary><see cref="Add"/> restricted to the loops of <paramref name="path"/>.</summary>
    internal static uint Add(uint sum, ReadOnlySpan<byte> data, Path path)
    {
        ref byte source = ref MemoryMarshal.GetReference(data);
        ref byte none = ref Unsafe.NullRef<byte>();
        var length = (nuint)data.Length;
        return Combine(sum, path switch
        {
            Path.Vector128 => SumNative<SumOnly, Narrow>(ref source, ref none, length),
            Path.Scalar => SumNative<SumOnly, NoVectors>(ref source, ref none, length),
            _ => SumNative<SumOnly, Widest>(ref source, ref none, length),
        });
    }

    /// <summary><see cref="CopyAndAdd(ReadOnlySpan{byte}, Span{byte}, uint)"/> restricted to the loops of <paramref name="path"/> (no overlap check).</summary>
    internal static uint CopyAndAdd(ReadOnlySpan<byte> source, Span<byte> destination, uint sum, Path path)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(source.Length, destination.Length);
        ref byte from = ref MemoryMarshal.GetReference(source);
        ref byte to = ref MemoryMarshal.GetReference(destination);
        var length = (nuint)source.Length;
        return Combine(sum, path switch
        {
            Path.Vector128 => SumNative<CopyAndSum, Narrow>(ref from, ref to, length),
            Path.Scalar => SumNative<CopyAndSum, NoVectors>(ref from, ref to, length),
            _ => SumNative<CopyAndSum, Widest>(ref from, ref to, length),
        });
    }

    /// <summary>
    /// The one's-complement sum of <paramref name="length"/> bytes at <paramref name="source"/> as 16-bit words in
    /// host order (an odd trailing byte padded with zero), not yet folded; with <typeparamref name="TMode"/> =
    /// <see cref="CopyAndSum"/> each chunk is also stored to <paramref name="destination"/>. <typeparamref name="TWidth"/>
    /// says which vector loops may run.
    /// </summary>
    private static ulong SumNative<TMode, TWidth>(ref byte source, ref byte destination, nuint length)
        where TMode : struct, IStoreMode where TWidth : struct, IVectorWidth
    {
        nuint i = 0;
        ulong acc = 0;
        if (TWidth.Use256 && Vector256.IsHardwareAccelerated && length >= (nuint)Vector256<byte>.Count)
        {
            // Four independent accumulators: the low and high 32-bit halves of two vectors per round, so the adds of
            // one round do not wait on each other.
            var low = Vector256.Create(0xFFFF_FFFFUL);
            Vector256<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 64 <= length; i += 64)
            {
                var v0 = Vector256.LoadUnsafe(ref source, i);
                var v1 = Vector256.LoadUnsafe(ref source, i + 32);
                if (TMode.Stores)
                {
                    v0.StoreUnsafe(ref destination, i);
                    v1.StoreUnsafe(ref destination, i + 32);
                }
                a0 += v0.AsUInt64() & low;
                a1 += v0.AsUInt64() >>> 32;
                a2 += v1.AsUInt64() & low;
                a3 += v1.AsUInt64() >>> 32;
            }
            if (i + 32 <= length)
            {
                var v = Vector256.LoadUnsafe(ref source, i);
                if (TMode.Stores) v.StoreUnsafe(ref destination, i);
                a0 += v.AsUInt64() & low;
                a1 += v.AsUInt64() >>> 32;
                i += 32;
            }
            acc = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        if (TWidth.Use128 && Vector128.IsHardwareAccelerated && length - i >= (nuint)Vector128<byte>.Count)
        {
            // Without 256-bit vectors this is the main loop; with them, it takes a 16-byte piece of the tail.
            var low = Vector128.Create(0xFFFF_FFFFUL);
            Vector128<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= length; i += 32)
            {
                var v0 = Vector128.LoadUnsafe(ref source, i);
                var v1 = Vector128.LoadUnsafe(ref source, i + 16);
                if (TMode.Stores)
                {
                    v0.StoreUnsafe(ref destination, i);
                    v1.StoreUnsafe(ref destination, i + 16);
                }
                a0 += v0.AsUInt64() & low;
                a1 += v0.AsUInt64() >>> 32;
                a2 += v1.AsUInt64() & low;
                a3 += v1.AsUInt64() >>> 32;
            }
            if (i + 16 <= length)
            {
                var v = Vector128.LoadUnsafe(ref source, i);
                if (TMode.Stores) v.StoreUnsafe(ref destination, i);
                a0 += v.AsUInt64() & low;
                a1 += v.AsUInt64() >>> 32;
                i += 16;
            }
            acc += Vector128.Sum((a0 + a1) + (a2 + a3));
        }
        return SumScalar<TMode>(ref source, ref destination, i, length, acc);
    }

    /// <summary>Bytes <paramref name="start"/>..<paramref name="length"/> in 8-, 4-, 2- and 1-byte pieces, added to <paramref name="acc"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SumScalar<TMode>(ref byte source, ref byte destination, nuint start, nuint length, ulong acc)
        where TMode : struct, IStoreMode
    {
        nuint i = start;
        ulong acc2 = 0;
        for (; i + 8 <= length; i += 8)
        {
            ulong w = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref source, i));
            if (TMode.Stores) Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, i), w);
            acc += (uint)w;
            acc2 += w >> 32;
        }
        acc += acc2;
        if (i + 4 <= length)
        {
            uint w = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref source, i));
            if (TMode.Stores) Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, i), w);
            acc += w;
            i += 4;
        }
        if (i + 2 <= length)
        {
            ushort w = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref source, i));
            if (TMode.Stores) Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, i), w);
            acc += w;
            i += 2;
        }
        if (i < length)
        {
            // The odd last byte is the high-order byte of a zero-padded big-endian word (RFC 1071 §4.1): the low-order
            // byte of a word read little-endian.
            byte b = Unsafe.Add(ref source, i);
            if (TMode.Stores) Unsafe.Add(ref destination, i) = b;
            acc += BitConverter.IsLittleEndian ? b : (uint)b << 8;
        }
        return acc;
    }

    /// <summary>
    /// Adds a host-order sum of words to a big-endian partial sum: folds it to 16 bits, swaps its bytes on a
    /// little-endian host (RFC 1071 §2(B)), and returns the total folded to at most 0x1FFFE.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Combine(uint sum, ulong native, bool swap = true)
    {
        uint folded = Fold16(native);
        if (swap && BitConverter.IsLittleEndian)
            folded = BinaryPrimitives.ReverseEndianness((ushort)folded);
        return Fold32((ulong)sum + folded);
    }

    /// <summary>Folds a 64-bit sum of words to 32 bits and then to at most 0x1FFFE (zero stays zero, nothing else becomes zero).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Fold32(ulong sum)
    {
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32); // < 2^33
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32); // < 2^32
        uint s = (uint)sum;
        return (s >> 16) + (s & 0xFFFF);
    }

    /// <summary>Folds a sum of words to 16 bits with end-around carries: 0 only for 0, otherwise 1..0xFFFF.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Fold16(ulong sum)
    {
        uint s = Fold32(sum);            // <= 0x1FFFE
        return (s >> 16) + (s & 0xFFFF); // <= 0xFFFF
    }

    /// <summary>Whether the summing loop also stores what it reads: two struct types, so the JIT compiles each variant separately.</summary>
    private interface IStoreMode
    {
        static abstract bool Stores { get; }
    }

    private readonly struct SumOnly : IStoreMode
    {
        public static bool Stores => false;
    }

    private readonly struct CopyAndSum : IStoreMode
    {
        public static bool Stores => true;
    }

    /// <summary>Which vector loops a sum may use (each choice compiled separately, so the tests can reach every loop).</summary>
    private interface IVectorWidth
    {
        static abstract bool Use256 { get; }
        static abstract bool Use128 { get; }
    }

    private readonly struct Widest : IVectorWidth
    {
        public static bool Use256 => true;
        public static bool Use128 => true;
    }

    private readonly struct Narrow : IVectorWidth
    {
        public static bool Use256 => false;
        public static bool Use128 => true;
    }

    private readonly struct NoVectors : IVectorWidth
    {
        public static bool Use256 => false;
        public static bool Use128 => false;
    }
}
