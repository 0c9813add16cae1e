using TunStack.Runtime;

namespace TunStack.Tests.Runtime;

public class ImpairmentOptionsTests
{
    [Fact]
    public void Parses_every_key()
    {
        var options = ImpairmentOptions.Parse("loss=1%,reorder=2%,dup=0.5%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=18446744073709551615");
        Assert.Equal(1, options.LossPercent);
        Assert.Equal(2, options.ReorderPercent);
        Assert.Equal(0.5, options.DuplicatePercent);
        Assert.Equal(0.1, options.CorruptPercent);
        Assert.Equal(TimeSpan.FromMilliseconds(2), options.Delay);
        Assert.Equal(TimeSpan.FromMilliseconds(1), options.Jitter);
        Assert.Equal(ulong.MaxValue, options.Seed);
        Assert.True(options.IsActive);
    }

    [Theory]
    [InlineData("loss=1%", "loss=1%")]
    [InlineData(" seed = 7 , loss=100% ", "loss=100%,seed=7")]
    [InlineData("delay=500us,jitter=0", "delay=500us")]
    [InlineData("delay=0.25s", "delay=250ms")]
    [InlineData("jitter=1.5ms", "jitter=1500us")]
    [InlineData("delay=10s", "delay=10000ms")]
    [InlineData("loss=0%", "none")]
    [InlineData("corrupt=0.001%,dup=33.3%", "dup=33.3%,corrupt=0.001%")]
    public void Any_subset_parses_and_prints_back(string text, string canonical)
    {
        var options = ImpairmentOptions.Parse(text);
        Assert.Equal(canonical, options.ToString());
        if (canonical != "none")
            Assert.Equal(options, ImpairmentOptions.Parse(canonical));
    }

    [Fact]
    public void Only_a_seed_switches_nothing_on()
    {
        var options = ImpairmentOptions.Parse("seed=3");
        Assert.False(options.IsActive);
        Assert.Equal(3UL, options.Seed);
    }

    [Theory]
    [InlineData("", "expected key=value pairs")]
    [InlineData("   ", "expected key=value pairs")]
    [InlineData("loss", "'loss' is not key=value")]
    [InlineData("=1%", "'=1%' is not key=value")]
    [InlineData("loss=1%,,dup=1%", "empty item")]
    [InlineData("loss=1%,", "empty item")]
    [InlineData("speed=1%", "unknown key 'speed' (keys: loss, reorder, dup, corrupt, delay, jitter, seed)")]
    [InlineData("Loss=1%", "unknown key 'Loss'")]
    [InlineData("loss=1%,loss=2%", "'loss' is given twice")]
    [InlineData("loss=1", "loss=1: expected a percentage with its % sign, e.g. loss=1% or loss=0.5%")]
    [InlineData("dup=0.5", "dup=0.5: expected a percentage with its % sign")]
    [InlineData("loss=101%", "loss=101%: expected a percentage from 0% to 100%")]
    [InlineData("loss=-1%", "expected a percentage from 0% to 100%")]
    [InlineData("reorder=%", "expected a percentage from 0% to 100%")]
    [InlineData("corrupt=1e1%", "expected a percentage from 0% to 100%")]
    [InlineData("loss=NaN%", "expected a percentage from 0% to 100%")]
    [InlineData("loss=1 %", "expected a percentage from 0% to 100%")]
    [InlineData("delay=2", "delay=2: expected a duration such as delay=2ms, delay=500us or delay=0.1s")]
    [InlineData("delay=2m", "expected a duration")]
    [InlineData("delay=ms", "expected a duration")]
    [InlineData("delay=-2ms", "expected a duration")]
    [InlineData("jitter=2 ms", "expected a duration")]
    [InlineData("delay=Infinityms", "expected a duration")]
    [InlineData("delay=11s", "delay=11s: at most 10 s")]
    [InlineData("jitter=10001ms", "at most 10 s")]
    [InlineData("seed=-1", "seed=-1: expected an unsigned integer below 2^64")]
    [InlineData("seed=18446744073709551616", "expected an unsigned integer below 2^64")]
    [InlineData("seed=0x10", "expected an unsigned integer")]
    public void Errors_say_what_is_wrong(string text, string message)
    {
        Assert.False(ImpairmentOptions.TryParse(text, out var options, out string? error));
        Assert.Null(options);
        Assert.Contains(message, error, StringComparison.Ordinal);

        var thrown = Assert.Throws<FormatException>(() => ImpairmentOptions.Parse(text));
        Assert.Equal(error, thrown.Message);
    }
}
