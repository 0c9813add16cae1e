using TunStack.Linux;
using Xunit;

namespace TunStack.Host.Tests.Linux;

public class InterfaceRequestTests
{
    [Fact]
    public void Ifreq_is_name_then_native_short_flags_then_zeros()
    {
        Span<byte> ifreq = stackalloc byte[TunDevice.InterfaceRequestSize];
        ifreq.Fill(0xAA); // every byte must be written, not just the ones that matter
        TunDevice.FillInterfaceRequest(ifreq, "tun0", TunDevice.IFF_TUN | TunDevice.IFF_NO_PI);

        byte[] expected = new byte[40];
        expected[0] = (byte)'t';
        expected[1] = (byte)'u';
        expected[2] = (byte)'n';
        expected[3] = (byte)'0';
        // bytes 4..15: NUL padding of ifr_name[IFNAMSIZ]
        // bytes 16..17: ifr_flags = IFF_TUN | IFF_NO_PI = 0x1001, little-endian on x86-64 and arm64
        expected[16] = 0x01;
        expected[17] = 0x10;
        // bytes 18..39: rest of the union, zero
        Assert.True(BitConverter.IsLittleEndian);
        Assert.Equal(expected, ifreq.ToArray());
    }

    [Fact]
    public void Ifreq_constants_match_linux_headers()
    {
        Assert.Equal(40, TunDevice.InterfaceRequestSize);
        Assert.Equal(16, TunDevice.InterfaceNameSize);
        Assert.Equal(16, TunDevice.FlagsOffset);
        Assert.Equal((nuint)0x400454ca, TunDevice.TUNSETIFF);
        Assert.Equal(0x0001, TunDevice.IFF_TUN);
        Assert.Equal(0x1000, TunDevice.IFF_NO_PI);
    }

    [Fact]
    public void Longest_allowed_name_keeps_its_terminating_nul()
    {
        Span<byte> ifreq = stackalloc byte[TunDevice.InterfaceRequestSize];
        TunDevice.FillInterfaceRequest(ifreq, "abcdefghijklmno", TunDevice.IFF_TUN);

        Assert.Equal("abcdefghijklmno"u8.ToArray(), ifreq[..15].ToArray());
        Assert.Equal(0, ifreq[15]);
        Assert.Equal(0x01, ifreq[16]);
        Assert.Equal(0x00, ifreq[17]);
        Assert.Equal("abcdefghijklmno", TunDevice.ReadInterfaceName(ifreq));
    }

    [Fact]
    public void Name_written_back_by_the_kernel_is_read_up_to_the_nul()
    {
        byte[] ifreq = new byte[TunDevice.InterfaceRequestSize];
        "tun12"u8.CopyTo(ifreq);
        ifreq[16] = 0x01;
        Assert.Equal("tun12", TunDevice.ReadInterfaceName(ifreq));
    }

    [Theory]
    [InlineData("")]
    [InlineData("abcdefghijklmnop")] // 16 bytes: no room for the NUL
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("tun/0")]
    [InlineData("tun:0")]
    [InlineData("tun 0")]
    [InlineData("tun\t0")]
    public void Invalid_names_are_rejected_before_any_system_call(string name)
    {
        byte[] ifreq = new byte[TunDevice.InterfaceRequestSize];
        var e = Assert.Throws<ArgumentException>(() => TunDevice.FillInterfaceRequest(ifreq, name, TunDevice.IFF_TUN));
        Assert.Contains("Interface name", e.Message);
    }

    [Theory]
    [InlineData("tun0")]
    [InlineData("tun%d")]
    [InlineData("ts-0123abcd-x")]
    public void Valid_names_are_accepted(string name) => TunDevice.ValidateInterfaceName(name);

    [Fact]
    public void Ifreq_buffer_must_be_40_bytes()
    {
        byte[] small = new byte[39];
        Assert.Throws<ArgumentException>(() => TunDevice.FillInterfaceRequest(small, "tun0", TunDevice.IFF_TUN));
    }

    [Fact]
    public void Open_rejects_an_impossible_mtu()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TunDevice.Open("tun0", 67));
        Assert.Throws<ArgumentOutOfRangeException>(() => TunDevice.Open("tun0", 65536));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(0.2, 1)] // sub-millisecond timeouts round up so a wait loop never spins
    [InlineData(1, 1)]
    [InlineData(1.5, 2)]
    [InlineData(250, 250)]
    [InlineData(-1, -1)]
    public void Poll_timeout_is_whole_milliseconds_rounded_up(double milliseconds, int expected) =>
        Assert.Equal(expected, TunDevice.ToPollTimeout(TimeSpan.FromMilliseconds(milliseconds)));

    [Fact]
    public void Infinite_and_huge_timeouts_map_to_poll_values()
    {
        Assert.Equal(-1, TunDevice.ToPollTimeout(Timeout.InfiniteTimeSpan));
        Assert.Equal(int.MaxValue, TunDevice.ToPollTimeout(TimeSpan.FromDays(100)));
    }
}
