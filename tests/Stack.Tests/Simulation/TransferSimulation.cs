using System.Security.Cryptography;
using TunStack.Tcp;
using TunStack.Tcp.Congestion;
using TunStack.Wire;

namespace TunStack.Tests.Simulation;

/// <summary>
/// Two engines — a client that connects (active open) and a server that listens — over a <see cref="SimulatedLink"/>
/// each way, with time driven explicitly from one event to the next. Each side sends its bytes, reads everything the
/// other sends, and closes when done. The outcome says whether every byte arrived exactly and both sides closed.
/// </summary>
internal sealed class TransferSimulation
{
    public static readonly IpAddress ClientAddress = IpAddress.Parse("198.18.0.1");
    public static readonly IpAddress ServerAddress = IpAddress.Parse("198.18.0.2");
    private const ushort ServerPort = 80;

    private readonly NetStack _client;
    private readonly NetStack _server;
    private readonly SimulatedLink _up;   // client -> server
    private readonly SimulatedLink _down; // server -> client
    private readonly byte[] _upload;
    private readonly byte[] _download;
    private readonly MemoryStream _serverReceived = new();
    private readonly MemoryStream _clientReceived = new();
    private readonly byte[] _scratch = new byte[16384];
    private Tcb? _clientTcb;
    private Tcb? _serverTcb;
    private int _clientOffered;
    private int _serverOffered;

    public TransferSimulation(NetStackOptions clientOptions, NetStackOptions serverOptions, LinkProfile up, LinkProfile down,
        int uploadBytes, int downloadBytes, int seed)
    {
        var random = new Random(seed);
        _client = new NetStack(clientOptions);
        _server = new NetStack(serverOptions);
        _up = new SimulatedLink(up, new Random(random.Next()));
        _down = new SimulatedLink(down, new Random(random.Next()));
        _upload = new byte[uploadBytes];
        _download = new byte[downloadBytes];
        random.NextBytes(_upload);
        random.NextBytes(_download);
    }

    public long Now { get; private set; } = 1_000_000;
    public NetStack Client => _client;
    public NetStack Server => _server;
    public Tcb? ClientConnection => _clientTcb;
    public Tcb? ServerConnection => _serverTcb;
    public SimulatedLink Up => _up;
    public SimulatedLink Down => _down;

    public static NetStackOptions Options(IpAddress address, int seed, bool sack = true, bool timestamps = true,
        CongestionControlAlgorithm cc = CongestionControlAlgorithm.Cubic, int mtu = 1500, int buffer = 256 * 1024,
        long delayedAck = 40_000) => new()
    {
        Address = address,
        Mtu = mtu,
        MslMicros = 1_000_000,
        ReceiveBufferSize = buffer,
        SendBufferSize = buffer,
        Sack = sack,
        Timestamps = timestamps,
        CongestionControl = cc,
        DelayedAckMicros = delayedAck,
        IsnSecret = SHA256.HashData(BitConverter.GetBytes(seed))[..16],
    };

    /// <summary>Runs until both connections are closed (or in TIME-WAIT) or <paramref name="limitMicros"/> of simulated time pass.</summary>
    public SimulationOutcome Run(long limitMicros = 600_000_000)
    {
        _server.Listen(ServerPort);
        _clientTcb = _client.Connect(ServerAddress, ServerPort);
        long end = Now + limitMicros;
        long events = 0;
        while (Now < end && events++ < 20_000_000)
        {
            Step();
            if (Done) break;
            long next = Math.Min(Math.Min(_up.NextDelivery, _down.NextDelivery),
                Math.Min(_client.Poll(Now), _server.Poll(Now)));
            Collect();
            if (next == long.MaxValue) break; // nothing will ever happen again
            Now = Math.Max(Now + 1, next);
        }
        return new SimulationOutcome(
            Done,
            _upload.AsSpan().SequenceEqual(_serverReceived.ToArray()),
            _download.AsSpan().SequenceEqual(_clientReceived.ToArray()),
            _serverReceived.Length, _clientReceived.Length, _upload.Length, _download.Length,
            Now, _clientTcb?.State ?? TcpState.Closed, _serverTcb?.State ?? TcpState.Closed,
            _client.Counters.LastInternalError ?? _server.Counters.LastInternalError,
            _client.Counters.ReceiveBufferOverruns + _server.Counters.ReceiveBufferOverruns,
            _client.Counters.BeyondWindowSegments + _server.Counters.BeyondWindowSegments);
    }

