using System.Net;
using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class IpAddressTests
{
    [Fact]
    public void V4_parse_format_and_bytes()
    {
        var a = IpAddress.Parse("198.18.0.2");
        Assert.True(a.IsV4);
        Assert.Equal(0xC6120002u, a.V4Value);
        Assert.Equal("198.18.0.2", a.ToString());
        var bytes = new byte[16];
        Assert.Equal(4, a.WriteTo(bytes));
        Assert.Equal(new byte[] { 198, 18, 0, 2 }, bytes[..4]);
        Assert.Equal(a, IpAddress.FromV4(0xC6120002));
        Assert.Equal(a, IpAddress.FromV4([198, 18, 0, 2]));
        Assert.Equal(IPAddress.Parse("198.18.0.2"), a.ToIPAddress());
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("255.255.255.255")]
    [InlineData("10.0.0.1")]
    public void V4_edge_values_format_back(string text)
    {
        var a = IpAddress.Parse(text);
        Assert.True(a.IsV4);
        Assert.Equal(text, a.ToString());
    }

    [Fact]
    public void V6_parse_format_and_bytes()
    {
        var a = IpAddress.Parse("2001:db8::1");
        Assert.False(a.IsV4);
        Assert.Equal("2001:db8::1", a.ToString());
        var bytes = new byte[16];
        Assert.Equal(16, a.WriteTo(bytes));
        Assert.Equal(IPAddress.Parse("2001:db8::1").GetAddressBytes(), bytes);
        Assert.Equal(a, IpAddress.FromV6(bytes));
        Assert.Equal(IPAddress.Parse("2001:db8::1"), a.ToIPAddress());
        Assert.False(IpAddress.Parse("::").IsV4);
        Assert.False(IpAddress.Parse("::1.2.3.4").IsV4); // IPv4-compatible (deprecated) is not IPv4-mapped
    }

    [Fact]
    public void V4_mapped_v6_is_the_same_value_as_v4()
    {
        // By design (RFC 4291 §2.5.5.2 representation): ::ffff:a.b.c.d and a.b.c.d are one value.
        Assert.Equal(IpAddress.Parse("1.2.3.4"), IpAddress.Parse("::ffff:1.2.3.4"));
        Assert.True(IpAddress.Parse("::ffff:1.2.3.4").IsV4);
    }

    [Fact]
    public void Equality_and_hash()
    {
        var a = IpAddress.Parse("198.18.0.1");
        var b = IpAddress.Parse("198.18.0.1");
        var c = IpAddress.Parse("198.18.0.2");
        var v6 = IpAddress.Parse("fe80::c612:1");
        Assert.True(a == b);
        Assert.False(a != b);
        Assert.True(a != c);
        Assert.True(a.Equals((object)b));
        Assert.False(a.Equals((object)"198.18.0.1"));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, v6);
        var set = new HashSet<IpAddress> { a, b, c, v6 };
        Assert.Equal(3, set.Count);
    }

    [Fact]
    public void Random_v4_round_trips()
    {
        Gen.UInt.Sample(value =>
        {
            var a = IpAddress.FromV4(value);
            Assert.True(a.IsV4);
            Assert.Equal(value, a.V4Value);
            Assert.Equal(a, IpAddress.Parse(a.ToString()));
            var four = new byte[4];
            Assert.Equal(4, a.WriteTo(four));
            Assert.Equal(new IPAddress(four).ToString(), a.ToString());
            Assert.Equal(a, IpAddress.FromIPAddress(a.ToIPAddress()));
        }, iter: 2000);
    }

    [Fact]
    public void Random_v6_round_trips()
    {
        Gen.Byte.Array[16].Sample(bytes =>
        {
            var a = IpAddress.FromV6(bytes);
            var written = new byte[16];
            int n = a.WriteTo(written);
            bool mapped = bytes.AsSpan(0, 12).SequenceEqual(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF });
            Assert.Equal(mapped, a.IsV4);
            Assert.Equal(mapped ? bytes[12..] : bytes, written[..n]);
            Assert.Equal(a, IpAddress.Parse(a.ToString()));
            Assert.Equal(a, IpAddress.FromIPAddress(a.ToIPAddress()));
            Assert.Equal(a.GetHashCode(), IpAddress.FromV6(bytes).GetHashCode());
        }, iter: 2000);
    }
}
