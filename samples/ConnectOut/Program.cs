// The client side: connect out through TunStack to a server on the kernel side of the TUN device, as HttpClient would
// over a socket — here with an ordinary Stream.
//
//   sudo ip tuntap add dev tun0 mode tun && sudo ip addr add 198.18.0.1/24 dev tun0 && sudo ip link set tun0 up
//   python3 -m http.server -b 198.18.0.1 8000 &
//   sudo dotnet run --project samples/ConnectOut -- --tun tun0 --address 198.18.0.2 http://198.18.0.1:8000/
//
// Prints the response (head and body) to standard output; the exit status is 0 when the server answered.
using System.Net;
using System.Net.Sockets;
using System.Text;
using TunStack;
using TunStack.Linux;

string tun = Argument("--tun") ?? "tun0";
var address = IPAddress.Parse(Argument("--address") ?? "198.18.0.2");
var url = new Uri(args.LastOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal)) ?? "http://198.18.0.1:8000/");

await using var stack = await TunStackHost.StartAsync(TunDevice.Open(tun, 1500, offloads: true), new TunStackOptions
{
    Addresses = [address],
    ConnectTimeout = TimeSpan.FromSeconds(10),
});

try
{
    await using var connection = await stack.ConnectAsync(new IPEndPoint(IPAddress.Parse(url.Host), url.Port));
    Console.Error.WriteLine($"connected {connection.LocalEndPoint} -> {connection.RemoteEndPoint}, " +
        $"ISN ours {connection.Info.LocalInitialSequence}, theirs {connection.Info.PeerInitialSequence}");
    await using var stream = connection.GetStream();
    await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {url.PathAndQuery} HTTP/1.1\r\nHost: {url.Authority}\r\nConnection: close\r\n\r\n"));
    stream.CompleteWrites(); // half-close: the request is complete
    await using var stdout = Console.OpenStandardOutput();
    await stream.CopyToAsync(stdout); // until the server's FIN
    return 0;
}
catch (SocketException e)
{
    Console.Error.WriteLine($"ConnectOut: {url}: {e.SocketErrorCode} ({e.Message})");
    return e.SocketErrorCode == SocketError.ConnectionRefused ? 3 : 1;
}

string? Argument(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
