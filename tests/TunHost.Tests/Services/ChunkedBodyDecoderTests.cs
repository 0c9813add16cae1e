using System.Buffers;
using System.Text;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

public sealed class ChunkedBodyDecoderTests
{
    /// <summary>Feeds <paramref name="wire"/> to a decoder <paramref name="step"/> bytes at a time, as a pipe reader would.</summary>
    private static (ChunkedDecodeStatus Status, byte[] Data, int Consumed) Feed(ChunkedBodyDecoder decoder, byte[] wire, int step)
    {
        var data = new ArrayBufferWriter<byte>();
        int consumed = 0;
        int available = 0;
        while (true)
        {
            available = Math.Min(wire.Length, available + step);
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(wire, consumed, available - consumed));
            ChunkedDecodeStatus status;
            while ((status = decoder.Decode(ref reader, out ReadOnlySequence<byte> piece)) == ChunkedDecodeStatus.Data)
            {
                Assert.False(piece.IsEmpty);
                foreach (ReadOnlyMemory<byte> segment in piece)
                {
                    data.Write(segment.Span);
                }
            }

            consumed += (int)reader.Consumed;
            if (status != ChunkedDecodeStatus.NeedMoreData || available == wire.Length)
            {
                return (status, data.WrittenSpan.ToArray(), consumed);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(1000)]
    public void Any_split_of_the_input_gives_the_same_body_and_stops_at_its_end(int step)
    {
        byte[] wire = Encoding.ASCII.GetBytes(
            "4;x=\"y\"\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\nGET / HTTP/1.1\r\n");
        var decoder = new ChunkedBodyDecoder();
        (ChunkedDecodeStatus status, byte[] data, int consumed) = Feed(decoder, wire, step);

        Assert.Equal(ChunkedDecodeStatus.Done, status);
        Assert.Equal("Wikipedia in \r\n\r\nchunks.", Encoding.ASCII.GetString(data));
        Assert.Equal(data.Length, decoder.DecodedLength);
        Assert.Equal("GET / HTTP/1.1\r\n", Encoding.ASCII.GetString(wire, consumed, wire.Length - consumed));
    }

    [Fact]
    public void Reset_starts_a_new_body_after_an_error()
    {
        var decoder = new ChunkedBodyDecoder();
        Assert.Equal(ChunkedDecodeStatus.Malformed, Feed(decoder, "z\r\n"u8.ToArray(), 10).Status);
        Assert.Equal(ChunkedDecodeStatus.Malformed, Feed(decoder, "0\r\n\r\n"u8.ToArray(), 10).Status);

        decoder.Reset();
        (ChunkedDecodeStatus status, byte[] data, _) = Feed(decoder, "2\r\nok\r\n0\r\n\r\n"u8.ToArray(), 10);
        Assert.Equal(ChunkedDecodeStatus.Done, status);
        Assert.Equal("ok", Encoding.ASCII.GetString(data));
    }

    [Theory]
    [InlineData("0", 0)]
    [InlineData("000000000000000000000000a", 10)]
    [InlineData("fF", 255)]
    [InlineData("7fffffffffffffff", long.MaxValue)]
    [InlineData("1;a", 1)]
    [InlineData("1 ;a = \"\\\\\" ; b=c", 1)]
    public void Chunk_lines_that_parse(string line, long expected)
    {
        Assert.True(ChunkedBodyDecoder.TryParseChunkLine(Encoding.ASCII.GetBytes(line), out long size));
        Assert.Equal(expected, size);
    }

    [Theory]
    [InlineData("")]
    [InlineData("8000000000000000")]
    [InlineData("1;a=\"\\")]
    [InlineData("1;a=\"x\"y")]
    [InlineData("1;a;")]
    [InlineData("1,2")]
    public void Chunk_lines_that_do_not(string line)
    {
        Assert.False(ChunkedBodyDecoder.TryParseChunkLine(Encoding.ASCII.GetBytes(line), out _));
    }
}
