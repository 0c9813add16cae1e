using TunStack.Wire;

namespace TunStack.Fuzz;

/// <summary>
/// Turns captured traffic into seed inputs: each IPv4 packet as it is for <see cref="WireHarness"/>, and each
/// capture as one <see cref="EngineHarness"/> session in which the client's segments keep their flags, window,
/// options and payload length (sequence numbers made relative), the server's data becomes the application's
/// writes and the server's first FIN its close.
/// </summary>
internal static class CaptureSeeds
{
    public static byte[] ToEngineInput(IReadOnlyList<PcapReader.CapturedPacket> packets, IpAddress server, EngineConfig config)
    {
        var writer = new EngineInput.Writer(config);
        var clientPorts = new List<ushort>();
        var expectedSeq = new Dictionary<ushort, uint>();
        var closed = new HashSet<ushort>();
        long previous = packets.Count > 0 ? packets[0].TimeMicros : 0;
        foreach (var (time, packet) in packets)
        {
            if (!Ipv4Packet.TryParse(packet, out var ip, out _) || ip.Protocol != IpProtocol.Tcp
                || !TcpSegment.TryParse(ip.Payload, out var seg, out _))
                continue;
            bool fromClient = ip.Destination == server;
            ushort clientPort = fromClient ? seg.SourcePort : seg.DestinationPort;
            int portIndex = clientPorts.IndexOf(clientPort);
            if (portIndex < 0)
            {
                if (clientPorts.Count == EngineHarness.ClientPorts.Length) continue;
                clientPorts.Add(clientPort);
                portIndex = clientPorts.Count - 1;
            }

            if (!fromClient)
            {
                if (!seg.Payload.IsEmpty)
                    writer.AppSend((byte)Math.Min(255, (seg.Payload.Length - 1) / 64), portIndex);
                if (seg.Has(TcpFlags.Fin) && closed.Add(clientPort))
                    writer.AppClose(portIndex);
                continue;
            }

            var flags = seg.Flags;
            short seqOffset = 0;
            if ((flags & TcpFlags.Syn) == 0 && expectedSeq.TryGetValue(clientPort, out uint expected))
                seqOffset = (short)Math.Clamp((int)(seg.SequenceNumber - expected), short.MinValue, short.MaxValue);
            uint end = seg.SequenceNumber + (uint)seg.Payload.Length + (seg.Has(TcpFlags.Syn) ? 1u : 0u) + (seg.Has(TcpFlags.Fin) ? 1u : 0u);
            if (!expectedSeq.TryGetValue(clientPort, out uint before) || (int)(end - before) > 0 || seg.Has(TcpFlags.Syn))
                expectedSeq[clientPort] = end;

            writer.Segment(flags, seg.Payload.Length, seg.Options, seg.Window, seqOffset, 0,
                TimeStepCode(time - previous), portIndex);
            previous = time;
        }
        return writer.ToArray();
    }

    /// <summary>The largest time step code whose step does not exceed <paramref name="micros"/>.</summary>
    public static byte TimeStepCode(long micros)
    {
        byte best = 0;
        for (int code = 0; code <= 255; code++)
            if (EngineInput.TimeStep((byte)code) <= micros && EngineInput.TimeStep((byte)code) >= EngineInput.TimeStep(best))
                best = (byte)code;
        return best;
    }
}
