using System.Text.Json;
using TunStack.Runtime;

namespace TunStack.Host.Tests;

public sealed class StatsJsonTests
{
    [Fact]
    public void Without_impairment_there_is_no_impairment_section()
    {
        using var stats = JsonDocument.Parse(StatsJson.Render(new NetStack(new NetStackOptions())));
        Assert.True(stats.RootElement.TryGetProperty("counters", out _));
        Assert.False(stats.RootElement.TryGetProperty("impairment", out _));
    }

    [Fact]
    public void The_impairment_section_counts_each_direction()
    {
        var inner = new SinkDevice();
        using var impaired = new ImpairedDevice(inner, ImpairmentOptions.Parse("loss=100%,seed=9"));
        impaired.Write(new byte[40]);
        impaired.Write(new byte[40]);
        Assert.Equal(0, inner.Writes);

        using var stats = JsonDocument.Parse(StatsJson.Render(new NetStack(new NetStackOptions()), impaired));
        JsonElement impairment = stats.RootElement.GetProperty("impairment");
        Assert.Equal("loss=100%,seed=9", impairment.GetProperty("options").GetString());
        JsonElement outbound = impairment.GetProperty("outbound");
        Assert.Equal(2, outbound.GetProperty("packets").GetInt64());
        Assert.Equal(2, outbound.GetProperty("dropped").GetInt64());
        foreach (string name in new[] { "duplicated", "corrupted", "reordered", "delayed" })
            Assert.Equal(0, outbound.GetProperty(name).GetInt64());
        Assert.Equal(0, impairment.GetProperty("inbound").GetProperty("packets").GetInt64());
    }

    private sealed class SinkDevice : IPacketDevice
    {
        public int Writes;

        public string Name => "sink0";
        public int Mtu => 1500;
        public int TryRead(Span<byte> buffer) => 0;
        public void Write(ReadOnlySpan<byte> packet) => Writes++;
        public void WaitReadable(TimeSpan timeout) { }
        public void Wake() { }
        public void Dispose() { }
    }
}
