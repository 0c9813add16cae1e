using CsCheck;
using TunStack.Tcp;
using Xunit;

namespace TunStack.Tests.Tcp;

/// <summary>RFC 9293 §3.4 modulo-2^32 comparisons, with RFC 1982's "undefined at exactly 2^31" left untested.</summary>
public class SeqNumberTests
{
    private static readonly Gen<uint> Distance = Gen.UInt[1, int.MaxValue]; // 0 < n < 2^31

    [Fact]
    public void A_is_before_a_plus_n_for_every_n_below_two_to_the_31()
    {
        Gen.Select(Gen.UInt, Distance).Sample((a, n) =>
        {
            var s = new SeqNumber(a);
            var t = s + n;
            Assert.True(s < t);
            Assert.True(s <= t);
            Assert.True(t > s);
            Assert.True(t >= s);
            Assert.False(t < s);
            Assert.False(s > t);
            Assert.False(s == t);
            Assert.True(s != t);
            Assert.Equal((int)n, t - s);
            Assert.Equal(-(int)n, s - t);
            Assert.Equal(s, t - (int)n);
            Assert.Equal(t, SeqNumber.Max(s, t));
            Assert.Equal(s, SeqNumber.Min(s, t));
        }, iter: 10_000);
    }

    [Fact]
    public void Comparisons_hold_across_the_wrap()
    {
        Gen.Select(Gen.UInt[0, 1000], Gen.UInt[1, 1000]).Sample((before, after) =>
        {
            var low = new SeqNumber(uint.MaxValue - before); // just below 2^32
            var high = new SeqNumber(after - 1);             // just above 0
            Assert.True(low < high);
            Assert.True(high > low);
            Assert.Equal((int)(before + after), high - low);
            Assert.Equal(high, low + (int)(before + after));
        }, iter: 5000);
    }

    [Fact]
    public void Equal_values_compare_equal()
    {
        Gen.UInt.Sample(a =>
        {
            var s = new SeqNumber(a);
            var t = new SeqNumber(a);
            Assert.True(s == t);
            Assert.True(s <= t && s >= t);
            Assert.False(s < t || s > t);
            Assert.Equal(0, s - t);
            Assert.Equal(s.GetHashCode(), t.GetHashCode());
            Assert.True(s.Equals((object)t));
        }, iter: 2000);
    }

    [Fact]
    public void Int_and_uint_addition_agree_and_wrap()
    {
        Gen.Select(Gen.UInt, Gen.Int).Sample((a, n) =>
        {
            var s = new SeqNumber(a);
            Assert.Equal(unchecked(a + (uint)n), (s + n).Value);
            Assert.Equal(s + n, s + unchecked((uint)n));
            Assert.Equal(s, s + n - n);
        }, iter: 5000);
        Assert.Equal(0u, (new SeqNumber(uint.MaxValue) + 1).Value);
        Assert.Equal(uint.MaxValue, (new SeqNumber(0) - 1).Value);
    }

    [Fact]
    public void InRange_matches_the_modular_definition()
    {
        // x in [low, low + w) iff (x - low) mod 2^32 < w, for windows 0 <= w < 2^31.
        Gen.Select(Gen.UInt, Gen.UInt[0, int.MaxValue], Gen.UInt).Sample((low, w, x) =>
        {
            var lo = new SeqNumber(low);
            var hi = new SeqNumber(unchecked(low + w));
            bool expected = unchecked(x - low) < w;
            Assert.Equal(expected, new SeqNumber(x).InRange(lo, hi));
        }, iter: 10_000);
    }

    [Fact]
    public void InRange_edges_across_the_wrap()
    {
        Gen.Select(Gen.UInt, Gen.UInt[1, int.MaxValue]).Sample((low, w) =>
        {
            var lo = new SeqNumber(low);
            var hi = lo + w;
            Assert.True(lo.InRange(lo, hi));            // low is inside
            Assert.True((hi - 1).InRange(lo, hi));      // the last one is inside
            Assert.False(hi.InRange(lo, hi));           // high is outside
            Assert.False((lo - 1).InRange(lo, hi));     // just before is outside
        }, iter: 10_000);
        var wrapLow = new SeqNumber(0xFFFF_FFF0);
        Assert.True(new SeqNumber(5).InRange(wrapLow, wrapLow + 0x20));
        Assert.False(new SeqNumber(0x10).InRange(wrapLow, wrapLow + 0x20));
        Assert.False(new SeqNumber(7).InRange(new SeqNumber(7), new SeqNumber(7))); // empty window
    }
}
