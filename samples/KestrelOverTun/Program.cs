// ASP.NET Core served by TunStack: Kestrel's connections come from the user-space stack on a TUN device.
//
//   sudo ip tuntap add dev tun0 mode tun && sudo ip addr add 198.18.0.1/24 dev tun0 && sudo ip link set tun0 up
//   sudo dotnet run --project samples/KestrelOverTun -- --tun tun0 --address 198.18.0.2
//   curl http://198.18.0.2/                                   (HTTP/1.1 on port 80)
//   curl --http2-prior-knowledge http://198.18.0.2:8080/     (h2c on port 8080)
//   curl -o /dev/null http://198.18.0.2/bytes/104857600      (100 MiB)
//   curl -T file -X POST http://198.18.0.2/sha256            (SHA-256 of the upload)
using System.Buffers;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using TunStack;
using TunStack.AspNetCore;
using TunStack.Linux;

string tun = Argument("--tun") ?? "tun0";
var address = IPAddress.Parse(Argument("--address") ?? "198.18.0.2");
int mtu = int.Parse(Argument("--mtu") ?? "1500", System.Globalization.CultureInfo.InvariantCulture);

await using var stack = await TunStackHost.StartAsync(TunDevice.Open(tun, mtu, offloads: true), new TunStackOptions { Addresses = [address] });

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.UseTunStack(stack);
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.Listen(address, 80, listen => listen.Protocols = HttpProtocols.Http1);
    kestrel.Listen(address, 8080, listen => listen.Protocols = HttpProtocols.Http2); // h2c, prior knowledge
    kestrel.Limits.MaxRequestBodySize = null;
});
var app = builder.Build();

app.MapGet("/", (HttpContext context) =>
{
    var tcp = context.Features.Get<ITunStackConnectionFeature>();
    if (tcp is null) return "Not served by TunStack.\n";
    var info = tcp.Info;
    return $"""
        Hello from ASP.NET Core over TunStack ({context.Request.Protocol}).
        You are {info.RemoteEndPoint}, we are {info.LocalEndPoint}; state {tcp.State}.
        Your ISN {info.PeerInitialSequence}, ours {info.LocalInitialSequence}; MSS yours {info.PeerMss}, ours {info.LocalMss}; SACK {info.Sack}, timestamps {info.Timestamps}.

        """;
});

// Exactly N bytes of a 64-byte pattern (byte i is Pattern[i % 64]), streamed.
const string Pattern = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";
byte[] block = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(Pattern, 1024))); // 64 KiB, whole periods
app.MapGet("/bytes/{length:long}", async (long length, HttpContext context) =>
{
    if (length < 0) { context.Response.StatusCode = 400; return; }
    context.Response.ContentType = "application/octet-stream";
    context.Response.ContentLength = length;
    for (long left = length; left > 0; left -= block.Length)
        await context.Response.Body.WriteAsync(block.AsMemory(0, (int)Math.Min(left, block.Length)), context.RequestAborted);
});

// The SHA-256 of the request body, in hex.
app.MapPost("/sha256", async (HttpContext context) =>
{
    using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    var reader = context.Request.BodyReader;
    while (true)
    {
        var result = await reader.ReadAsync(context.RequestAborted);
        foreach (var segment in result.Buffer) hash.AppendData(segment.Span);
        reader.AdvanceTo(result.Buffer.End);
        if (result.IsCompleted) break;
    }
    return Convert.ToHexStringLower(hash.GetHashAndReset()) + "\n";
});

app.Lifetime.ApplicationStarted.Register(() =>
    Console.WriteLine($"KestrelOverTun ready on {tun} as {address}: HTTP/1.1 on port 80, h2c on port 8080"));
await app.RunAsync();

string? Argument(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
