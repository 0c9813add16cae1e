using CsCheck;
using TunStack.Wire;
using Xunit;

namespace TunStack.Tests.Wire;

/// <summary>
/// <see cref="TcpOptions.TryParse"/> only answers yes or no; the segment path turns "no" into
/// <see cref="DropReason.BadTcpOption"/>.
/// </summary>
public class TcpOptionsTests
{
    private static byte[] OptionsOf(byte[] packet) => packet.AsSpan(40, (packet[32] >> 4) * 4 - 20).ToArray();

    [Fact]
    public void Parses_the_captured_syn_options()
    {
        // Linux: mss 1460, sackOK, TS val 1370366983 ecr 0, nop, wscale 10.
        byte[] area = OptionsOf(LinuxCaptures.Syn);
        Assert.Equal("020405b40402080a51ae2407000000000103030a", Convert.ToHexStringLower(area));
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Equal((ushort)1460, o.Mss);
        Assert.True(o.SackPermitted);
        Assert.True(o.HasTimestamps);
        Assert.Equal(1370366983u, o.TimestampValue);
        Assert.Equal(0u, o.TimestampEcho);
        Assert.Equal((byte)10, o.WindowScale);
        Assert.Equal(0, o.SackBlockCount);
        Assert.Equal(0, o.UnknownCount);
        Assert.Equal("mss 1460,sackOK,TS val 1370366983 ecr 0,wscale 10", o.ToString());
    }

    [Fact]
    public void Parses_the_captured_syn_ack_options()
    {
        Assert.True(TcpOptions.TryParse(OptionsOf(LinuxCaptures.SynAck), out var o));
        Assert.Equal((ushort)1460, o.Mss);
        Assert.True(o.SackPermitted);
        Assert.Equal(3642900509u, o.TimestampValue);
        Assert.Equal(1370366983u, o.TimestampEcho);
        Assert.Equal((byte)10, o.WindowScale);
    }

    [Fact]
    public void Parses_the_captured_data_segment_options()
    {
        // nop, nop, TS val 3642900515 ecr 1370366989
        Assert.True(TcpOptions.TryParse(OptionsOf(LinuxCaptures.FullSizeData), out var o));
        Assert.Null(o.Mss);
        Assert.Null(o.WindowScale);
        Assert.False(o.SackPermitted);
        Assert.True(o.HasTimestamps);
        Assert.Equal(3642900515u, o.TimestampValue);
        Assert.Equal(1370366989u, o.TimestampEcho);
    }

    [Fact]
    public void Writes_the_documented_layout()
    {
        var o = new TcpOptions { Mss = 1460, SackPermitted = true, HasTimestamps = true, TimestampValue = 1, TimestampEcho = 2, WindowScale = 7 };
        var buffer = new byte[40];
        int n = o.WriteTo(buffer);
        // Linux's SYN layout (compare the captured SYN above): SACK-permitted takes the timestamps' padding.
        Assert.Equal("020405b4" + "0402080a0000000100000002" + "01030307", Convert.ToHexStringLower(buffer.AsSpan(0, n)));
        Assert.Equal(0, new TcpOptions().WriteTo(buffer));

        var sackOnly = new TcpOptions { Mss = 1460, SackPermitted = true };
        Assert.Equal("020405b4" + "01010402", Convert.ToHexStringLower(buffer.AsSpan(0, sackOnly.WriteTo(buffer))));
    }

    [Fact]
    public void Writes_timestamps_and_three_sack_blocks_in_forty_bytes()
    {
        var o = new TcpOptions { HasTimestamps = true, TimestampValue = 7, TimestampEcho = 9 };
        o.AddSackBlock(new SackBlock(100, 200));
        o.AddSackBlock(new SackBlock(300, 400));
        o.AddSackBlock(new SackBlock(0xFFFF_FF00, 16));
        var buffer = new byte[40];
        int n = o.WriteTo(buffer);
        Assert.Equal(40, n);
        Assert.Equal(TcpOptions.TimestampsLength + TcpOptions.SackLength(3), n);
        Assert.Equal("0101080a0000000700000009" + "0101051a" + "00000064000000c8" + "0000012c00000190" + "ffffff0000000010",
            Convert.ToHexStringLower(buffer.AsSpan(0, n)));
        Assert.True(TcpOptions.TryParse(buffer.AsSpan(0, n), out var read));
        Assert.Equal(3, read.SackBlockCount);
        Assert.Equal(new SackBlock(100, 200), read.SackBlocks[0]);
        Assert.Equal(new SackBlock(0xFFFF_FF00, 16), read.SackBlocks[2]);
        Assert.Equal("TS val 7 ecr 9,sack 3 {100:200 300:400 4294967040:16}", read.ToString());
    }

    [Fact]
    public void A_sack_option_longer_than_four_blocks_is_ignored()
    {
        // 5 blocks (42 bytes) cannot fit in a real header; the option is skipped, not trusted.
        var area = new byte[42];
        area[0] = TcpOptions.KindSack;
        area[1] = 42;
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Equal(0, o.SackBlockCount);
        Assert.Equal(1, o.UnknownCount);
    }

