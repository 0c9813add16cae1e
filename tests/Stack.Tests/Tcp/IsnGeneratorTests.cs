using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

public class IsnGeneratorTests
{
    private static readonly IpAddress A = IpAddress.Parse("198.18.0.2");
    private static readonly IpAddress B = IpAddress.Parse("198.18.0.1");

    [Fact]
    public void Different_tuples_get_unrelated_isns_and_time_moves_them_forward()
    {
        var isn = new IsnGenerator(ScriptedPeer.FixedSecret);
        var t1 = new FourTuple(A, 80, B, 40000);
        var t2 = new FourTuple(A, 80, B, 40001);
        var x = isn.Next(t1, 0);
        var y = isn.Next(t2, 0);
        Assert.NotEqual(x, y);
        Assert.NotEqual(0u, x.Value);
        // RFC 6528: the same tuple later gets ISN + elapsed/4 µs.
        Assert.Equal(x + 250_000, isn.Next(t1, 1_000_000));
    }

    [Fact]
    public void Another_secret_gives_other_isns()
    {
        var t = new FourTuple(A, 80, B, 40000);
        var other = Enumerable.Repeat((byte)7, 16).ToArray();
        Assert.NotEqual(new IsnGenerator(ScriptedPeer.FixedSecret).Next(t, 0), new IsnGenerator(other).Next(t, 0));
    }

    [Fact]
    public void SipHash_matches_the_reference_vector()
    {
        // Reference: the SipHash paper, Appendix A: key 00..0f, message 00..0e → a129ca6149be45e5.
        byte[] key = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
        byte[] message = Enumerable.Range(0, 15).Select(i => (byte)i).ToArray();
        ulong k0 = BitConverter.ToUInt64(key, 0), k1 = BitConverter.ToUInt64(key, 8);
        Assert.Equal(0xa129ca6149be45e5UL, SipHash.Hash(k0, k1, message));
    }
}
