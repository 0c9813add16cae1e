using BenchmarkDotNet.Attributes;
using TunStack.Ip;
using TunStack.Tests.Wire;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// The per-packet wire costs: parsing and verifying a received segment and building an outgoing one (the Internet
/// checksum on its own is <see cref="ChecksumBenchmarks"/>). All of them must be allocation-free (the Allocated column shows "-").
/// </summary>
[MemoryDiagnoser]
public class WireBenchmarks
{
    private static readonly IpAddress Local = IpAddress.Parse("198.18.0.2");
    private static readonly IpAddress Remote = IpAddress.Parse("198.18.0.1");
    private static readonly IpAddress Local6 = IpAddress.Parse("2001:2::2");
    private static readonly IpAddress Remote6 = IpAddress.Parse("2001:2::1");

    private byte[] _received = [];
    private byte[] _outgoing = [];
    private byte[] _echoRequest = [];
    private byte[] _echoReply = [];
    private byte[] _received6 = [];
    private byte[] _echoRequest6 = [];

    [GlobalSetup]
    public void Setup()
    {
        _received = LinuxCaptures.FullSizeData;
        var random = new Random(42);
        _outgoing = new byte[1500];
        random.NextBytes(_outgoing.AsSpan(20 + 32)); // the payload is already in place; headers are rebuilt

        _echoRequest = new byte[84];
        var icmp = _echoRequest.AsSpan(20);
        IcmpV4Packet.WriteEchoHeader(icmp, IcmpV4Packet.TypeEchoRequest, 1, 1);
        random.NextBytes(icmp[8..]);
        IcmpV4Packet.WriteChecksum(icmp);
        Ipv4Packet.WriteHeader(_echoRequest, Remote, Local, IpProtocol.Icmp, icmp.Length, 1);
        _echoReply = new byte[84];

        // The same 1500-byte segment as IPv6 (40-byte header, 1460 bytes of TCP), checksum redone for the new
        // pseudo-header; and a 64-byte ICMPv6 echo request.
        var segment = _received.AsSpan(20).ToArray();
        _received6 = new byte[40 + segment.Length];
        segment.CopyTo(_received6.AsSpan(40));
        TcpSegment.WriteChecksum(_received6.AsSpan(40), Remote6, Local6);
        Ipv6Packet.WriteHeader(_received6, Remote6, Local6, IpProtocol.Tcp, segment.Length);
        _echoRequest6 = new byte[104];
        var icmp6 = _echoRequest6.AsSpan(40);
        IcmpV6Packet.WriteEchoHeader(icmp6, IcmpV6Packet.TypeEchoRequest, 1, 1);
        random.NextBytes(icmp6[8..]);
        IcmpV6Packet.WriteChecksum(icmp6, Remote6, Local6);
        Ipv6Packet.WriteHeader(_echoRequest6, Remote6, Local6, IpProtocol.IcmpV6, icmp6.Length);

        if (ParseIpv4Tcp() == 0 || BuildSegment1500() != 1500 || EchoReply() != 84 || ParseIpv6Tcp() == 0 || EchoReply6() != 104)
            throw new InvalidOperationException("benchmark input does not parse");
    }

    /// <summary>Receive path for one 1500-byte segment: IPv4 TryParse (header checksum), TCP TryParse, options, TCP checksum.</summary>
    [Benchmark]
    public uint ParseIpv4Tcp()
    {
        if (!Ipv4Packet.TryParse(_received, out var ip, out _)) return 0;
        if (!TcpSegment.TryParse(ip.Payload, out var tcp, out _)) return 0;
        if (!TcpOptions.TryParse(tcp.Options, out var options)) return 0;
        if (!tcp.VerifyChecksum(ip.Source, ip.Destination)) return 0;
        return tcp.SequenceNumber ^ options.TimestampValue;
    }

    /// <summary>The same for IPv6: header and extension-header walk, TCP TryParse, options, checksum with the IPv6 pseudo-header.</summary>
    [Benchmark]
    public uint ParseIpv6Tcp()
    {
        if (!Ipv6Packet.TryParse(_received6, out var ip, out _)) return 0;
        if (!TcpSegment.TryParse(ip.Payload, out var tcp, out _)) return 0;
        if (!TcpOptions.TryParse(tcp.Options, out var options)) return 0;
        if (!tcp.VerifyChecksum(ip.Source, ip.Destination)) return 0;
        return tcp.SequenceNumber ^ options.TimestampValue;
    }

    /// <summary>Send path for one 1500-byte segment (payload already in the buffer): IPv4 header, timestamps option, TCP header, TCP checksum.</summary>
    [Benchmark]
    public int BuildSegment1500()
    {
        var packet = _outgoing.AsSpan();
        var segment = packet[Ipv4Packet.MinHeaderLength..];
        var options = new TcpOptions { HasTimestamps = true, TimestampValue = 3642900515, TimestampEcho = 1370366989 };
        int optionsLength = options.WriteTo(segment[TcpSegment.MinHeaderLength..]);
        TcpSegment.WriteHeader(segment, 18080, 50560, 2693620618, 3921558108, TcpFlags.Ack, 64, optionsLength);
        TcpSegment.WriteChecksum(segment, Local, Remote);
        Ipv4Packet.WriteHeader(packet, Local, Remote, IpProtocol.Tcp, segment.Length, 0);
        return packet.Length;
    }

    /// <summary>Ping: parse an 84-byte echo request and build the reply.</summary>
    [Benchmark]
    public int EchoReply()
    {
        if (!Ipv4Packet.TryParse(_echoRequest, out var ip, out _)) return 0;
        return IcmpEchoResponder.TryBuildReply(ip, Local, _echoReply, out int length, out _) ? length : 0;
    }

    /// <summary>Ping over IPv6: parse a 104-byte echo request (ICMPv6 checksum included) and build the reply.</summary>
    [Benchmark]
    public int EchoReply6()
    {
        if (!Ipv6Packet.TryParse(_echoRequest6, out var ip, out _)) return 0;
        if (!IcmpV6Packet.TryParse(ip.Payload, ip.Source, ip.Destination, out var echo, out _)) return 0;
        return IcmpV6EchoResponder.TryBuildReply(ip, echo, _echoReply6, out int length, out _) ? length : 0;
    }

    private readonly byte[] _echoReply6 = new byte[104];
}
