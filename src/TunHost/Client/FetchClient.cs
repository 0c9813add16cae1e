using System.Net;
using System.Net.Sockets;
using System.Text;
using TunStack;
using TunStack.Linux;

namespace TunStack.Host.Client;

/// <summary>What <c>tunstack fetch</c> was asked to do.</summary>
/// <param name="Explain">Narrate the handshake and the close (<c>--explain</c>), on standard error with the trace.</param>
public sealed record FetchOptions(string TunName, string Address, int Mtu, bool Trace, string Url, string? OutputFile, TimeSpan Timeout,
    bool Offload = true, bool Explain = false);

/// <summary>
/// <c>tunstack fetch URL</c>: the client side of TCP through our engine. Opens (or attaches to) the TUN device, connects
/// out from our address (active open: SYN-SENT), sends an HTTP/1.1 GET, writes the body to a file or standard output
/// and exits as soon as its connection is done. Exit status: see <see cref="ExitCodes"/>.
/// </summary>
public static class FetchClient
{
    public static class ExitCodes
    {
        public const int Success = 0;
        public const int Failure = 1;
        public const int Usage = 2;
        public const int Refused = 3;
        public const int TimedOut = 4;
        public const int HttpError = 5;
        public const int BadResponse = 6;
    }

    public static async Task<int> RunAsync(FetchOptions options, TextWriter error, CancellationToken cancellationToken)
    {
        if (!TryParseUrl(options.Url, out var remote, out string hostHeader, out string target, out string? problem))
            return Fail(error, ExitCodes.Usage, problem!);
        if (!IPAddress.TryParse(options.Address, out var local) || local.AddressFamily != AddressFamily.InterNetwork)
            return Fail(error, ExitCodes.Usage, $"--address must be an IPv4 address, got '{options.Address}'");

        TunDevice device;
        try
        {
            device = TunDevice.Open(options.TunName, options.Mtu, options.Offload);
        }
        catch (TunDeviceException e) when (e.IsBusy)
        {
            return Fail(error, ExitCodes.Failure,
                $"{options.TunName} is held by another process — a tunstack server on the same single-queue TUN device? " +
                "A TUN device has one user: stop the server, or use another device (--tun).");
        }
        catch (TunDeviceException e)
        {
            return Fail(error, ExitCodes.Failure, e.Message);
        }

        var host = await TunStackHost.StartAsync(device, new TunStackOptions
        {
            Addresses = [local],
            Mtu = options.Mtu,
            ConnectTimeout = options.Timeout,
            SegmentTrace = options.Trace ? error : null,
            Explain = options.Explain ? error : null,
        }, cancellationToken).ConfigureAwait(false);
        await using (host.ConfigureAwait(false))
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.Timeout);
            try
            {
                return await FetchAsync(host, remote, hostHeader, target, options.OutputFile, error, timeout.Token).ConfigureAwait(false);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return Fail(error, ExitCodes.Refused, $"connection refused by {remote}");
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                return Fail(error, ExitCodes.TimedOut, $"no answer from {remote} (connect timed out)");
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return Fail(error, ExitCodes.TimedOut, $"timed out after {options.Timeout.TotalSeconds:0.#} s");
            }
            catch (HttpResponseException e)
            {
                return Fail(error, ExitCodes.BadResponse, $"bad response from {remote}: {e.Message}");
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                return Fail(error, ExitCodes.Failure, $"connection to {remote} failed: {e.Message}");
            }
        }
    }

    private static async Task<int> FetchAsync(TunStackHost stack, IPEndPoint remote, string host, string target, string? outputFile,
        TextWriter error, CancellationToken cancellationToken)
    {
        var connection = await stack.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
        HttpResponseHead head;
        long length;
        await using (connection.ConfigureAwait(false))
        {
            string request = $"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tunstack-fetch\r\nAccept: */*\r\nConnection: close\r\n\r\n";
            await connection.Output.WriteAsync(Encoding.ASCII.GetBytes(request), cancellationToken).ConfigureAwait(false);
            head = await HttpResponseReader.ReadHeadAsync(connection.Input, cancellationToken).ConfigureAwait(false);
            await using var destination = outputFile is null
                ? Console.OpenStandardOutput()
                : new FileStream(outputFile, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16, useAsync: true);
            length = await HttpResponseReader.CopyBodyAsync(connection.Input, head, destination, cancellationToken).ConfigureAwait(false);
            await destination.FlushAsync(cancellationToken).ConfigureAwait(false);
            // The response is complete: read on to the server's FIN (with Connection: close it follows at once), so
            // that our close is a clean one and not a reset for unread data.
            await DrainAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        // Wait for the closing handshake, not for TIME-WAIT (2·MSL) to pass.
        await connection.Closed.WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
        if (head.Status is < 200 or > 299)
            return Fail(error, ExitCodes.HttpError, $"HTTP {head.Status} {head.Reason} from {remote} ({length} body bytes)");
        return ExitCodes.Success;
    }

    private static async Task DrainAsync(TunStackConnection connection, CancellationToken cancellationToken)
    {
        using var grace = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        grace.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            while (true)
            {
                var result = await connection.Input.ReadAsync(grace.Token).ConfigureAwait(false);
                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) return;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The server keeps the connection open despite "Connection: close": we close first.
        }
    }

    /// <summary>http://IPv4[:port][/path]; the host must be an IP literal (there is no resolver in the stack).</summary>
    internal static bool TryParseUrl(string url, out IPEndPoint remote, out string hostHeader, out string target, out string? problem)
    {
        remote = null!;
        hostHeader = target = "";
        problem = null;
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            problem = $"'{url}' is not an http:// URL";
            return false;
        }
        if (uri.HostNameType != UriHostNameType.IPv4 || !IPAddress.TryParse(uri.Host, out var address))
        {
            problem = $"the host in '{url}' must be an IPv4 address (tunstack has no name resolver)";
            return false;
        }
        remote = new IPEndPoint(address, uri.Port);
        hostHeader = uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}";
        target = string.IsNullOrEmpty(uri.PathAndQuery) ? "/" : uri.PathAndQuery;
        return true;
    }

    private static int Fail(TextWriter error, int code, string message)
    {
        error.WriteLine($"tunstack fetch: {message}");
        return code;
    }
}