    [Fact]
    public void Round_trips_random_option_sets()
    {
        var gen = Gen.Select(Gen.UShort.Nullable(), Gen.Byte.Nullable(), Gen.Bool, Gen.Bool, Gen.UInt, Gen.UInt);
        gen.Sample((mss, wscale, sackOk, hasTs, tsVal, tsEcr) =>
        {
            // A SYN's option set (SACK blocks are never sent on a SYN; they are covered above).
            var written = new TcpOptions
            {
                Mss = mss,
                WindowScale = wscale,
                SackPermitted = sackOk,
                HasTimestamps = hasTs,
                TimestampValue = hasTs ? tsVal : 0,
                TimestampEcho = hasTs ? tsEcr : 0,
            };
            var area = new byte[40];
            int n = written.WriteTo(area);
            Assert.Equal(0, n % 4);
            Assert.True(n <= 40);
            Assert.True(TcpOptions.TryParse(area.AsSpan(0, n), out var read));
            Assert.Equal(written, read);
        }, iter: 5000);
    }

    [Fact]
    public void The_usual_timestamps_layout_parses_like_the_same_option_elsewhere_in_the_area()
    {
        // NOP, NOP, TS is read without the option loop; the result must be what the loop gives for the same option
        // placed differently (TS, NOP, NOP), for any values.
        Gen.Select(Gen.UInt, Gen.UInt).Sample((value, echo) =>
        {
            var usual = new byte[] { 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0 };
            var moved = new byte[] { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 };
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(usual.AsSpan(4), value);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(usual.AsSpan(8), echo);
            usual.AsSpan(4, 8).CopyTo(moved.AsSpan(2));
            Assert.True(TcpOptions.TryParse(usual, out var fast));
            Assert.True(TcpOptions.TryParse(moved, out var looped));
            Assert.Equal(looped, fast);
            Assert.True(fast.HasTimestamps);
            Assert.Equal(value, fast.TimestampValue);
            Assert.Equal(echo, fast.TimestampEcho);
        }, iter: 500);
        // One byte more or less is not the usual layout and goes through the loop: 13 bytes end in an unknown option
        // without its length (malformed); 11 bytes cut the timestamps option short (malformed).
        Assert.False(TcpOptions.TryParse(new byte[] { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 9 }, out _));
        Assert.False(TcpOptions.TryParse(new byte[] { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0 }, out _));
    }

    [Fact]
    public void End_of_list_stops_parsing()
    {
        // MSS, EOL, then bytes that would be a malformed option if they were read.
        byte[] area = [2, 4, 0x05, 0xb4, 0, 3, 0, 0];
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Equal((ushort)1460, o.Mss);
        Assert.Null(o.WindowScale);
    }

    [Fact]
    public void Unknown_options_and_known_options_with_a_wrong_length_are_skipped()
    {
        // kind 30 (MPTCP) length 4; MSS with length 3; window scale with length 4; then a valid wscale.
        byte[] area = [30, 4, 0xAA, 0xBB, 2, 3, 0x05, 3, 4, 9, 9, 3, 3, 6];
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Null(o.Mss);
        Assert.Equal((byte)6, o.WindowScale);
        Assert.Equal(3, o.UnknownCount);
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(4, 34)]
    public void Sack_blocks_are_counted(int blocks, int length)
    {
        var area = new byte[2 + length];
        area[0] = 1; area[1] = 1;
        area[2] = TcpOptions.KindSack;
        area[3] = (byte)length;
        Assert.True(TcpOptions.TryParse(area, out var o));
        Assert.Equal(blocks, o.SackBlockCount);
    }

    [Fact]
    public void Empty_area_parses_to_nothing()
    {
        Assert.True(TcpOptions.TryParse([], out var o));
        Assert.Equal(default, o);
    }

    // ---- Malformed: structural errors fail the whole area ----

    [Theory]
    [InlineData("0200")]            // option length 0
    [InlineData("020105b4")]        // option length 1
    [InlineData("01010801")]        // timestamps with length 1 after two NOPs
    [InlineData("020405")]          // MSS running past the area
    [InlineData("0101080a0000")]    // timestamps running past the area
    [InlineData("fe09000000")]      // unknown option running past the area
    [InlineData("01010102")]        // a kind byte with no room for its length, at the last byte
    [InlineData("03")]              // the same, alone
    public void Malformed_areas_are_rejected(string hex)
    {
        Assert.False(TcpOptions.TryParse(Convert.FromHexString(hex), out _));
    }

    [Fact]
    public void Malformed_options_inside_a_segment_are_caught_by_the_option_parser()
    {
        // The captured SYN with its window-scale option length changed from 3 to 4: runs past the header.
        byte[] packet = LinuxCaptures.Syn;
        packet[58] = 4;
        Assert.True(TcpSegment.TryParse(packet.AsSpan(20), out var tcp, out _));
        Assert.False(TcpOptions.TryParse(tcp.Options, out _));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Byte.Array[0, 100].Sample(bytes => { _ = TcpOptions.TryParse(bytes, out _); }, iter: 20_000);
    }

    [Fact]
    public void Random_option_soup_never_throws()
    {
        // Bias towards the interesting kinds and small lengths so the length checks are hit often.
        var soup = Gen.OneOf(Gen.Byte[0, 10], Gen.Byte).Array[0, 40];
        soup.Sample(bytes => { _ = TcpOptions.TryParse(bytes, out _); }, iter: 20_000);
    }
}
