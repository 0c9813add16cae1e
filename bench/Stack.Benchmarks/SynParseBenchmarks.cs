using BenchmarkDotNet.Attributes;
using PacketDotNet;
using PacketDotNet.Tcp;
using TunStack.Tests.Wire;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// Parsing the captured Linux SYN (<see cref="LinuxCaptures.Syn"/>: IPv4, TCP with MSS, SACK permitted, timestamps,
/// NOP, window scale) and reading what a stack needs from it: both ports, sequence and acknowledgment numbers, flags,
/// window, and every option's value. PacketDotNet, a general-purpose packet library, does the same reads on the same
/// bytes as the baseline.
/// </summary>
/// <remarks>
/// The work is not quite the same, and the difference favours the baseline: our <see cref="Ipv4Packet.TryParse"/>
/// always verifies the IPv4 header checksum and every length, and <see cref="TcpSegment.TryParse"/> the data offset
/// and the ports; PacketDotNet verifies no checksum unless asked, and is not asked here. Neither verifies the TCP
/// checksum (that is the data segment's parse benchmark, <see cref="WireBenchmarks.ParseIpv4Tcp"/>). Both results
/// are folded into one number, checked against the captured values in setup so neither side can skip a read.
/// </remarks>
[MemoryDiagnoser]
public class SynParseBenchmarks
{
    private byte[] _syn = [];

    [GlobalSetup]
    public void Setup()
    {
        _syn = LinuxCaptures.Syn;
        // 198.18.0.1:50560 > 198.18.0.2:18080 seq 3921558019, win 64240, mss 1460, sackOK, TS val 1370366983 ecr 0, wscale 10.
        long expected = Fold(50560, 18080, 3921558019, 0, (byte)TcpFlags.Syn, 64240, 1460, true, 1370366983, 0, 10);
        if (TunStack() != expected || PacketDotNet() != expected)
            throw new InvalidOperationException($"The parsers disagree with the capture: {TunStack()}, {PacketDotNet()}, expected {expected}.");
    }

    [Benchmark(Baseline = true)]
    public long PacketDotNet()
    {
        var packet = Packet.ParsePacket(LinkLayers.Raw, _syn);
        var tcp = packet.Extract<TcpPacket>();
        if (tcp is null) return -1;
        ushort mss = 0;
        bool sackPermitted = false;
        uint tsValue = 0, tsEcho = 0;
        int windowScale = 0;
        foreach (var option in tcp.OptionsCollection)
        {
            switch (option)
            {
                case MaximumSegmentSizeOption m: mss = m.Value; break;
                case SelectiveAcknowledgmentPermittedOption: sackPermitted = true; break;
                case TimeStampOption t: tsValue = t.Value; tsEcho = t.EchoReply; break;
                case WindowScaleFactorOption w: windowScale = w.ScaleFactor; break;
            }
        }
        return Fold(tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber, tcp.AcknowledgmentNumber, tcp.Flags, tcp.WindowSize,
            mss, sackPermitted, tsValue, tsEcho, windowScale);
    }

    [Benchmark]
    public long TunStack()
    {
        if (!Ipv4Packet.TryParse(_syn, out var ip, out _)) return -1;
        if (!TcpSegment.TryParse(ip.Payload, out var tcp, out _)) return -1;
        if (!TcpOptions.TryParse(tcp.Options, out var options)) return -1;
        return Fold(tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber, tcp.AcknowledgmentNumber, (byte)tcp.Flags, tcp.Window,
            options.Mss ?? 0, options.SackPermitted, options.TimestampValue, options.TimestampEcho, options.WindowScale ?? 0);
    }

    /// <summary>Every field read, folded into one value so that no read can be optimized away.</summary>
    private static long Fold(int sourcePort, int destinationPort, uint seq, uint ack, int flags, int window, int mss,
        bool sackPermitted, uint tsValue, uint tsEcho, int windowScale)
    {
        long h = sourcePort;
        h = h * 31 + destinationPort;
        h = h * 31 + seq;
        h = h * 31 + ack;
        h = h * 31 + flags;
        h = h * 31 + window;
        h = h * 31 + mss;
        h = h * 31 + (sackPermitted ? 1 : 0);
        h = h * 31 + tsValue;
        h = h * 31 + tsEcho;
        return h * 31 + windowScale;
    }
}
