using System.Buffers.Binary;
using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

public class TcpSegmentTests
{
    public static TheoryData<string> TcpCaptureNames => new() { "Syn", "SynAck", "HttpGet", "FullSizeData", "Fin" };

    private static byte[] Capture(string name) => name switch
    {
        "Syn" => LinuxCaptures.Syn,
        "SynAck" => LinuxCaptures.SynAck,
        "HttpGet" => LinuxCaptures.HttpGet,
        "FullSizeData" => LinuxCaptures.FullSizeData,
        "Fin" => LinuxCaptures.Fin,
        _ => throw new ArgumentException(name),
    };

    /// <summary>The IPv4 payload of a captured packet (the captures have 20-byte IP headers).</summary>
    private static byte[] TcpPart(byte[] packet) => packet.AsSpan(20).ToArray();

    [Fact]
    public void Parses_the_captured_syn()
    {
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.Syn), out var tcp, out var reason));
        Assert.Equal(DropReason.None, reason);
        Assert.Equal(50560, tcp.SourcePort);
        Assert.Equal(18080, tcp.DestinationPort);
        Assert.Equal(3921558019u, tcp.SequenceNumber);
        Assert.Equal(0u, tcp.AcknowledgmentNumber);
        Assert.Equal(TcpFlags.Syn, tcp.Flags);
        Assert.Equal("S", tcp.Flags.ToShortString());
        Assert.Equal(64240, tcp.Window);
        Assert.Equal(0x1b4c, tcp.Checksum);
        Assert.Equal(0, tcp.UrgentPointer);
        Assert.Equal(40, tcp.HeaderLength);
        Assert.Equal(20, tcp.Options.Length);
        Assert.Equal(0, tcp.Payload.Length);
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Client, LinuxCaptures.Server));
    }

    [Fact]
    public void Parses_the_captured_syn_ack()
    {
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.SynAck), out var tcp, out _));
        Assert.Equal(18080, tcp.SourcePort);
        Assert.Equal(50560, tcp.DestinationPort);
        Assert.Equal(2693620429u, tcp.SequenceNumber);
        Assert.Equal(3921558020u, tcp.AcknowledgmentNumber);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, tcp.Flags);
        Assert.Equal("S.", tcp.Flags.ToShortString());
        Assert.True(tcp.Has(TcpFlags.Syn | TcpFlags.Ack));
        Assert.False(tcp.Has(TcpFlags.Syn | TcpFlags.Fin));
        Assert.Equal(65160, tcp.Window);
        Assert.Equal(0xfb07, tcp.Checksum);
        Assert.Equal(40, tcp.HeaderLength);
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Server, LinuxCaptures.Client));
    }

    [Fact]
    public void Parses_the_captured_data_segment()
    {
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.HttpGet), out var tcp, out _));
        Assert.Equal(3921558020u, tcp.SequenceNumber);
        Assert.Equal(2693620430u, tcp.AcknowledgmentNumber);
        Assert.Equal(TcpFlags.Psh | TcpFlags.Ack, tcp.Flags);
        Assert.Equal("P.", tcp.Flags.ToShortString());
        Assert.Equal(63, tcp.Window);
        Assert.Equal(0xc0a3, tcp.Checksum);
        Assert.Equal(32, tcp.HeaderLength);
        Assert.Equal(88, tcp.Payload.Length);
        Assert.StartsWith("GET /data.txt HTTP/1.1\r\n", System.Text.Encoding.ASCII.GetString(tcp.Payload));
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Client, LinuxCaptures.Server));
    }

    [Fact]
    public void Parses_the_captured_full_size_segment()
    {
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.FullSizeData), out var tcp, out _));
        Assert.Equal(2693620618u, tcp.SequenceNumber);
        Assert.Equal(3921558108u, tcp.AcknowledgmentNumber);
        Assert.Equal(TcpFlags.Ack, tcp.Flags);
        Assert.Equal(64, tcp.Window);
        Assert.Equal(0xfcf3, tcp.Checksum);
        Assert.Equal(1448, tcp.Payload.Length);
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Server, LinuxCaptures.Client));
    }

    [Fact]
    public void Parses_the_captured_fin()
    {
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.Fin), out var tcp, out _));
        Assert.Equal(18080, tcp.SourcePort);
        Assert.Equal(2693624671u, tcp.SequenceNumber);
        Assert.Equal(3921558108u, tcp.AcknowledgmentNumber);
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, tcp.Flags);
        Assert.Equal("F.", tcp.Flags.ToShortString());
        Assert.Equal(64, tcp.Window);
        Assert.Equal(0x172a, tcp.Checksum);
        Assert.Equal(0, tcp.Payload.Length);
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Server, LinuxCaptures.Client));
    }

    [Theory]
    [MemberData(nameof(TcpCaptureNames))]
    public void Rebuilding_with_the_captured_option_bytes_gives_the_captured_segment(string name)
    {
        byte[] packet = Capture(name);
        Assert.True(Ipv4Packet.TryParse(packet, out var ip, out _));
        Assert.True(TcpSegment.TryParse(ip.Payload, out var tcp, out _));

        // Our writers, fed the parsed fields and Linux's option bytes verbatim, must reproduce every byte —
        // in particular the checksum.
        var rebuilt = new byte[packet.Length];
        Ipv4Packet.WriteHeader(rebuilt, ip.Source, ip.Destination, IpProtocol.Tcp, tcp.Length, ip.Identification,
            ip.Ttl, ip.DontFragment);
        var segment = rebuilt.AsSpan(20);
        tcp.Options.CopyTo(segment[20..]);
        TcpSegment.WriteHeader(segment, tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber,
            tcp.AcknowledgmentNumber, tcp.Flags, tcp.Window, tcp.Options.Length);
        tcp.Payload.CopyTo(segment[tcp.HeaderLength..]);
        TcpSegment.WriteChecksum(segment, ip.Source, ip.Destination);

        Assert.Equal(tcp.Checksum, BinaryPrimitives.ReadUInt16BigEndian(segment[16..]));
        Assert.Equal(packet, rebuilt);
    }

    [Theory]
    [MemberData(nameof(TcpCaptureNames))]
    public void Rebuilding_with_the_payload_summed_while_copied_gives_back_the_captured_bytes(string name)
    {
        // The send path: the payload is copied in by Checksum.CopyAndAdd, which sums it on the way, and only the
        // pseudo-header and header are summed afterwards. Linux's checksum must come out, for each capture.
        byte[] packet = Capture(name);
        Assert.True(Ipv4Packet.TryParse(packet, out var ip, out _));
        Assert.True(TcpSegment.TryParse(ip.Payload, out var tcp, out _));
        var segment = new byte[tcp.Length];
        tcp.Options.CopyTo(segment.AsSpan(20));
        TcpSegment.WriteHeader(segment, tcp.SourcePort, tcp.DestinationPort, tcp.SequenceNumber,
            tcp.AcknowledgmentNumber, tcp.Flags, tcp.Window, tcp.Options.Length);
        // Split the payload unevenly, as a wrapped send ring would hand it over.
        int split = tcp.Payload.Length / 3 | 1;
        var payload = tcp.Payload;
        uint payloadSum = payload.Length == 0
            ? Checksum.CopyAndAdd(default, default, segment.AsSpan(tcp.HeaderLength), 0)
            : Checksum.CopyAndAdd(payload[..Math.Min(split, payload.Length)], payload[Math.Min(split, payload.Length)..],
                segment.AsSpan(tcp.HeaderLength), 0);
        TcpSegment.WriteChecksum(segment, tcp.HeaderLength, payloadSum, ip.Source, ip.Destination);

        Assert.Equal(Convert.ToHexString(ip.Payload), Convert.ToHexString(segment));
    }

    [Fact]
    public void The_payload_sum_overload_equals_the_whole_segment_checksum_over_IPv4_and_IPv6()
    {
        Gen.Select(Gen.Int[0, 10], Gen.Byte.Array[0, 2000], Gen.Int[0, 2000], Gen.Bool).Sample((optionWords, payload, cut, v6) =>
        {
            var src = v6 ? IpAddress.Parse("2001:2::1") : IpAddress.Parse("198.18.0.1");
            var dst = v6 ? IpAddress.Parse("2001:2::2") : IpAddress.Parse("198.18.0.2");
            int headerLength = 20 + optionWords * 4;
            var expected = new byte[headerLength + payload.Length];
            expected.AsSpan(20, headerLength - 20).Fill(TcpOptions.KindNoOperation);
            TcpSegment.WriteHeader(expected, 40000, 80, 1, 2, TcpFlags.Ack | TcpFlags.Psh, 100, headerLength - 20);
            var actual = expected.ToArray();
            payload.CopyTo(expected, headerLength);
            TcpSegment.WriteChecksum(expected, src, dst);

            int at = Math.Min(cut, payload.Length);
            uint payloadSum = Checksum.CopyAndAdd(payload.AsSpan(0, at), payload.AsSpan(at), actual.AsSpan(headerLength), 0);
            TcpSegment.WriteChecksum(actual, headerLength, payloadSum, src, dst);
            Assert.Equal(expected, actual);
        }, iter: 2000);
    }

    [Fact]
    public void The_payload_sum_overload_refuses_a_header_length_that_is_not_whole_words()
    {
        var segment = new byte[100];
        Assert.Throws<ArgumentOutOfRangeException>(() => TcpSegment.WriteChecksum(segment, 22, 0, LinuxCaptures.Client, LinuxCaptures.Server));
        Assert.Throws<ArgumentOutOfRangeException>(() => TcpSegment.WriteChecksum(segment, 16, 0, LinuxCaptures.Client, LinuxCaptures.Server));
        Assert.Throws<ArgumentOutOfRangeException>(() => TcpSegment.WriteChecksum(segment.AsSpan(0, 20), 24, 0, LinuxCaptures.Client, LinuxCaptures.Server));
    }

    [Fact]
    public void Rebuilding_the_syn_with_our_option_layout_gives_back_the_captured_bytes()
    {
        // Our writer lays out a SYN's options as Linux does (MSS, SACK-OK + TS, NOP WS: 20 bytes), so the rebuilt
        // header, options and checksum are byte for byte the captured ones.
        Assert.True(TcpSegment.TryParse(TcpPart(LinuxCaptures.Syn), out var captured, out _));
        Assert.True(TcpOptions.TryParse(captured.Options, out var options));

        var segment = new byte[60];
        int optionsLength = options.WriteTo(segment.AsSpan(20));
        Assert.Equal(20, optionsLength);
        TcpSegment.WriteHeader(segment, captured.SourcePort, captured.DestinationPort, captured.SequenceNumber,
            captured.AcknowledgmentNumber, captured.Flags, captured.Window, optionsLength);
        var ours = segment.AsSpan(0, 20 + optionsLength);
        TcpSegment.WriteChecksum(ours, LinuxCaptures.Client, LinuxCaptures.Server);

        Assert.True(TcpSegment.TryParse(ours, out var tcp, out _));
        Assert.True(tcp.VerifyChecksum(LinuxCaptures.Client, LinuxCaptures.Server));
        Assert.True(TcpOptions.TryParse(tcp.Options, out var reparsed));
        Assert.Equal(options.ToString(), reparsed.ToString());
        Assert.Equal((ushort)1460, reparsed.Mss);
        Assert.Equal((byte)10, reparsed.WindowScale);
        Assert.Equal(Convert.ToHexString(TcpPart(LinuxCaptures.Syn)), Convert.ToHexString(ours));
    }

    [Theory]
    [MemberData(nameof(TcpCaptureNames))]
    public void Checksum_fails_on_corruption_or_wrong_addresses(string name)
    {
        byte[] packet = Capture(name);
        byte[] segment = TcpPart(packet);
        var src = IpAddress.FromV4(packet.AsSpan(12, 4));
        var dst = IpAddress.FromV4(packet.AsSpan(16, 4));

        Assert.True(TcpSegment.TryParse(segment, out var tcp, out _));
        Assert.True(tcp.VerifyChecksum(src, dst));
        // The pseudo-header binds the addresses: the same bytes from another host do not verify.
        Assert.False(tcp.VerifyChecksum(IpAddress.Parse("198.18.0.3"), dst));

        segment[segment.Length - 1] ^= 0x04;
        Assert.True(TcpSegment.TryParse(segment, out var corrupted, out _));
        Assert.False(corrupted.VerifyChecksum(src, dst));

        // A segment with data, truncated (as if the IP total length were shorter), does not verify either.
        if (tcp.Payload.Length >= 2)
        {
            Assert.True(TcpSegment.TryParse(TcpPart(packet).AsSpan(0, segment.Length - 2), out var truncated, out _));
            Assert.False(truncated.VerifyChecksum(src, dst));
        }
    }

    [Fact]
    public void Round_trips_random_headers()
    {
        var header = Gen.Select(Gen.UShort[1, ushort.MaxValue], Gen.UShort[1, ushort.MaxValue], Gen.UInt, Gen.UInt, Gen.Byte, Gen.UShort);
        var body = Gen.Select(Gen.Int[0, 10], Gen.Byte.Array[0, 100], Gen.UInt, Gen.UInt);
        Gen.Select(header, body).Sample(t =>
        {
            var (sport, dport, seq, ack, flags, window) = t.Item1;
            var (optionWords, payload, srcValue, dstValue) = t.Item2;
            var src = IpAddress.FromV4(srcValue);
            var dst = IpAddress.FromV4(dstValue);
            int optionsLength = optionWords * 4;
            var segment = new byte[20 + optionsLength + payload.Length];
            segment.AsSpan(20, optionsLength).Fill(TcpOptions.KindNoOperation);
            TcpSegment.WriteHeader(segment, sport, dport, seq, ack, (TcpFlags)flags, window, optionsLength);
            payload.CopyTo(segment, 20 + optionsLength);
            TcpSegment.WriteChecksum(segment, src, dst);

            Assert.True(TcpSegment.TryParse(segment, out var tcp, out var reason), reason.ToString());
            Assert.Equal(sport, tcp.SourcePort);
            Assert.Equal(dport, tcp.DestinationPort);
            Assert.Equal(seq, tcp.SequenceNumber);
            Assert.Equal(ack, tcp.AcknowledgmentNumber);
            Assert.Equal((TcpFlags)flags, tcp.Flags);
            Assert.Equal(window, tcp.Window);
            Assert.Equal(0, tcp.UrgentPointer);
            Assert.Equal(20 + optionsLength, tcp.HeaderLength);
            Assert.Equal(optionsLength, tcp.Options.Length);
            Assert.Equal(payload, tcp.Payload.ToArray());
            Assert.True(tcp.VerifyChecksum(src, dst));
        }, iter: 2000);
    }

    // ---- Malformed input ----

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Shorter_than_a_minimal_header_is_TooShort(int length)
    {
        Assert.False(TcpSegment.TryParse(TcpPart(LinuxCaptures.Syn).AsSpan(0, length), out _, out var reason));
        Assert.Equal(DropReason.TooShort, reason);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void Data_offset_below_5_is_rejected(int dataOffset)
    {
        byte[] segment = TcpPart(LinuxCaptures.Syn);
        segment[12] = (byte)(dataOffset << 4);
        Assert.False(TcpSegment.TryParse(segment, out _, out var reason));
        Assert.Equal(DropReason.BadTcpDataOffset, reason);
    }

    [Theory]
    [InlineData(11)] // 44 bytes of header in a 40-byte SYN
    [InlineData(15)]
    public void Data_offset_past_the_end_is_rejected(int dataOffset)
    {
        byte[] segment = TcpPart(LinuxCaptures.Syn);
        segment[12] = (byte)(dataOffset << 4);
        Assert.False(TcpSegment.TryParse(segment, out _, out var reason));
        Assert.Equal(DropReason.BadTcpDataOffset, reason);
    }

    [Theory]
    [InlineData(0, 80)]
    [InlineData(40000, 0)]
    [InlineData(0, 0)]
    public void Port_0_is_rejected(int sourcePort, int destinationPort)
    {
        byte[] segment = TcpPart(LinuxCaptures.Syn);
        BinaryPrimitives.WriteUInt16BigEndian(segment, (ushort)sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), (ushort)destinationPort);
        Assert.False(TcpSegment.TryParse(segment, out _, out var reason));
        Assert.Equal(DropReason.BadTcpPort, reason);
    }

    [Fact]
    public void Data_offset_exactly_at_the_end_is_accepted()
    {
        byte[] segment = TcpPart(LinuxCaptures.Syn);
        Assert.True(TcpSegment.TryParse(segment, out var tcp, out _));
        Assert.Equal(segment.Length, tcp.HeaderLength);
        Assert.True(tcp.Payload.IsEmpty);
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Byte.Array[0, 100].Sample(bytes =>
        {
            if (TcpSegment.TryParse(bytes, out var tcp, out var reason))
            {
                Assert.Equal(DropReason.None, reason);
                _ = tcp.SourcePort; _ = tcp.DestinationPort; _ = tcp.SequenceNumber; _ = tcp.AcknowledgmentNumber;
                _ = tcp.Flags; _ = tcp.Window; _ = tcp.Checksum; _ = tcp.UrgentPointer;
                Assert.Equal(tcp.Length, 20 + tcp.Options.Length + tcp.Payload.Length);
                _ = tcp.VerifyChecksum(LinuxCaptures.Client, LinuxCaptures.Server);
                _ = TcpOptions.TryParse(tcp.Options, out _);
            }
            else
            {
                Assert.NotEqual(DropReason.None, reason);
            }
        }, iter: 20_000);
    }
}
