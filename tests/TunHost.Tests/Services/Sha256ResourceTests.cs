using System.Globalization;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

/// <summary><c>POST /sha256</c>: the digest of the request body, framed by Content-Length or chunked.</summary>
public sealed class Sha256ResourceTests
{
    private const string EmptyDigest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    private const string AbcDigest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    // FIPS 180-2 appendix B.3: one million 'a'.
    private const string MillionADigest = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

    // Computed outside .NET: python3 hashlib over LcgBytes(5 * 2**20 + 3).
    private const string LcgDigest = "1041287b73f776cd4875f90c428975415d29a5d1df58ca6b7498536b82eef02e";
    private const int LcgLength = (5 << 20) + 3;

    private static string Post(string headers = "") => $"POST /sha256 HTTP/1.1\r\nHost: x\r\n{headers}\r\n";

    private static string Get(string target) => $"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n";

    /// <summary>Byte i is the top byte of the (i+1)-th state of the C library LCG from seed 1: no period near any buffer size.</summary>
    private static byte[] LcgBytes(int length)
    {
        byte[] bytes = new byte[length];
        uint state = 1;
        for (int i = 0; i < bytes.Length; i++)
        {
            state = unchecked((state * 1103515245) + 12345);
            bytes[i] = (byte)(state >> 24);
        }

        return bytes;
    }

    /// <summary>Encodes <paramref name="body"/> as chunks whose sizes cycle through <paramref name="sizes"/>, some with extensions.</summary>
    private static byte[] Chunked(ReadOnlySpan<byte> body, int[] sizes, string trailer = "")
    {
        var wire = new MemoryStream();
        int at = 0;
        for (int n = 0; at < body.Length; n++)
        {
            int size = Math.Min(sizes[n % sizes.Length], body.Length - at);
            string ext = (n % 3) switch
            {
                0 => string.Empty,
                1 => ";ext=token",
                _ => " ; quoted = \"a \\\" b;c\" ;flag",
            };
            wire.Write(Encoding.ASCII.GetBytes($"{size:x}{ext}\r\n"));
            wire.Write(body.Slice(at, size));
            wire.Write("\r\n"u8);
            at += size;
        }

        wire.Write(Encoding.ASCII.GetBytes($"0\r\n{trailer}\r\n"));
        return wire.ToArray();
    }

    /// <summary>Writes <paramref name="bytes"/> in pieces whose sizes cycle through <paramref name="pieces"/>.</summary>
    private static async Task SendInPiecesAsync(ServiceHarness h, byte[] bytes, int[] pieces)
    {
        int at = 0;
        for (int n = 0; at < bytes.Length; n++)
        {
            int size = Math.Min(pieces[n % pieces.Length], bytes.Length - at);
            await h.SendAsync(bytes.AsMemory(at, size));
            at += size;
        }
    }

    private static async Task<string> ReadDigestAsync(ServiceHarness h)
    {
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", r.Header("Content-Type"));
        Assert.Equal(65, r.ContentLength);
        Assert.Matches("^[0-9a-f]{64}\n$", r.BodyText);
        return r.BodyText[..64];
    }

