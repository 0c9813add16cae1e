using TunStack.Fuzz;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Replays every input of the committed fuzz corpus (fuzz/corpus) and every crash the fuzzer found
/// (fuzz/crashes) through both harnesses, so what the fuzzer learned keeps being checked by the ordinary test run.
/// A crash input fails here until the bug it found is fixed.
/// </summary>
public class FuzzCorpusReplayTests
{
    private static readonly string FuzzDirectory = FindFuzzDirectory();

    private static string FindFuzzDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "fuzz", "corpus");
            if (Directory.Exists(candidate))
                return Path.Combine(dir.FullName, "fuzz");
        }
        throw new DirectoryNotFoundException($"no fuzz/corpus above {AppContext.BaseDirectory}");
    }

    private static TheoryData<string> Inputs(string folder)
    {
        var data = new TheoryData<string>();
        string root = Path.Combine(FuzzDirectory, folder);
        if (Directory.Exists(root))
            foreach (string file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                if (Path.GetFileName(file) != "README.md")
                    data.Add(Path.GetRelativePath(FuzzDirectory, file));
        return data;
    }

    public static TheoryData<string> CorpusFiles() => Inputs("corpus");
    public static TheoryData<string> CrashFiles() => Inputs("crashes");

    [Fact]
    public void The_corpus_has_inputs_for_both_harnesses()
    {
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(FuzzDirectory, "corpus", "wire")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(FuzzDirectory, "corpus", "engine")));
    }

    [Fact]
    public void The_wire_corpus_has_ipv6_packets_and_its_syn_reaches_the_engine()
    {
        string wire = Path.Combine(FuzzDirectory, "corpus", "wire");
        var ipv6 = Directory.GetFiles(wire).Select(File.ReadAllBytes)
            .Where(b => b.Length >= Ipv6Packet.HeaderLength && b[0] >> 4 == 6).ToList();
        Assert.True(ipv6.Count >= 15, $"only {ipv6.Count} IPv6 packets in fuzz/corpus/wire");
        // Extension header chains are among them: hop-by-hop, routing, fragment and destination options first.
        foreach (byte header in new[] { Ipv6Packet.HopByHopOptions, Ipv6Packet.RoutingHeader, Ipv6Packet.FragmentHeader, Ipv6Packet.DestinationOptions })
            Assert.Contains(ipv6, b => b[6] == header);

        // The hand-built SYN to port 80 is answered, so mutations of it start inside the TCP engine.
        byte[] syn = File.ReadAllBytes(Directory.GetFiles(wire, "ipv6-syn80-*").Single(f => Path.GetFileName(f).Length == "ipv6-syn80-".Length + 12));
        var stack = new NetStack(new NetStackOptions { Addresses = [IpAddress.Parse("198.18.0.2"), IpAddress.Parse("2001:2::2")], IsnSecret = new byte[16] });
        stack.Listen(80);
        stack.Receive(syn, 1_000_000);
        stack.Poll(1_000_000);
        Assert.True(stack.Transmit.TryDequeue(out var packet));
        Assert.True(Ipv6Packet.TryParse(packet.Span, out var ip, out _));
        Assert.True(TcpSegment.TryParse(ip.Payload, out var synAck, out _));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        Assert.Equal(1001u, synAck.AcknowledgmentNumber);
        stack.Transmit.Return(packet);
    }

    [Fact]
    public void The_engine_corpus_has_sessions_over_ipv6()
    {
        // Bit 6 of an engine input's second byte runs its connections over IPv6 (EngineConfig.From).
        var ipv6 = Directory.GetFiles(Path.Combine(FuzzDirectory, "corpus", "engine")).Select(File.ReadAllBytes)
            .Where(b => b.Length > 2 && EngineConfig.From(b[0], b[1]).Ipv6).ToList();
        Assert.True(ipv6.Count >= 10, $"only {ipv6.Count} IPv6 sessions in fuzz/corpus/engine");
        Assert.All(ipv6, b => Assert.True(EngineConfig.From(b[0], b[1]).Mtu >= 1280));
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Corpus_input_passes_both_harnesses(string file) => ReplayBoth(file);

    [Theory]
    [MemberData(nameof(CrashFiles))]
    public void Crash_input_passes_both_harnesses(string file) => ReplayBoth(file);

    private static void ReplayBoth(string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(FuzzDirectory, file));
        WireHarness.Run(input);
        EngineHarness.Run(input);
    }
}
