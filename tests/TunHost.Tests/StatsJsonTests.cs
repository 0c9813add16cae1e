using System.Text.Json;
using TunStack.Runtime;

namespace TunStack.Host.Tests;

public sealed class StatsJsonTests
{
    private static readonly TunStackDiagnostics Empty = new() { Connections = [], Counters = new StackCounters() };

    [Fact]
    public void Each_connection_is_listed_with_its_endpoints_and_state()
    {
        var diagnostics = new TunStackDiagnostics
        {
            Connections =
            [
                new TcpConnectionStatistics
                {
                    LocalEndPoint = System.Net.IPEndPoint.Parse("[2001:2::2]:80"),
                    RemoteEndPoint = System.Net.IPEndPoint.Parse("[2001:2::1]:40000"),
                    State = TunStack.Tcp.TcpState.CloseWait,
                    SmoothedRtt = TimeSpan.FromMicroseconds(1500),
                    CongestionWindow = 14600,
                    CongestionControl = "cubic",
                },
            ],
            Counters = new StackCounters { PacketsReceived = 7 },
        };
        using var stats = JsonDocument.Parse(StatsJson.Render(diagnostics));
        var connection = stats.RootElement.GetProperty("connections")[0];
        Assert.Equal("[2001:2::2]:80", connection.GetProperty("local").GetString());
        Assert.Equal("[2001:2::1]:40000", connection.GetProperty("remote").GetString());
        Assert.Equal("CLOSE-WAIT", connection.GetProperty("rfcState").GetString());
        Assert.Equal(1500, connection.GetProperty("srttMicros").GetInt64());
        Assert.Equal(14600, connection.GetProperty("cwnd").GetInt64());
        Assert.Equal(7, stats.RootElement.GetProperty("counters").GetProperty("packetsReceived").GetInt64());
    }

    [Fact]
    public void Without_impairment_there_is_no_impairment_section()
    {
        using var stats = JsonDocument.Parse(StatsJson.Render(Empty));
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

        using var stats = JsonDocument.Parse(StatsJson.Render(Empty, impaired));
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
