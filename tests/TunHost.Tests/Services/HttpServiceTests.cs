using TunStack;
using System.Net;
using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using Xunit;
using TunStack.Host.Services;

namespace TunStack.Host.Tests.Services;

public sealed class HttpServiceTests
{
    private const string Pattern = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

    private static string Get(string target, string extra = "") =>
        $"GET {target} HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: test\r\n{extra}\r\n";

    private static void AssertCommonHeaders(HttpResponse response)
    {
        Assert.Equal("HTTP/1.1", response.Version);
        Assert.Equal("TunStack", response.Header("Server"));
        Assert.NotNull(response.Header("Content-Length"));
        Assert.NotNull(response.Header("Date"));
    }

    private static byte[] Reference(long length)
    {
        byte[] expected = new byte[length];
        for (long i = 0; i < length; i++)
        {
            expected[i] = (byte)Pattern[(int)(i % 64)];
        }

        return expected;
    }

    [Fact]
    public async Task Front_page_shows_this_connections_handshake()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/"));

        HttpResponse r = await h.ReadResponseAsync();
        AssertCommonHeaders(r);
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("OK", r.Reason);
        Assert.Equal("text/html; charset=utf-8", r.Header("Content-Type"));
        Assert.Equal(r.Body.Length, r.ContentLength);
        string page = r.BodyText;
        Assert.StartsWith("<!DOCTYPE html>", page, StringComparison.Ordinal);
        Assert.Contains("TunStack", page, StringComparison.Ordinal);
        Assert.Contains("a user-space TCP/IP stack in C# answering from behind a TUN device", page, StringComparison.Ordinal);
        Assert.Contains("ISN", page, StringComparison.Ordinal);
        Assert.Contains("198.18.0.1:54321", page, StringComparison.Ordinal);
        Assert.Contains("1234567890", page, StringComparison.Ordinal);
        Assert.Contains("3141592653", page, StringComparison.Ordinal);
        Assert.Contains("peer  1460, ours  1400, effective  1400", page, StringComparison.Ordinal);
        Assert.Contains("/bytes/", page, StringComparison.Ordinal);
        Assert.Contains(" 7 ", page, StringComparison.Ordinal);
        Assert.Contains(" 9 ", page, StringComparison.Ordinal);

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public void Over_ipv6_the_hints_bracket_the_address_in_urls_and_not_for_nc()
    {
        var info = new TcpConnectionInfo(new IPEndPoint(IPAddress.Parse("2001:2::2"), 80),
            new IPEndPoint(IPAddress.Parse("2001:2::1"), 40000), 1, 2, 1440, 1440);
        string text = ServicePages.Text(info, hasStats: true, hasConnections: true);
        Assert.Contains("curl -s http://[2001:2::2]/bytes/1000000 | sha256sum", text);
        Assert.Contains("curl http://[2001:2::2]/connections", text);
        // OpenBSD nc looks "[2001:2::2]" up as a host name and fails; it takes the bare address.
        Assert.Contains("echo hello | nc -N 2001:2::2 7", text);
        Assert.Contains("head -c 100M /dev/zero | nc -N 2001:2::2 9", text);
        Assert.DoesNotContain("nc -N [", text);
        Assert.Contains("echo hello | nc -N 198.18.0.2 7", ServicePages.Text(ServiceHarness.DefaultInfo, hasStats: true));
    }

    [Fact]
    public async Task Front_page_has_the_same_length_for_every_ipv4_connection()
    {
        // Load generators such as ab count a changed Content-Length as a failed request.
        var small = new TcpConnectionInfo(new IPEndPoint(IPAddress.Parse("198.18.0.2"), 80),
            new IPEndPoint(IPAddress.Parse("1.2.3.4"), 5), 1, 2, 536, 1460);
        var large = new TcpConnectionInfo(new IPEndPoint(IPAddress.Parse("198.18.0.2"), 80),
            new IPEndPoint(IPAddress.Parse("198.188.100.100"), 65535), 4_000_000_000, 3_999_999_999, 65535, 1460);
        long? length = null;
        foreach (var info in new[] { small, large })
        {
            var h = ServiceHarness.Start(new HttpService(), info);
            await h.SendAsync(Get("/"));
            HttpResponse r = await h.ReadResponseAsync();
            length ??= r.ContentLength;
            Assert.Equal(length, r.ContentLength);
            await h.CloseClientAsync();
            await h.WaitHandlerAsync();
        }
    }

