using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class TcpFlagsTests
{
    // Expected strings are what tcpdump 4.99 printed for segments carrying these flag bytes.
    [Theory]
    [InlineData(0x02, "S")]
    [InlineData(0x12, "S.")]
    [InlineData(0x11, "F.")]
    [InlineData(0x14, "R.")]
    [InlineData(0x04, "R")]
    [InlineData(0x18, "P.")]
    [InlineData(0x10, ".")]
    [InlineData(0x03, "FS")]
    [InlineData(0x38, "P.U")]
    [InlineData(0x29, "FPU")]
    [InlineData(0xC2, "SEW")]
    [InlineData(0x00, "none")]
    public void ToShortString_matches_tcpdump(byte flags, string expected)
    {
        Assert.Equal(expected, ((TcpFlags)flags).ToShortString());
    }
}
