using BenchmarkDotNet.Attributes;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// The Internet checksum over an IPv4 header (20 B), a TCP header with options (40 B), one MSS of payload (1,460 B)
/// and the largest IPv4 packet (65,535 B, odd: the padded last byte is included). The baseline is the plain RFC 1071
/// loop over 16-bit words; <c>Scalar8</c> is the stack's fallback for hardware without SIMD (8-byte words);
/// <c>Vector</c> is <see cref="Checksum.Add"/> as the stack runs it (256-bit vectors where the CPU has them).
/// </summary>
[MemoryDiagnoser]
public class ChecksumBenchmarks
{
    [Params(20, 40, 1460, 65535)]
    public int Length { get; set; }

    private byte[] _data = [];

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Length];
        new Random(42).NextBytes(_data);
        if (PlainLoop() != Vector() || Scalar8() != Vector())
            throw new InvalidOperationException("The checksums disagree.");
    }

    [Benchmark(Baseline = true)]
    public ushort PlainLoop() => PlainRfc1071(_data);

    [Benchmark]
    public ushort Scalar8() => Checksum.Finish(Checksum.Add(0, _data, Checksum.Path.Scalar));

    [Benchmark]
    public ushort Vector() => Checksum.Compute(_data);

    /// <summary>RFC 1071 §4.1 as written: 16-bit big-endian words into a 32-bit accumulator, folded at the end.</summary>
    public static ushort PlainRfc1071(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
            sum += (uint)(data[i] << 8 | data[i + 1]);
        if (i < data.Length)
            sum += (uint)data[i] << 8;
        while ((sum >> 16) != 0)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }
}

/// <summary>
/// Copying a payload and summing it, as the send path does: <c>CopyTo</c> then <see cref="Checksum.Add"/> (two passes
/// over the bytes, the baseline) against <see cref="Checksum.CopyAndAdd(ReadOnlySpan{byte}, Span{byte}, uint)"/> (one).
/// </summary>
[MemoryDiagnoser]
public class CopyAndChecksumBenchmarks
{
    [Params(40, 1460, 65535)]
    public int Length { get; set; }

    private byte[] _source = [];
    private byte[] _destination = [];

    [GlobalSetup]
    public void Setup()
    {
        _source = new byte[Length];
        _destination = new byte[Length];
        new Random(42).NextBytes(_source);
        if (CopyThenAdd() != CopyAndAdd())
            throw new InvalidOperationException("The sums disagree.");
    }

    [Benchmark(Baseline = true)]
    public uint CopyThenAdd()
    {
        _source.AsSpan().CopyTo(_destination);
        return Checksum.Add(0, _destination);
    }

    [Benchmark]
    public uint CopyAndAdd() => Checksum.CopyAndAdd(_source, _destination, 0);
}