    [Theory]
    [InlineData("/?format=text", "")]
    [InlineData("/", "Accept: text/plain\r\n")]
    [InlineData("http://198.18.0.2/?format=text", "")]
    public async Task Front_page_as_plain_text(string target, string extra)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get(target, extra));

        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", r.Header("Content-Type"));
        string text = r.BodyText;
        Assert.StartsWith("TunStack: ", text, StringComparison.Ordinal);
        Assert.Contains("client ISN    1234567890", text, StringComparison.Ordinal);
        Assert.Contains("our ISN       3141592653", text, StringComparison.Ordinal);
        Assert.DoesNotContain("<html", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accept_star_gets_html()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/", "Accept: */*\r\n"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal("text/html; charset=utf-8", r.Header("Content-Type"));
    }

    [Fact]
    public async Task Bytes_streams_the_exact_pattern()
    {
        const long n = 1_000_003;
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get($"/bytes/{n}"));

        HttpResponse r = await h.ReadHeadAsync();
        AssertCommonHeaders(r);
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("application/octet-stream", r.Header("Content-Type"));
        Assert.Equal(n, r.ContentLength);

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var body = new ArrayBufferWriter<byte>();
        await h.ReadBodyAsync(n, piece =>
        {
            foreach (ReadOnlyMemory<byte> segment in piece)
            {
                sha.AppendData(segment.Span);
                body.Write(segment.Span);
            }
        });

        // Computed outside .NET: python3 hashlib over the pattern repeated to 1,000,003 bytes.
        Assert.Equal("6325ef64c0917183e601f17c46f2953096843a09d732d391962c50a3ccc29c9d", Convert.ToHexStringLower(sha.GetHashAndReset()));
        Assert.True(body.WrittenSpan.SequenceEqual(Reference(n)), "body differs from the pattern");
        Assert.Equal((byte)'0', body.WrittenSpan[64]);
        Assert.Equal((byte)'+', body.WrittenSpan[62]);
        Assert.Equal((byte)'\n', body.WrittenSpan[999_999]); // 999_999 % 64 == 63

        // The connection is still usable afterwards.
        await h.SendAsync(Get("/bytes/3"));
        HttpResponse next = await h.ReadResponseAsync();
        Assert.Equal("012", next.BodyText);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(16_383)]
    [InlineData(65_536)]
    [InlineData(65_601)]
    [InlineData(300_007)]
    public async Task Bytes_is_right_at_chunk_edges(int n)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get($"/bytes/{n}"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(n, r.ContentLength);
        Assert.Equal(Reference(n), r.Body);
    }

    [Fact]
    public async Task Bytes_zero_is_an_empty_body()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/bytes/0"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("0", r.Header("Content-Length"));
        Assert.Empty(r.Body);

        await h.SendAsync(Get("/bytes/2"));
        Assert.Equal("01", (await h.ReadResponseAsync()).BodyText);
    }

    [Theory]
    [InlineData("/bytes/")]
    [InlineData("/bytes/-1")]
    [InlineData("/bytes/+5")]
    [InlineData("/bytes/abc")]
    [InlineData("/bytes/1e3")]
    [InlineData("/bytes/12x")]
    [InlineData("/bytes/5/")]
    [InlineData("/bytes/1000000000001")]
    [InlineData("/bytes/99999999999999999999999999")]
    public async Task Bytes_rejects_a_bad_count_with_400(string target)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get(target));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(400, r.StatusCode);
        AssertCommonHeaders(r);

        // The request itself was well-formed, so the connection stays open.
        await h.SendAsync(Get("/bytes/1"));
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Head_of_the_largest_bytes_has_its_length_and_no_body()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("HEAD /bytes/1000000000000 HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync(hasBody: false);
        Assert.Equal(200, r.StatusCode);
        Assert.Equal(1_000_000_000_000, r.ContentLength);

        // The next bytes on the wire are the next response, so no body was sent.
        await h.SendAsync(Get("/bytes/4"));
        HttpResponse next = await h.ReadResponseAsync();
        Assert.Equal(200, next.StatusCode);
        Assert.Equal("0123", next.BodyText);
    }

    [Fact]
    public async Task Head_of_the_front_page_matches_get()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/"));
        HttpResponse get = await h.ReadResponseAsync();
        await h.SendAsync("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse head = await h.ReadResponseAsync(hasBody: false);
        Assert.Equal(200, head.StatusCode);
        Assert.Equal(get.ContentLength, head.ContentLength);
        Assert.Equal(get.Header("Content-Type"), head.Header("Content-Type"));

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Pipelined_requests_are_answered_in_order()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(
            Get("/bytes/5") +
            "HEAD /bytes/70 HTTP/1.1\r\nHost: x\r\n\r\n" +
            Get("/nope") +
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" +
            Get("/bytes/2"));
        await h.CloseClientAsync();

        HttpResponse a = await h.ReadResponseAsync();
        Assert.Equal(200, a.StatusCode);
        Assert.Equal("01234", a.BodyText);

        HttpResponse b = await h.ReadResponseAsync(hasBody: false);
        Assert.Equal(200, b.StatusCode);
        Assert.Equal(70, b.ContentLength);

        HttpResponse c = await h.ReadResponseAsync();
        Assert.Equal(404, c.StatusCode);

        HttpResponse d = await h.ReadResponseAsync();
        Assert.Equal(405, d.StatusCode);

        HttpResponse e = await h.ReadResponseAsync();
        Assert.Equal(200, e.StatusCode);
        Assert.Equal("01", e.BodyText);

        // The client's FIN came after the last request: the server closes too.
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task A_request_split_into_single_bytes_is_parsed()
    {
        // Tiny segments make the request head span many buffer segments.
        var options = new PipeOptions(minimumSegmentSize: 16);
        var h = ServiceHarness.Start(new HttpService(), options: options);
        byte[] request = Encoding.ASCII.GetBytes(Get("/bytes/10", "X-Padding: " + new string('p', 300) + "\r\n"));
        foreach (byte b in request)
        {
            await h.SendAsync(new[] { b });
        }

        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("0123456789", r.BodyText);
    }

    [Fact]
    public async Task Keep_alive_then_fin_closes_cleanly()
    {
        var service = new HttpService();
        var h = ServiceHarness.Start(service);

        await h.SendAsync(Get("/"));
        HttpResponse first = await h.ReadResponseAsync();
        Assert.Equal(200, first.StatusCode);
        Assert.Null(first.Header("Connection"));

        // Still open: a second request on the same connection is answered.
        await h.SendAsync(Get("/bytes/1"));
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
        Assert.False(h.Handler.IsCompleted);

        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
        Assert.Equal(2, service.RequestsServed);
    }

    [Fact]
    public async Task Connection_close_is_honoured()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/bytes/3", "Connection: close\r\n"));

        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal("012", r.BodyText);
        Assert.Equal("close", r.Header("Connection"));
        // Our FIN comes while the client's side is still open.
        await h.AssertServerClosedAsync();

        // Lingering: the server keeps draining input until the client closes too.
        await h.SendAsync("GET /ignored HTTP/1.1\r\n\r\n");
        await h.CloseClientAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Lingering_ends_after_its_timeout()
    {
        var h = ServiceHarness.Start(new HttpService { LingerTimeout = TimeSpan.FromMilliseconds(50) });
        await h.SendAsync(Get("/", "Connection: close\r\n"));
        await h.ReadResponseAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync(); // the client never closes
    }

    [Fact]
    public async Task Http10_closes_by_default()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /bytes/2 HTTP/1.0\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal("HTTP/1.1", r.Version);
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("01", r.BodyText);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
        await h.CloseClientAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Http10_keep_alive_is_honoured()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /bytes/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal("keep-alive", r.Header("Connection"));

        await h.SendAsync("GET /nope HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        HttpResponse missing = await h.ReadResponseAsync();
        Assert.Equal(404, missing.StatusCode);
        Assert.Equal("keep-alive", missing.Header("Connection"));

        await h.SendAsync("GET /bytes/1 HTTP/1.0\r\n\r\n");
        HttpResponse last = await h.ReadResponseAsync();
        Assert.Equal("close", last.Header("Connection"));
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Unknown_path_is_404()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/favicon.ico"));
        HttpResponse r = await h.ReadResponseAsync();
        AssertCommonHeaders(r);
        Assert.Equal(404, r.StatusCode);
        Assert.Equal("Not Found", r.Reason);
        Assert.Equal(r.Body.Length, r.ContentLength);
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("get")]
    public async Task Other_methods_are_405_with_allow(string method)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync($"{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        AssertCommonHeaders(r);
        Assert.Equal(405, r.StatusCode);
        Assert.Equal("GET, HEAD", r.Header("Allow"));
    }

    [Fact]
    public async Task A_request_body_is_skipped_and_the_connection_stays_in_step()
    {
        var h = ServiceHarness.Start(new HttpService());
        string body = new('b', 100_000);
        Task sending = h.SendAsync($"POST /bytes/1 HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n{body}" + Get("/bytes/3"));

        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(405, r.StatusCode);
        HttpResponse next = await h.ReadResponseAsync();
        Assert.Equal("012", next.BodyText);
        await sending.WaitAsync(ServiceHarness.Timeout);
    }

    [Fact]
    public async Task Expect_100_continue_gets_an_interim_response()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        HttpResponse interim = await h.ReadResponseAsync();
        Assert.Equal(100, interim.StatusCode);

        await h.SendAsync("hello");
        HttpResponse final = await h.ReadResponseAsync();
        Assert.Equal(404, final.StatusCode);
    }

    [Fact]
    public async Task Get_with_a_body_is_answered_after_the_body()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /bytes/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
        await h.SendAsync("cd" + Get("/bytes/1"));
        Assert.Equal("01", (await h.ReadResponseAsync()).BodyText);
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
    }

    [Theory]
    [InlineData("GET /\r\n\r\n")] // HTTP/0.9
    [InlineData("GET  / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1 \r\nHost: x\r\n\r\n")]
    [InlineData("GET / extra HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / http/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.x\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/11\r\nHost: x\r\n\r\n")]
    [InlineData("G(T / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /a\u007fb HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost : x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX: a\u0001b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n\r\n")] // no Host
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]
    [InlineData("\r\rGET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    public async Task Malformed_requests_get_400_and_close(string request)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(request);
        HttpResponse r = await h.ReadResponseAsync();
        AssertCommonHeaders(r);
        Assert.Equal(400, r.StatusCode);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
        await h.CloseClientAsync();
        await h.WaitHandlerAsync();
    }

    [Theory]
    [InlineData("GET / HTTP/2.0\r\nHost: x\r\n\r\n")]
    [InlineData("GET / HTTP/0.9\r\nHost: x\r\n\r\n")]
    [InlineData("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]
    public async Task Other_major_versions_get_505_and_close(string request)
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(request);
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(505, r.StatusCode);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Later_http1_minor_versions_are_served_as_1_1()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /bytes/1 HTTP/1.2\r\nHost: x\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Null(r.Header("Connection"));
    }

    [Fact]
    public async Task Identical_repeated_content_lengths_are_one()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /bytes/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nzz" + Get("/bytes/2"));
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
        Assert.Equal("01", (await h.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Bare_lf_line_ends_and_leading_empty_lines_are_tolerated()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("\r\n\nGET /bytes/3 HTTP/1.1\nHost: x\nConnection: close\n\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal("012", r.BodyText);
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Oversized_header_section_gets_431_and_close()
    {
        var h = ServiceHarness.Start(new HttpService());
        string big = new('x', 8_000);
        Task sending = h.SendAsync($"GET / HTTP/1.1\r\nHost: x\r\nX-A: {big}\r\nX-B: {big}\r\nX-C: {big}\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(431, r.StatusCode);
        Assert.Equal("close", r.Header("Connection"));
        await h.AssertServerClosedAsync();
        await sending.WaitAsync(ServiceHarness.Timeout);
        await h.CloseClientAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Oversized_header_without_an_end_is_refused_before_it_ends()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + new string('y', 17_000));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(431, r.StatusCode);
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Oversized_request_line_gets_414()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET /" + new string('a', 17_000) + " HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(414, r.StatusCode);
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task A_header_section_just_under_the_limit_is_fine()
    {
        var h = ServiceHarness.Start(new HttpService());
        string prefix = "GET /bytes/1 HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        string pad = new('p', 16 * 1024 - prefix.Length - 4);
        string request = prefix + pad + "\r\n\r\n";
        Assert.Equal(16 * 1024, request.Length);
        await h.SendAsync(request);
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
    }

    [Fact]
    public async Task A_chunked_body_to_another_resource_is_skipped_and_the_connection_stays_in_step()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + Get("/bytes/2"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(405, r.StatusCode);
        Assert.Equal("GET, HEAD", r.Header("Allow"));
        Assert.Null(r.Header("Connection"));
        Assert.Equal("01", (await h.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Unsupported_expectation_gets_417()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n");
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(417, r.StatusCode);
        await h.AssertServerClosedAsync();
    }

    [Fact]
    public async Task Fin_in_the_middle_of_a_request_gets_400()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET / HTTP/1.1\r\nHo");
        await h.CloseClientAsync();
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(400, r.StatusCode);
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Fin_in_the_middle_of_a_body_just_closes()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
        await h.CloseClientAsync();
        await h.AssertServerClosedAsync();
        await h.WaitHandlerAsync();
    }

    [Fact]
    public async Task Stats_returns_the_providers_json()
    {
        int calls = 0;
        var h = ServiceHarness.Start(new HttpService(() => $"{{\"calls\":{++calls}}}"));
        await h.SendAsync(Get("/stats") + Get("/stats"));
        HttpResponse a = await h.ReadResponseAsync();
        HttpResponse b = await h.ReadResponseAsync();
        Assert.Equal(200, a.StatusCode);
        Assert.Equal("application/json", a.Header("Content-Type"));
        Assert.Equal("{\"calls\":1}", a.BodyText);
        Assert.Equal("{\"calls\":2}", b.BodyText);
    }

    [Fact]
    public async Task Stats_is_404_without_a_provider()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/stats"));
        Assert.Equal(404, (await h.ReadResponseAsync()).StatusCode);
    }

    [Fact]
    public async Task Stats_provider_failure_is_500_not_a_crash()
    {
        var h = ServiceHarness.Start(new HttpService(() => throw new InvalidOperationException("boom")));
        await h.SendAsync(Get("/stats") + Get("/bytes/1"));
        Assert.Equal(500, (await h.ReadResponseAsync()).StatusCode);
        Assert.Equal("0", (await h.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Connections_returns_the_providers_table_as_plain_text()
    {
        var h = ServiceHarness.Start(new HttpService { ConnectionsProvider = () => "1 live connection\n" });
        await h.SendAsync(Get("/connections"));
        HttpResponse r = await h.ReadResponseAsync();
        Assert.Equal(200, r.StatusCode);
        Assert.Equal("text/plain; charset=utf-8", r.Header("Content-Type"));
        Assert.Equal("1 live connection\n", r.BodyText);
    }

    [Fact]
    public async Task Connections_is_404_without_a_provider_and_500_when_it_fails()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/connections"));
        Assert.Equal(404, (await h.ReadResponseAsync()).StatusCode);

        var failing = ServiceHarness.Start(new HttpService { ConnectionsProvider = () => throw new InvalidOperationException("boom") });
        await failing.SendAsync(Get("/connections") + Get("/bytes/1"));
        Assert.Equal(500, (await failing.ReadResponseAsync()).StatusCode);
        Assert.Equal("0", (await failing.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Client_that_stops_reading_ends_a_huge_download()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync(Get("/bytes/1000000000000"));
        HttpResponse r = await h.ReadHeadAsync();
        Assert.Equal(1_000_000_000_000, r.ContentLength);
        await h.ClientInput.CompleteAsync();
        await h.WaitHandlerAsync();
        Assert.True(h.Handler.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Cancellation_ends_a_huge_download_quietly()
    {
        using var cts = new CancellationTokenSource();
        var h = ServiceHarness.Start(new HttpService(), cancellationToken: cts.Token);
        await h.SendAsync(Get("/bytes/1000000000000"));
        await h.ReadHeadAsync();
        await cts.CancelAsync();
        await h.WaitHandlerAsync();
        Assert.True(h.Handler.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Reset_mid_request_ends_quietly()
    {
        var h = ServiceHarness.Start(new HttpService());
        await h.SendAsync("GET / HT");
        await h.ClientOutput.CompleteAsync(new IOException("connection reset"));
        await h.WaitHandlerAsync();
        Assert.True(h.Handler.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Describes_itself()
    {
        var http = new HttpService { Port = 8080 };
        Assert.Equal("http", http.Name);
        Assert.Equal(8080, http.Port);
        Assert.Equal(80, new HttpService().Port);
        await Task.CompletedTask;
    }
}
