using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class ChecksumTests
{
    /// <summary>The obvious RFC 1071 algorithm: 16-bit big-endian words, odd byte padded, end-around carry.</summary>
    private static ushort Reference(ReadOnlySpan<byte> data, uint initial = 0)
    {
        uint sum = initial;
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        for (int i = 0; i < data.Length; i += 2)
        {
            uint word = (uint)data[i] << 8;
            if (i + 1 < data.Length) word |= data[i + 1];
            sum += word;
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    [Fact]
    public void Rfc1071_example()
    {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2; the checksum is its complement.
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2, Checksum.Finish(Checksum.Add(0, data)) ^ 0xFFFF);
        Assert.Equal((ushort)0x220d, Checksum.Compute(data));
    }

    [Fact]
    public void Empty_and_zero_data()
    {
        Assert.Equal((ushort)0xFFFF, Checksum.Compute([]));
        Assert.Equal((ushort)0xFFFF, Checksum.Compute(new byte[7]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(1460)]
    [InlineData(65536)]
    [InlineData(65537)]
    [InlineData(1 << 20)]
    public void All_ones_carries_are_not_lost(int length)
    {
        // 0xFF bytes maximise carries out of every word; 1 MiB overflows a 32-bit accumulator many times over.
        var data = new byte[length];
        data.AsSpan().Fill(0xFF);
        Assert.Equal(Reference(data), Checksum.Compute(data));
    }

    [Fact]
    public void Matches_the_naive_reference_for_random_buffers_and_alignments()
    {
        // Random lengths (odd ones included) and a random start offset, so the 32-bit word loop sees every
        // alignment and every tail length 0..3.
        Gen.Select(Gen.Byte.Array[0, 3000], Gen.Int[0, 3]).Sample((bytes, skip) =>
        {
            var data = bytes.AsSpan(Math.Min(skip, bytes.Length));
            Assert.Equal(Reference(data), Checksum.Compute(data));
        }, iter: 5000);
    }

    [Fact]
    public void Continues_from_any_initial_partial_sum()
    {
        Gen.Select(Gen.UInt, Gen.Byte.Array[0, 200]).Sample((initial, data) =>
            Assert.Equal(Reference(data, initial), Checksum.Finish(Checksum.Add(initial, data))), iter: 5000);
    }

    [Fact]
    public void Data_with_its_checksum_inserted_verifies_to_zero()
    {
        Gen.Select(Gen.Byte.Array[2, 2000], Gen.Int.Uniform).Sample((data, pick) =>
        {
            int at = (int)((uint)pick % (uint)(data.Length / 2)) * 2; // any even offset with room for 2 bytes
            data[at] = 0;
            data[at + 1] = 0;
            ushort c = Checksum.Compute(data);
            data[at] = (byte)(c >> 8);
            data[at + 1] = (byte)c;
            Assert.Equal(0, Checksum.Compute(data));
        }, iter: 5000);
    }

    [Fact]
    public void Add_split_at_even_offsets_equals_the_whole()
    {
        Gen.Select(Gen.Byte.Array[0, 2000], Gen.Int.Uniform, Gen.Int.Uniform).Sample((data, p, q) =>
        {
            // Two even cut points a <= b; the last piece may have odd length.
            int a = (int)((uint)p % (uint)(data.Length / 2 + 1)) * 2;
            int b = a + (int)((uint)q % (uint)((data.Length - a) / 2 + 1)) * 2;
            uint sum = Checksum.Add(0, data.AsSpan(0, a));
            sum = Checksum.Add(sum, data.AsSpan(a, b - a));
            sum = Checksum.Add(sum, data.AsSpan(b));
            Assert.Equal(Checksum.Compute(data), Checksum.Finish(sum));
        }, iter: 5000);
    }

    // The vectorized sum against the plain reference. Each loop (256-bit vectors, 128-bit vectors, 8-byte integers) is
    // checked on its own, so the loops hardware without AVX2 or without SIMD would run are tested here too.

    [Theory]
    [InlineData((int)Checksum.Path.Widest)]
    [InlineData((int)Checksum.Path.Vector128)]
    [InlineData((int)Checksum.Path.Scalar)]
    public void Every_length_and_alignment_matches_the_reference(int path)
    {
        // Every length up to several 64-byte rounds plus every tail (32, 16, 8, 4, 2, 1 bytes), at each of the 32 start
        // offsets within a 256-bit vector, continuing from a random partial sum.
        var buffer = new byte[700 + 32];
        Gen.Select(Gen.Byte.Array[buffer.Length], Gen.UInt).Sample((bytes, initial) =>
        {
            for (int offset = 0; offset < 32; offset++)
            {
                for (int length = 0; length <= 700; length++)
                {
                    var data = bytes.AsSpan(offset, length);
                    uint sum = Checksum.Add(initial, data, (Checksum.Path)path);
                    Assert.True(sum <= 0x1FFFE, $"partial sum {sum:x} is not folded");
                    Assert.Equal(Reference(data, initial), Checksum.Finish(sum));
                }
            }
        }, iter: 3);
    }

    [Theory]
    [InlineData((int)Checksum.Path.Widest)]
    [InlineData((int)Checksum.Path.Vector128)]
    [InlineData((int)Checksum.Path.Scalar)]
    public void Random_buffers_offsets_and_partial_sums_match_the_reference(int path)
    {
        Gen.Select(Gen.Byte.Array[0, 5000], Gen.Int[0, 63], Gen.UInt).Sample((bytes, skip, initial) =>
        {
            var data = bytes.AsSpan(Math.Min(skip, bytes.Length));
            Assert.Equal(Reference(data, initial), Checksum.Finish(Checksum.Add(initial, data, (Checksum.Path)path)));
        }, iter: 2000);
    }

    [Theory]
    [InlineData((int)Checksum.Path.Widest, 65535)]
    [InlineData((int)Checksum.Path.Widest, 1 << 22)]
    [InlineData((int)Checksum.Path.Vector128, 65535)]
    [InlineData((int)Checksum.Path.Vector128, 1 << 22)]
    [InlineData((int)Checksum.Path.Scalar, 65535)]
    [InlineData((int)Checksum.Path.Scalar, 1 << 22)]
    public void Every_path_keeps_all_carries_of_all_ones_data(int path, int length)
    {
        // 0xFF in every byte: every 32-bit half added is 0xFFFFFFFF, the most a lane can receive; 4 MiB overflows any
        // 32-bit lane many times over. Started from the largest partial sum, too.
        var data = new byte[length];
        data.AsSpan().Fill(0xFF);
        Assert.Equal(Reference(data), Checksum.Finish(Checksum.Add(0, data, (Checksum.Path)path)));
        Assert.Equal(Reference(data, uint.MaxValue), Checksum.Finish(Checksum.Add(uint.MaxValue, data, (Checksum.Path)path)));
    }

    [Fact]
    public void Zero_data_keeps_a_zero_sum_and_ones_complement_zero_is_kept_apart()
    {
        // 0 (nothing added) and 0xFFFF (a sum that wrapped) finish differently; every path must keep them apart.
        foreach (var path in new[] { Checksum.Path.Widest, Checksum.Path.Vector128, Checksum.Path.Scalar })
        {
            Assert.Equal(0xFFFF, Checksum.Finish(Checksum.Add(0, new byte[100], path)));
            var wraps = new byte[100];
            wraps[0] = 0xFF;
            wraps[1] = 0xFE;
            wraps[99] = 0x01; // an odd last byte: 0x0100; 0xFFFE + 0x0100 wraps to 0x00FF
            Assert.Equal(Reference(wraps), Checksum.Finish(Checksum.Add(0, wraps, path)));
            Assert.Equal(0, Checksum.Finish(Checksum.Add(0xFFFF, new byte[100], path)));
        }
    }

    [Theory]
    [InlineData((int)Checksum.Path.Widest)]
    [InlineData((int)Checksum.Path.Vector128)]
    [InlineData((int)Checksum.Path.Scalar)]
    public void CopyAndAdd_copies_exactly_the_source_and_sums_like_Add(int path)
    {
        Gen.Select(Gen.Byte.Array[0, 3000], Gen.Int[0, 40], Gen.Int[0, 40], Gen.UInt).Sample((source, at, slack, initial) =>
        {
            var destination = new byte[at + source.Length + slack];
            destination.AsSpan().Fill(0xA5);
            var target = destination.AsSpan(at);
            uint sum = (Checksum.Path)path == Checksum.Path.Widest
                ? Checksum.CopyAndAdd(source, target, initial)
                : Checksum.CopyAndAdd(source, target, initial, (Checksum.Path)path);
            Assert.Equal(Checksum.Add(initial, source), sum);
            Assert.Equal(Reference(source, initial), Checksum.Finish(sum));
            Assert.True(destination.AsSpan(at, source.Length).SequenceEqual(source));
            Assert.True(destination.AsSpan(0, at).IndexOfAnyExcept((byte)0xA5) < 0, "a byte before the destination was written");
            Assert.True(destination.AsSpan(at + source.Length).IndexOfAnyExcept((byte)0xA5) < 0, "a byte past the copy was written");
        }, iter: 2000);
    }

    [Fact]
    public void CopyAndAdd_of_two_pieces_sums_them_as_one_run()
    {
        // The two halves of a wrapped ring: when the first has odd length, the second's words straddle the join.
        Gen.Select(Gen.Byte.Array[0, 1600], Gen.Byte.Array[0, 1600], Gen.Int[0, 3], Gen.UInt).Sample((first, second, slack, initial) =>
        {
            var whole = first.Concat(second).ToArray();
            var destination = new byte[whole.Length + slack];
            destination.AsSpan().Fill(0x5A);
            uint sum = Checksum.CopyAndAdd(first, second, destination, initial);
            Assert.Equal(Reference(whole, initial), Checksum.Finish(sum));
            Assert.True(destination.AsSpan(0, whole.Length).SequenceEqual(whole));
            Assert.True(destination.AsSpan(whole.Length).IndexOfAnyExcept((byte)0x5A) < 0, "a byte past the copy was written");
        }, iter: 3000);
    }

    [Fact]
    public void CopyAndAdd_within_one_buffer_behaves_like_CopyTo()
    {
        // Overlapping source and destination (either direction) give what CopyTo gives, and the sum of the source.
        Gen.Select(Gen.Byte.Array[1, 2000], Gen.Int[-100, 100]).Sample((bytes, shift) =>
        {
            int length = bytes.Length / 2;
            int from = bytes.Length / 4;
            int to = Math.Clamp(from + shift, 0, bytes.Length - length);
            var expected = bytes.ToArray();
            uint expectedSum = Checksum.Add(7, expected.AsSpan(from, length));
            expected.AsSpan(from, length).CopyTo(expected.AsSpan(to));
            uint sum = Checksum.CopyAndAdd(bytes.AsSpan(from, length), bytes.AsSpan(to), 7);
            Assert.Equal(expectedSum, sum);
            Assert.Equal(expected, bytes);
        }, iter: 2000);
    }

    [Fact]
    public void CopyAndAdd_refuses_a_short_destination_and_writes_nothing()
    {
        var destination = new byte[10];
        Assert.Throws<ArgumentException>(() => Checksum.CopyAndAdd(new byte[11], destination, 0));
        Assert.Throws<ArgumentException>(() => Checksum.CopyAndAdd(new byte[6], new byte[5], destination, 0));
        Assert.All(destination, b => Assert.Equal(0, b));
    }

    [Fact]
    public void PseudoHeader_v6_equals_the_sum_over_the_explicit_bytes_for_any_addresses()
    {
        // RFC 8200 §8.1 with random addresses and lengths up to 32 bits.
        Gen.Select(Gen.Byte.Array[16], Gen.Byte.Array[16], Gen.Int[0, int.MaxValue], Gen.Byte).Sample((s, d, length, protocol) =>
        {
            var src = IpAddress.FromV6(s);
            var dst = IpAddress.FromV6(d);
            if (src.IsV4 || dst.IsV4) return; // mapped addresses stand for IPv4 and write 4 bytes
            var explicitBytes = new byte[40];
            s.CopyTo(explicitBytes, 0);
            d.CopyTo(explicitBytes, 16);
            explicitBytes[32] = (byte)(length >> 24);
            explicitBytes[33] = (byte)(length >> 16);
            explicitBytes[34] = (byte)(length >> 8);
            explicitBytes[35] = (byte)length;
            explicitBytes[39] = protocol;
            Assert.Equal(Reference(explicitBytes), Checksum.Finish(Checksum.PseudoHeader(src, dst, protocol, length)));
        }, iter: 2000);
    }

    [Fact]
    public void PseudoHeader_v4_equals_the_sum_over_the_explicit_bytes()
    {
        // RFC 9293 §3.1: source, destination, zero, protocol, TCP length.
        Gen.Select(Gen.UInt, Gen.UInt, Gen.Byte.Array[0, 100]).Sample((s, d, segment) =>
        {
            var src = IpAddress.FromV4(s);
            var dst = IpAddress.FromV4(d);
            var explicitBytes = new byte[12 + segment.Length];
            src.WriteTo(explicitBytes);
            dst.WriteTo(explicitBytes.AsSpan(4));
            explicitBytes[9] = IpProtocol.Tcp;
            explicitBytes[10] = (byte)(segment.Length >> 8);
            explicitBytes[11] = (byte)segment.Length;
            segment.CopyTo(explicitBytes, 12);
            uint sum = Checksum.Add(Checksum.PseudoHeader(src, dst, IpProtocol.Tcp, segment.Length), segment);
            Assert.Equal(Checksum.Compute(explicitBytes), Checksum.Finish(sum));
        }, iter: 2000);
    }

    [Fact]
    public void PseudoHeader_v6_equals_the_sum_over_the_explicit_bytes()
    {
        // RFC 8200 §8.1: source, destination, 32-bit upper-layer length, three zero bytes, next header.
        var src = IpAddress.Parse("2001:db8::1");
        var dst = IpAddress.Parse("fe80::1234:5678:9abc:def0");
        int length = 70_000; // larger than 16 bits: exercises the high half of the length
        var explicitBytes = new byte[40];
        src.WriteTo(explicitBytes);
        dst.WriteTo(explicitBytes.AsSpan(16));
        explicitBytes[32] = 0;
        explicitBytes[33] = (byte)(length >> 16);
        explicitBytes[34] = (byte)(length >> 8);
        explicitBytes[35] = (byte)length;
        explicitBytes[39] = IpProtocol.Tcp;
        Assert.Equal(Checksum.Compute(explicitBytes),
            Checksum.Finish(Checksum.PseudoHeader(src, dst, IpProtocol.Tcp, length)));
    }
}
