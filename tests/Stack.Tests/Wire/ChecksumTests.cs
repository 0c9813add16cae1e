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
