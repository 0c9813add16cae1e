using System.Globalization;
using System.Net;
using System.Text;
using TunStack;

namespace TunStack.Host.Services;

/// <summary>The front page of the HTTP service, as HTML and as plain text, describing the visitor's own connection.</summary>
internal static class ServicePages
{
    public const string Tagline = "a user-space TCP/IP stack in C# answering from behind a TUN device";

    private const string Style =
        "body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5 } " +
        "th, td { text-align: left; padding: .2rem 1rem .2rem 0 } td { font-family: ui-monospace, monospace } " +
        "pre { background: #f4f4f4; padding: .75rem; overflow-x: auto }";

    public static string Html(TcpConnectionInfo info, bool hasStats, bool hasConnections = false)
    {
        string host = Encode(HostOf(info.LocalEndPoint));
        var b = new StringBuilder(2048);
        b.Append(CultureInfo.InvariantCulture, $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>TunStack</title>
            <style>{Style}</style>
            </head>
            <body>
            <h1>TunStack</h1>
            <p>TunStack is {Tagline}. The kernel on this machine is the other end of this TCP connection;
            the handshake, the segments carrying this page and the acknowledgements were all handled by our code.</p>
            <h2>Your connection</h2>
            <table>
            <tr><th>client (you)</th><td>{Encode(Fixed(info.RemoteEndPoint))}</td></tr>
            <tr><th>server (us)</th><td>{Encode(Fixed(info.LocalEndPoint))}</td></tr>
            <tr><th>client ISN</th><td>{info.PeerInitialSequence,10} (0x{info.PeerInitialSequence:x8})</td></tr>
            <tr><th>our ISN</th><td>{info.LocalInitialSequence,10} (0x{info.LocalInitialSequence:x8})</td></tr>
            <tr><th>MSS</th><td>peer {info.PeerMss,5}, ours {info.LocalMss,5}, effective {info.EffectiveSendMss,5}</td></tr>
            </table>
            <h2>Try</h2>
            <pre>{Encode(Hints(host, hasStats, hasConnections))}</pre>
            </body>
            </html>

            """);
        return b.ToString();
    }

    public static string Text(TcpConnectionInfo info, bool hasStats, bool hasConnections = false)
    {
        string host = HostOf(info.LocalEndPoint);
        var b = new StringBuilder(1024);
        b.Append(CultureInfo.InvariantCulture, $"""
            TunStack: {Tagline}.

            Your connection:
              client (you)  {Fixed(info.RemoteEndPoint)}
              server (us)   {Fixed(info.LocalEndPoint)}
              client ISN    {info.PeerInitialSequence,10} (0x{info.PeerInitialSequence:x8})
              our ISN       {info.LocalInitialSequence,10} (0x{info.LocalInitialSequence:x8})
              MSS           peer {info.PeerMss,5}, ours {info.LocalMss,5}, effective {info.EffectiveSendMss,5}

            Try:
            {Hints(host, hasStats, hasConnections)}
            """);
        return b.ToString();
    }

    private static string Hints(string host, bool hasStats, bool hasConnections)
    {
        var b = new StringBuilder(512);
        b.Append(CultureInfo.InvariantCulture, $"  curl -s http://{host}/bytes/1000000 | sha256sum      N pattern bytes (0 <= N <= 10^12)\n");
        b.Append(CultureInfo.InvariantCulture, $"  curl -o /dev/null http://{host}/bytes/1000000000     a gigabyte, for throughput\n");
        b.Append(CultureInfo.InvariantCulture, $"  curl -T file -X POST http://{host}/sha256            the SHA-256 of what you upload\n");
        b.Append(CultureInfo.InvariantCulture, $"  curl 'http://{host}/?format=text'                    this page as plain text\n");
        if (hasStats)
        {
            b.Append(CultureInfo.InvariantCulture, $"  curl http://{host}/stats                             counters, as JSON\n");
        }

        if (hasConnections)
        {
            b.Append(CultureInfo.InvariantCulture, $"  curl http://{host}/connections                       the connection table, like ss -tin\n");
        }

        // nc takes an address, not a URL's host: no brackets around an IPv6 address.
        string address = host.Trim('[', ']');
        b.Append(CultureInfo.InvariantCulture, $"  echo hello | nc -N {address} 7                          echo service (RFC 862)\n");
        b.Append(CultureInfo.InvariantCulture, $"  head -c 100M /dev/zero | nc -N {address} 9              discard service (RFC 863)\n");
        return b.ToString();
    }

    private static string HostOf(IPEndPoint endPoint) =>
        endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{endPoint.Address}]"
            : endPoint.Address.ToString();

    private static string Encode(string s) => WebUtility.HtmlEncode(s);

    /// <summary>
    /// Endpoints padded to a fixed width, so that the page has the same length on every IPv4 connection and load
    /// generators that compare response lengths (ab) see no "failed" requests.
    /// </summary>
    private static string Fixed(System.Net.IPEndPoint endPoint) => endPoint.ToString().PadRight(21);
}