    private bool Done =>
        _clientTcb is not null && _serverTcb is not null
        && IsFinished(_clientTcb) && IsFinished(_serverTcb)
        && _clientReceived.Length == _download.Length && _serverReceived.Length == _upload.Length;

    private static bool IsFinished(Tcb tcb) => tcb.State is TcpState.Closed or TcpState.TimeWait;

    private void Step()
    {
        while (_up.TryReceive(Now, out var packet)) _server.Receive(packet, Now);
        while (_down.TryReceive(Now, out var packet)) _client.Receive(packet, Now);
        while (_server.TryTakeEvents(out var tcb, out var events))
        {
            if ((events & ConnectionEvents.Established) != 0 && _serverTcb is null)
                _serverTcb = tcb;
        }
        while (_client.TryTakeEvents(out _, out _)) { }
        if (_clientTcb is not null) Application(_clientTcb, _download.Length, _upload, ref _clientOffered, _clientReceived);
        if (_serverTcb is not null) Application(_serverTcb, _upload.Length, _download, ref _serverOffered, _serverReceived);
        _client.Poll(Now);
        _server.Poll(Now);
        Collect();
    }

    /// <summary>Each side: read everything available, keep the send buffer full, close once all is sent.</summary>
    private void Application(Tcb tcb, int expected, byte[] toSend, ref int offered, MemoryStream received)
    {
        int n;
        while ((n = tcb.Receive(_scratch)) > 0)
            received.Write(_scratch, 0, n);
        if (tcb.State is not (TcpState.Established or TcpState.CloseWait))
            return;
        if (offered < toSend.Length)
        {
            offered += tcb.Send(toSend.AsSpan(offered));
            if (offered == toSend.Length) tcb.Close();
        }
        else if (toSend.Length == 0)
        {
            tcb.Close();
        }
    }

    private void Collect()
    {
        while (_client.Transmit.TryDequeue(out var packet))
        {
            _up.Send(packet.Span, Now);
            _client.Transmit.Return(packet);
        }
        while (_server.Transmit.TryDequeue(out var packet))
        {
            _down.Send(packet.Span, Now);
            _server.Transmit.Return(packet);
        }
    }
}

internal sealed record SimulationOutcome(
    bool Finished, bool UploadExact, bool DownloadExact, long UploadReceived, long DownloadReceived,
    long UploadSize, long DownloadSize, long EndMicros, TcpState ClientState, TcpState ServerState, Exception? InternalError,
    long BufferOverruns, long BeyondWindow)
{
    /// <summary>
    /// Every byte arrived exactly, both closed, no internal error — and no segment ever overran an advertised window
    /// or a buffer: both ends are this engine, so either would be a bug (a window promising more than the buffer).
    /// </summary>
    public bool Succeeded => Finished && UploadExact && DownloadExact && InternalError is null && BufferOverruns == 0 && BeyondWindow == 0;

    public override string ToString() =>
        $"finished {Finished}, upload {UploadReceived}/{UploadSize} exact {UploadExact}, download {DownloadReceived}/{DownloadSize} " +
        $"exact {DownloadExact}, client {ClientState.ToRfcName()}, server {ServerState.ToRfcName()}, t = {EndMicros / 1e6:F3} s" +
        $", buffer overruns {BufferOverruns}, beyond window {BeyondWindow}" +
        (InternalError is null ? "" : $", internal error {InternalError}");
}
