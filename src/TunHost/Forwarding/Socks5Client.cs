using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace TunStack.Host.Forwarding;

/// <summary>The proxy refused or failed the request; <see cref="Reply"/> is its REP code (RFC 1928 §6).</summary>
public sealed class Socks5Exception(byte reply, string message) : IOException(message)
{
    /// <summary>REP: 1 general failure, 2 not allowed, 3 network unreachable, 4 host unreachable, 5 refused, ...</summary>
    public byte Reply { get; } = reply;
}

/// <summary>
/// The client side of SOCKS5 (RFC 1928) without authentication: the method negotiation (§3), a CONNECT request (§4)
/// and its reply (§6). After it succeeds the socket carries the relayed stream.
/// </summary>
public static class Socks5Client
{
    private const byte Version = 5;
    private const byte NoAuthentication = 0, NoAcceptableMethods = 0xFF;
    private const byte Connect = 1;
    private const byte AddressIpv4 = 1, AddressDomain = 3, AddressIpv6 = 4;

    /// <summary>Asks the proxy on <paramref name="socket"/> (connected) to connect to <paramref name="target"/>.</summary>
    /// <exception cref="Socks5Exception">The proxy refused (REP ≠ 0) or wants authentication.</exception>
    /// <exception cref="IOException">The proxy closed the connection or answered malformed.</exception>
    public static async Task ConnectAsync(Socket socket, IPEndPoint target, CancellationToken cancellationToken)
    {
        // §3: VER, NMETHODS, METHODS — only "no authentication required".
        await SendAsync(socket, new byte[] { Version, 1, NoAuthentication }, cancellationToken).ConfigureAwait(false);
        var choice = new byte[2];
        await ReceiveExactlyAsync(socket, choice, cancellationToken).ConfigureAwait(false);
        if (choice[0] != Version)
            throw new IOException($"not a SOCKS5 proxy (version {choice[0]})");
        if (choice[1] != NoAuthentication)
            throw new Socks5Exception(choice[1], choice[1] == NoAcceptableMethods
                ? "the proxy accepts no method without authentication"
                : $"the proxy chose method {choice[1]}, which was not offered");

        // §4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT (network order).
        bool v4 = target.Address.AddressFamily == AddressFamily.InterNetwork;
        var request = new byte[4 + (v4 ? 4 : 16) + 2];
        request[0] = Version;
        request[1] = Connect;
        request[3] = v4 ? AddressIpv4 : AddressIpv6;
        target.Address.TryWriteBytes(request.AsSpan(4), out int written);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4 + written), (ushort)target.Port);
        await SendAsync(socket, request, cancellationToken).ConfigureAwait(false);

        // §6: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT.
        var head = new byte[4];
        await ReceiveExactlyAsync(socket, head, cancellationToken).ConfigureAwait(false);
        if (head[0] != Version)
            throw new IOException($"malformed SOCKS5 reply (version {head[0]})");
        if (head[1] != 0)
            throw new Socks5Exception(head[1], $"the proxy could not connect to {target}: {Describe(head[1])}");
        int rest = head[3] switch
        {
            AddressIpv4 => 4 + 2,
            AddressIpv6 => 16 + 2,
            AddressDomain => -1,
            _ => throw new IOException($"malformed SOCKS5 reply (address type {head[3]})"),
        };
        if (rest < 0)
        {
            var length = new byte[1];
            await ReceiveExactlyAsync(socket, length, cancellationToken).ConfigureAwait(false);
            rest = length[0] + 2;
        }
        await ReceiveExactlyAsync(socket, new byte[rest], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The REP codes of RFC 1928 §6.</summary>
    public static string Describe(byte reply) => reply switch
    {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => $"reply {reply}",
    };

    private static async Task SendAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            int n = await socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            bytes = bytes[n..];
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new IOException("the SOCKS5 proxy closed the connection during the handshake");
            buffer = buffer[n..];
        }
    }
}