    [Theory]
    [InlineData("", "")]
    [InlineData("Content-Length: 0\r\n", "")]
    [InlineData("Content-Length: 3\r\n", "abc")]
    [InlineData("Transfer-Encoding: chunked\r\n", "0\r\n\r\n")]
    [InlineData("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n")]
    public async Task Known_answers_for_short_bodies(string headers, string body)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post(headers) + body);
        string expected = body.Contains("abc", StringComparison.Ordinal) ? AbcDigest : EmptyDigest;
        Assert.Equal(expected, await ReadDigestAsync(h));
    }

    [Fact]
    public async Task A_million_a_matches_the_fips_vector()
    {
        var h = ServiceHarness.Start(new HttpService());
        byte[] body = Encoding.ASCII.GetBytes(new string('a', 1_000_000));
        Task sending = SendInPiecesAsync(h, [.. Encoding.ASCII.GetBytes(Post("Content-Length: 1000000\r\n")), .. body], [65_537]);
        Assert.Equal(MillionADigest, await ReadDigestAsync(h));
        await sending.WaitAsync(ServiceHarness.Timeout);
    }

    [Fact]
    public async Task A_multi_megabyte_body_split_at_awkward_boundaries()
    {
        var h = ServiceHarness.Start(new HttpService());
        byte[] body = LcgBytes(LcgLength);
        Assert.Equal(LcgDigest, Convert.ToHexStringLower(SHA256.HashData(body)));

        // The head and the first body bytes share a write; after that pieces of 1, 2, 3 bytes, just under and just over
        // a page, a pipe segment and 64 KiB, so that body pieces begin and end at every kind of offset.
        byte[] wire = [.. Encoding.ASCII.GetBytes(Post($"Content-Length: {LcgLength}\r\n")), .. body, .. Encoding.ASCII.GetBytes(Get("/bytes/3"))];
        Task sending = SendInPiecesAsync(h, wire, [100, 1, 2, 3, 4095, 4097, 65_535, 65_537, 1_000_003]);

        Assert.Equal(LcgDigest, await ReadDigestAsync(h));
        Assert.Equal("012", (await h.ReadResponseAsync()).BodyText);
        await sending.WaitAsync(ServiceHarness.Timeout);
    }

    [Fact]
    public async Task A_multi_megabyte_chunked_body_with_extensions_and_a_trailer()
    {
        var h = ServiceHarness.Start(new HttpService());
        byte[] body = LcgBytes(LcgLength);
        byte[] chunked = Chunked(body, [1, 0x3FFF, 7, 65_536, 100_003, 2], "X-Checksum: none\r\nX-Empty:\r\n");
        byte[] wire = [.. Encoding.ASCII.GetBytes(Post("Transfer-Encoding: chunked\r\n")), .. chunked, .. Encoding.ASCII.GetBytes(Get("/bytes/2"))];

        // Pieces of prime sizes cut through chunk-size lines, extensions and the CRLFs after chunk data.
        Task sending = SendInPiecesAsync(h, wire, [1, 2, 3, 5, 7, 11, 13, 4093, 65_521, 131_071]);

        Assert.Equal(LcgDigest, await ReadDigestAsync(h));
        Assert.Equal("01", (await h.ReadResponseAsync()).BodyText);
        await sending.WaitAsync(ServiceHarness.Timeout);
    }

    [Fact]
    public async Task A_chunked_body_over_tiny_pipe_segments()
    {
        // 16-byte segments: every chunk line, extension and trailer spans several segments.
        var h = ServiceHarness.Start(new HttpService(), options: new PipeOptions(minimumSegmentSize: 16));
        byte[] body = LcgBytes(20_011);
        byte[] chunked = Chunked(body, [1, 17, 300, 4096], "X-Long-Trailer: " + new string('t', 200) + "\r\n");
        byte[] wire = [.. Encoding.ASCII.GetBytes(Post("Transfer-Encoding: chunked\r\n")), .. chunked];
        await SendInPiecesAsync(h, wire, [3, 29, 331]);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(body)), await ReadDigestAsync(h));
    }

    [Fact]
    public async Task Extensions_and_trailers_are_ignored()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post("Transfer-Encoding: chunked\r\n") +
            "1;a=b;c=\"q\\\"x\"\r\na\r\n" +
            "02 ; ext\t;n = v\r\nbc\r\n" +
            "000;last=\"\"\r\n" +
            "X-Trailer: 1\r\nContent-Length: 99\r\n\r\n");
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));
    }

    [Theory]
    [InlineData("chunked")]
    [InlineData("Chunked")]
    [InlineData(" , chunked ,")]
    public async Task Chunked_is_recognised_case_insensitively_in_a_list(string value)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post($"Transfer-Encoding: {value}\r\n") + "3\r\nabc\r\n0\r\n\r\n");
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));
    }

    [Theory]
    [InlineData("Content-Length: 3\r\n", "abc")]
    [InlineData("Transfer-Encoding: chunked\r\n", "1\r\na\r\n2\r\nbc\r\n0\r\n\r\n")]
    public async Task Expect_100_continue_is_answered_before_the_body_is_sent(string headers, string body)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post(headers + "Expect: 100-continue\r\n"));
        HttpResponse interim = await h.ReadResponseAsync(hasBody: false);
        Assert.Equal("HTTP/1.1", interim.Version);
        Assert.Equal(100, interim.StatusCode);
        Assert.Equal("Continue", interim.Reason);
        Assert.Empty(interim.Headers);

        await h.SendAsync(body);
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));
    }

    [Fact]
    public async Task Keep_alive_works_after_posts()
    {
        var service = new HttpService();
        var h = ServiceHarness.Start(service);
        await h.SendAsync(Post("Content-Length: 3\r\n") + "abc");
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));

        // Pipelined: a chunked POST, a GET, a POST without a body, each answered in order on the same connection.
        await h.SendAsync(Post("Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n" + Get("/bytes/4") + Post());
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));
        Assert.Equal("0123", (await h.ReadResponseAsync()).BodyText);
        Assert.Equal(EmptyDigest, await ReadDigestAsync(h));
        Assert.False(h.Handler.IsCompleted);

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
        Assert.Equal(4, service.RequestsServed);
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", false)]
    [InlineData("PUT", true)]
    [InlineData("post", true)]
    public async Task Other_methods_are_405_with_allow_post(string method, bool hasBody)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync($"{method} /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + Get("/bytes/1"));
        HttpResponse r = await h.ReadResponseAsync(hasBody);
        Assert.Equal(405, r.StatusCode);
        Assert.Equal("POST", r.Header("Allow"));
        Assert.Null(r.Header("Connection"));
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task A_query_does_not_change_the_resource()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("POST /sha256?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        Assert.Equal(AbcDigest, await ReadDigestAsync(h));
    }

    [Theory]
    [InlineData("g\r\n")]
    [InlineData("-5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("+5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("0x5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("\r\nhello\r\n0\r\n\r\n")]
    [InlineData(" 5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5 \r\nhello\r\n0\r\n\r\n")]
    [InlineData("5\nhello\r\n0\r\n\r\n")]
    [InlineData("5\r\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5\r\nhello\n0\r\n\r\n")]
    [InlineData("5\r\nhelloX\r\n0\r\n\r\n")]
    [InlineData("5\r\nhell\r\n0\r\n\r\n")]
    [InlineData("10000000000000000\r\n")]
    [InlineData("8000000000000000\r\n")]
    [InlineData("5;\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5;=x\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5;a=\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5;a=\"open\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5;a b\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5;a=\"\u0001\"\r\nhello\r\n0\r\n\r\n")]
    [InlineData("0\r\nno colon\r\n\r\n")]
    [InlineData("0\r\n folded: x\r\n\r\n")]
    [InlineData("0\r\nX: a\u0001b\r\n\r\n")]
    [InlineData("0\r\nX: y\n\r\n")]
    [InlineData("0\r\n\n")]
    public async Task Malformed_chunking_gets_400_and_close(string chunks)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post("Transfer-Encoding: chunked\r\n") + chunks + Get("/bytes/1"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(400, r.StatusCode);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
        await h.CloseClientAsync();
        await h.WaitHandlerAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_overlong_chunk_line_or_trailer_is_refused_before_it_ends(bool trailer)
    {
        var h = ServiceHarness.Start(new HttpService());
        string start = trailer ? "0\r\nX-Big: " + new string('t', 17_000) : "5;e=" + new string('e', 5_000);
        await h.SendAsync(Post("Transfer-Encoding: chunked\r\n") + start);
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(400, r.StatusCode);
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Many_small_trailers_are_limited_as_a_whole()
    {
        var h = ServiceHarness.Start(new HttpService());
        var trailers = new StringBuilder();
        for (int i = 0; i < 1000; i++)
        {
            trailers.Append(CultureInfo.InvariantCulture, $"X-T{i}: 0123456789\r\n");
        }

        Task sending = h.SendAsync(Post("Transfer-Encoding: chunked\r\n") + "0\r\n" + trailers + "\r\n");
        Assert.Equal(400, (await h.ReadResponseAsync()).StatusCode);
        await sending.WaitAsync(ServiceHarness.Timeout);
    }

    [Theory]
    [InlineData("HTTP/1.1", "Transfer-Encoding: gzip, chunked\r\n", 501)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: chunked, gzip\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: gzip\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: chunked;q=1\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: \r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: ch(unked\r\n", 400)]
    [InlineData("HTTP/1.1", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400)]
    [InlineData("HTTP/1.0", "Transfer-Encoding: chunked\r\n", 400)]
    public async Task Bodies_that_cannot_be_framed_are_refused_and_closed(string version, string headers, int status)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync($"POST /sha256 {version}\r\nHost: x\r\n{headers}\r\n5\r\nhello\r\n0\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(status, r.StatusCode);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
    }

    [Theory]
    [InlineData("Transfer-Encoding: chunked\r\n", "5\r\nhel")]
    [InlineData("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n")]
    [InlineData("Content-Length: 10\r\n", "hello")]
    public async Task Fin_in_the_middle_of_a_body_just_closes(string headers, string partial)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Post(headers) + partial);
        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }
}
