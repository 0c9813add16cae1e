using System.Text;
using TunStack.Host.Tests.Integration;
using Xunit;

namespace TunStack.Host.Tests;

public class ExpectedBytesTests
{
    [Fact]
    public void Pattern_is_64_ascii_characters_ending_in_newline()
    {
        Assert.Equal(64, ExpectedBytes.Pattern.Length);
        Assert.Equal(64, Encoding.ASCII.GetByteCount(ExpectedBytes.Pattern));
        Assert.EndsWith("+\n", ExpectedBytes.Pattern);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(65536)]
    [InlineData(200_003)]
    public void Streaming_hash_equals_hash_of_the_whole_body(int length)
    {
        byte[] body = new byte[length];
        for (int i = 0; i < length; i++)
            body[i] = (byte)ExpectedBytes.Pattern[i % 64];
        Assert.Equal(ExpectedBytes.Sha256Of(body), ExpectedBytes.Sha256(length));
    }
}
