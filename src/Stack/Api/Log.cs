using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace TunStack;

/// <summary>The host's log messages (category <c>TunStack</c>), generated at compile time.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "TunStack started on {Device} as {Addresses}, MTU {Mtu}")]
    public static partial void Started(this ILogger logger, string device, string addresses, int mtu);

    [LoggerMessage(2, LogLevel.Information, "TunStack on {Device} stopped")]
    public static partial void Stopped(this ILogger logger, string device);

    [LoggerMessage(3, LogLevel.Critical, "The event loop failed; the stack has stopped")]
    public static partial void LoopFailed(this ILogger logger, Exception exception);

    [LoggerMessage(4, LogLevel.Debug, "Listening on {EndPoint}")]
    public static partial void ListenerOpened(this ILogger logger, IPEndPoint endPoint);

    [LoggerMessage(5, LogLevel.Debug, "Forwarding listener opened: connections to other addresses are accepted")]
    public static partial void ForwardingListenerOpened(this ILogger logger);

    [LoggerMessage(6, LogLevel.Debug, "Stopped listening on {EndPoint}")]
    public static partial void ListenerClosed(this ILogger logger, IPEndPoint endPoint);

    [LoggerMessage(7, LogLevel.Debug, "Connection {Connection} accepted")]
    public static partial void ConnectionAccepted(this ILogger logger, TunStackConnection connection);

    [LoggerMessage(8, LogLevel.Debug, "Connection to {Address}:{Port} reset: no listener for that address")]
    public static partial void ConnectionRejected(this ILogger logger, IPAddress address, ushort port);

    [LoggerMessage(9, LogLevel.Debug, "Connecting to {Address}:{Port} failed: {Error}")]
    public static partial void ConnectFailed(this ILogger logger, IPAddress address, ushort port, SocketError error);

    [LoggerMessage(10, LogLevel.Trace, "Connection {Connection} finished")]
    public static partial void ConnectionFinished(this ILogger logger, TunStackConnection connection);

    [LoggerMessage(11, LogLevel.Error, "Application code on the event loop failed; counted as an internal error, its connection reset, the loop goes on")]
    public static partial void LoopActionFailed(this ILogger logger, Exception exception);
}
