using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using TunStack.Tests.Api;

namespace TunStack.AspNetCore.Tests;

/// <summary>
/// Kestrel on one stack, a client on another, linked in memory: the transport binds only the stack's endpoints, serves
/// HTTP through it, hands the TCP details to the app, and reports resets and aborts with Kestrel's exceptions.
/// </summary>
public sealed class KestrelTransportTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);
    private static readonly IPEndPoint Http = new(LinkedStacks.ServerAddress, 80);
    private static readonly IPEndPoint Raw = new(LinkedStacks.ServerAddress, 81);
    private static readonly IPEndPoint Aborting = new(LinkedStacks.ServerAddress, 82);

    private sealed class Server : IAsyncDisposable
    {
        public required LinkedStacks Stacks { get; init; }
        public required WebApplication App { get; init; }
        public TaskCompletionSource<Exception?> RawOutcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource<Exception?> AbortOutcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async ValueTask DisposeAsync()
        {
            await App.StopAsync();
            await App.DisposeAsync();
            await Stacks.DisposeAsync();
        }
    }

    /// <summary>HTTP/1.1 on 198.18.0.2:80, and on :81 a connection handler that reads until the transport ends.</summary>
    private static async Task<Server> StartAsync()
    {
        var stacks = await LinkedStacks.StartAsync();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseTunStack(stacks.Server);
        TaskCompletionSource<Exception?>? raw = null, aborted = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(Http);
            kestrel.Listen(Raw, listen => listen.Run(async connection =>
            {
                try
                {
                    while (true)
                    {
                        var result = await connection.Transport.Input.ReadAsync();
                        connection.Transport.Input.AdvanceTo(result.Buffer.End);
                        if (result.IsCompleted) break;
                    }
                    raw!.TrySetResult(null);
                }
                catch (Exception e)
                {
                    raw!.TrySetResult(e);
                }
            }));
            // On :82 the application aborts the connection at once, as Kestrel does on a protocol error or a timeout.
            kestrel.Listen(Aborting, listen => listen.Run(async connection =>
            {
                connection.Abort(new ConnectionAbortedException("the application gave up"));
                try
                {
                    await connection.Transport.Input.ReadAsync();
                    aborted!.TrySetResult(null);
                }
                catch (Exception e)
                {
                    aborted!.TrySetResult(e);
                }
            }));
        });
        var app = builder.Build();
        app.MapGet("/", (HttpContext context) =>
        {
            var tcp = context.Features.Get<ITunStackConnectionFeature>()!;
            return $"{tcp.Info.LocalEndPoint} {tcp.Info.RemoteEndPoint} {tcp.Info.PeerInitialSequence} {tcp.Info.LocalInitialSequence} {tcp.State}";
        });
        await app.StartAsync();
        var server = new Server { Stacks = stacks, App = app };
        raw = server.RawOutcome;
        aborted = server.AbortOutcome;
        return server;
    }

    [Fact]
    public async Task The_selector_binds_only_the_stacks_addresses()
    {
        await using var stacks = await LinkedStacks.StartAsync();
        var factory = new TunStackConnectionListenerFactory(stacks.Server);
        Assert.True(factory.CanBind(new IPEndPoint(LinkedStacks.ServerAddress, 80)));
        Assert.False(factory.CanBind(new IPEndPoint(IPAddress.Loopback, 80)));
        Assert.False(factory.CanBind(new IPEndPoint(IPAddress.Any, 80)));
        Assert.False(factory.CanBind(new System.Net.Sockets.UnixDomainSocketEndPoint("/tmp/x.sock")));
        await Assert.ThrowsAsync<NotSupportedException>(() => factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 80)).AsTask());
    }

    [Fact]
    public async Task Kestrel_answers_over_the_stack_and_the_app_sees_the_tcp_handshake()
    {
        await using var server = await StartAsync();
        await using var connection = await server.Stacks.Client.ConnectAsync(Http).WaitAsync(Deadline);
        var stream = connection.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.0\r\nHost: t\r\n\r\n"));
        var response = new MemoryStream();
        await stream.CopyToAsync(response).WaitAsync(Deadline); // HTTP/1.0: until Kestrel's FIN, no chunking
        string text = Encoding.ASCII.GetString(response.ToArray());

        Assert.StartsWith("HTTP/1.1 200 OK", text, StringComparison.Ordinal);
        string body = text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        Assert.Equal($"{Http} {connection.LocalEndPoint} {connection.Info.LocalInitialSequence} {connection.Info.PeerInitialSequence} Established", body);
    }

    [Fact]
    public async Task A_reset_from_the_peer_ends_the_transport_with_ConnectionResetException()
    {
        await using var server = await StartAsync();
        var connection = await server.Stacks.Client.ConnectAsync(Raw).WaitAsync(Deadline);
        await connection.Output.WriteAsync("some bytes"u8.ToArray());
        connection.Abort();
        var outcome = await server.RawOutcome.Task.WaitAsync(Deadline);
        Assert.IsType<ConnectionResetException>(outcome);
        Assert.IsType<System.Net.Sockets.SocketException>(outcome!.InnerException);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_peers_fin_completes_the_transport_input_without_error()
    {
        await using var server = await StartAsync();
        await using var connection = await server.Stacks.Client.ConnectAsync(Raw).WaitAsync(Deadline);
        await connection.Output.WriteAsync("bye"u8.ToArray());
        await connection.Output.CompleteAsync();
        Assert.Null(await server.RawOutcome.Task.WaitAsync(Deadline));
    }

    [Fact]
    public async Task A_local_abort_resets_the_peer_and_ends_the_transport_with_the_ConnectionAbortedException_given()
    {
        await using var server = await StartAsync();
        await using var connection = await server.Stacks.Client.ConnectAsync(Aborting).WaitAsync(Deadline);

        var outcome = await server.AbortOutcome.Task.WaitAsync(Deadline);
        var abortedException = Assert.IsType<ConnectionAbortedException>(outcome);
        Assert.Equal("the application gave up", abortedException.Message);

        // The peer learns by a RST: its read fails with ConnectionReset.
        var reset = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(async () =>
        {
            while (true)
            {
                var result = await connection.Input.ReadAsync().AsTask().WaitAsync(Deadline);
                connection.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) return;
            }
        });
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionReset, reset.SocketErrorCode);
    }
}
