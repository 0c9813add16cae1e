using Microsoft.Extensions.Time.Testing;

namespace TunStack.Host.Tests;

/// <summary>The quiet-time trim: only after a quiet period, only when enough was allocated since the last one.</summary>
public sealed class QuietTimeTrimmerTests
{
    private sealed class Probe
    {
        public long Packets;
        public long Allocated;
        public int Collections;
    }

    private static (QuietTimeTrimmer Trimmer, FakeTimeProvider Clock, Probe Probe) Start()
    {
        var clock = new FakeTimeProvider();
        var probe = new Probe();
        var trimmer = new QuietTimeTrimmer(() => probe.Packets, clock, () => probe.Collections++, () => probe.Allocated);
        return (trimmer, clock, probe);
    }

    [Fact]
    public void Trims_once_after_a_quiet_period_that_follows_allocation()
    {
        var (trimmer, clock, probe) = Start();
        using (trimmer)
        {
            probe.Allocated = QuietTimeTrimmer.AllocationThreshold;
            clock.Advance(QuietTimeTrimmer.QuietPeriod); // first look: records the activity count
            Assert.Equal(0, probe.Collections);
            clock.Advance(QuietTimeTrimmer.QuietPeriod); // no packet since: quiet
            Assert.Equal(1, probe.Collections);
            Assert.Equal(1, trimmer.Trims);

            // Still quiet, nothing allocated since: no second trim, however long it stays quiet.
            clock.Advance(QuietTimeTrimmer.QuietPeriod * 100);
            Assert.Equal(1, probe.Collections);
        }
    }

    [Fact]
    public void Never_trims_while_packets_flow()
    {
        var (trimmer, clock, probe) = Start();
        using (trimmer)
        {
            for (int i = 0; i < 50; i++)
            {
                probe.Packets += 1000;
                probe.Allocated += QuietTimeTrimmer.AllocationThreshold;
                clock.Advance(QuietTimeTrimmer.QuietPeriod);
            }
            Assert.Equal(0, probe.Collections);

            clock.Advance(QuietTimeTrimmer.QuietPeriod); // the burst is over
            Assert.Equal(1, probe.Collections);
        }
    }

    [Fact]
    public void Does_not_trim_for_a_little_allocation()
    {
        var (trimmer, clock, probe) = Start();
        using (trimmer)
        {
            probe.Allocated = QuietTimeTrimmer.AllocationThreshold - 1;
            clock.Advance(QuietTimeTrimmer.QuietPeriod * 10);
            Assert.Equal(0, probe.Collections);
        }
    }
}
