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

    [Fact]
    public void Counts_connections_by_state_and_lists_at_most_the_limit()
    {
        var stack = new NetStack(new NetStackOptions { HalfOpenLimit = 5000 });
        stack.Listen(80);
        int opened = StatsJson.MaxListedConnections + 200;
        for (int i = 0; i < opened; i++)
            stack.Receive(Syn(sourcePort: (ushort)(10000 + i)), nowMicros: 1_000);

        using var stats = JsonDocument.Parse(StatsJson.Render(TunStackDiagnostics.Of(stack, 0)));
        JsonElement root = stats.RootElement;
        Assert.Equal(opened, root.GetProperty("connectionCount").GetInt32());
        Assert.Equal(0, root.GetProperty("timeWaitCount").GetInt32());
        Assert.Equal(opened, root.GetProperty("connectionStates").GetProperty("SynReceived").GetInt32());
        Assert.Single(root.GetProperty("connectionStates").EnumerateObject());
        Assert.Equal(StatsJson.MaxListedConnections, root.GetProperty("connections").GetArrayLength());
        Assert.Equal("SynReceived", root.GetProperty("connections")[0].GetProperty("state").GetString());
    }

    [Fact]
    public void The_memory_section_reports_the_process_and_the_buffers()
    {
        using var stats = JsonDocument.Parse(StatsJson.Render(TunStackDiagnostics.Of(new NetStack(new NetStackOptions()), 0)));
        JsonElement memory = stats.RootElement.GetProperty("memory");
        if (OperatingSystem.IsLinux())
        {
            long resident = memory.GetProperty("residentBytes").GetInt64();
            Assert.InRange(resident, 1L << 20, 64L << 30);
            Assert.True(memory.GetProperty("peakResidentBytes").GetInt64() >= resident);
        }
        Assert.True(memory.GetProperty("managedAllocatedBytes").GetInt64() > 0);
        Assert.Equal(0, memory.GetProperty("bufferBytes").GetInt64());
        Assert.Equal(0, memory.GetProperty("applicationConnections").GetInt32());
    }

    [Fact]
    public void Resident_memory_is_parsed_from_proc_status()
    {
        const string status = "Name:\ttunstack\nVmPeak:\t  100 kB\nVmHWM:\t   40504 kB\nVmRSS:\t   39000 kB\nThreads:\t9\n";
        Assert.True(ProcessMemory.TryParseStatus(status, out long resident, out long peak));
        Assert.Equal(39000L * 1024, resident);
        Assert.Equal(40504L * 1024, peak);
        Assert.False(ProcessMemory.TryParseStatus("VmRSS:\t12 MB\n", out _, out _));
        Assert.False(ProcessMemory.TryParseStatus(null, out _, out _));
    }

    /// <summary>An IPv4 SYN from 198.18.0.1 to 198.18.0.2:80 with valid checksums.</summary>
    private static byte[] Syn(ushort sourcePort)
    {
        var source = TunStack.Wire.IpAddress.Parse("198.18.0.1");
        var destination = TunStack.Wire.IpAddress.Parse("198.18.0.2");
        byte[] packet = new byte[40];
        TunStack.Wire.Ipv4Packet.WriteHeader(packet, source, destination, 6, 20, identification: 1);
        TunStack.Wire.TcpSegment.WriteHeader(packet.AsSpan(20), sourcePort, 80, 1000, 0, TunStack.Wire.TcpFlags.Syn, 65535, 0);
        TunStack.Wire.TcpSegment.WriteChecksum(packet.AsSpan(20), source, destination);
        return packet;
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
