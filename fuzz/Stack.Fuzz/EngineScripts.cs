using TunStack.Wire;

namespace TunStack.Fuzz;

/// <summary>
/// Hand-written <see cref="EngineHarness"/> sessions that reach the states and timers a capture of one curl
/// request does not: our active close and TIME-WAIT, a zero window and its probes, retransmission timeouts, a
/// reset, several connections against a small backlog, challenge ACKs. They seed the fuzzer and the replay tests.
/// </summary>
internal static class EngineScripts
{
    private const TcpFlags Ack = TcpFlags.Ack;
    private const TcpFlags PshAck = TcpFlags.Psh | TcpFlags.Ack;
    private const TcpFlags FinAck = TcpFlags.Fin | TcpFlags.Ack;

    /// <summary>The options of a Linux SYN: MSS 1460, SACK permitted, timestamps, window scale 7.</summary>
    public static byte[] LinuxSynOptions(ushort mss = 1460, byte windowScale = 7)
    {
        var options = new TcpOptions { Mss = mss, SackPermitted = true, HasTimestamps = true, TimestampValue = 1, WindowScale = windowScale };
        var bytes = new byte[TcpPacketBuilder.MaxOptionsLength];
        return bytes[..options.WriteTo(bytes)];
    }

    public static IEnumerable<(string Name, byte[] Input)> All()
    {
        var config = EngineConfig.Default;
        yield return ("passive-close", Handshake(config)
            .Segment(PshAck, 80).AppSend(20).Segment(Ack).Segment(FinAck).AppClose().Segment(Ack).ToArray());

        yield return ("active-close-time-wait", Handshake(config)
            .Segment(PshAck, 100).AppSend(3).AppClose().Segment(Ack).Segment(FinAck)
            .Advance(100).Segment(FinAck, seqOffset: -1).Advance(255).ToArray());

        yield return ("zero-window-probes", Handshake(config with { SendBufferSize = 4096 })
            .AppSend(40).Segment(Ack, window: 0).AppSend(20).Advance(180).Advance(200).Segment(Ack, window: 0)
            .Advance(220).Segment(Ack, window: 65535).Segment(Ack).ToArray());

        yield return ("retransmission-timeouts", Handshake(config)
            .AppSend(100).Advance(150).Advance(170).Advance(190).Segment(Ack, ackOffset: -1000)
            .Segment(Ack, ackOffset: -1000).Segment(Ack, ackOffset: -1000).Segment(Ack).ToArray());

        yield return ("small-buffers-window-full", Handshake(config with { ReceiveBufferSize = 300, SendBufferSize = 300, ApplicationReads = false })
            .Segment(PshAck, 200).Segment(PshAck, 200).Segment(PshAck, 100).AppReceive(10).AppReceive(0).Segment(PshAck, 50).ToArray());

        yield return ("reset-in-window-and-exact", Handshake(config)
            .Segment(TcpFlags.Rst, seqOffset: 10).Segment(TcpFlags.Syn, seqOffset: 5).Segment(TcpFlags.Rst).ToArray());

        yield return ("backlog-and-closed-port", new EngineInput.Writer(config with { Backlog = 1, MaxTimeWait = 0 })
            .Segment(TcpFlags.Syn, options: LinuxSynOptions(), portIndex: 0)
            .Segment(TcpFlags.Syn, options: LinuxSynOptions(), portIndex: 1)
            .Segment(TcpFlags.Syn, toClosedPort: true, portIndex: 2)
            .Segment(Ack, portIndex: 0).Segment(TcpFlags.Syn, options: LinuxSynOptions(), portIndex: 1)
            .Advance(200).Advance(230).Advance(255).ToArray());

        yield return ("odd-options-and-urgent", Handshake(config, LinuxSynOptions(mss: 0, windowScale: 255))
            .Segment(PshAck | TcpFlags.Urg, 30, urgentPointerCode: 255)
            .Segment(PshAck, 30, options: [5, 10, 0, 0, 0, 1, 0, 0, 0, 2]).AppSend(5).Segment(Ack).ToArray());

        yield return ("abort", Handshake(config with { Trace = true }).AppSend(10).AppClose(abort: true).Segment(Ack).ToArray());
    }

    private static EngineInput.Writer Handshake(EngineConfig config, byte[]? synOptions = null) =>
        new EngineInput.Writer(config).Segment(TcpFlags.Syn, options: synOptions ?? LinuxSynOptions()).Segment(Ack);
}
