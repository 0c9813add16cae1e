using System.Text;
using System.Text.Json;
using TunStack.Runtime;
using TunStack.Tcp;

namespace TunStack.Host;

/// <summary>Renders the connection table and counters as JSON for <c>GET /stats</c>, from a diagnostics snapshot.</summary>
public static class StatsJson
{
    /// <param name="diagnostics">The stack's connections and counters (<see cref="TunStackHost.GetDiagnosticsAsync"/>).</param>
    /// <param name="impaired">With <c>--impair</c>, the device whose counts are shown under <c>impairment</c>.</param>
    public static string Render(TunStackDiagnostics diagnostics, ImpairedDevice? impaired = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("connections");
            foreach (var connection in diagnostics.Connections)
            {
                json.WriteStartObject();
                json.WriteString("local", Endpoint(connection.LocalEndPoint));
                json.WriteString("remote", Endpoint(connection.RemoteEndPoint));
                json.WriteString("state", connection.State.ToString());
                json.WriteString("rfcState", connection.State.ToRfcName());
                json.WriteNumber("sendQueued", connection.SendQueued);
                json.WriteNumber("receiveQueued", connection.ReceiveQueued);
                json.WriteNumber("srttMicros", (long)connection.SmoothedRtt.TotalMicroseconds);
                json.WriteNumber("rtoMicros", (long)connection.RetransmissionTimeout.TotalMicroseconds);
                json.WriteNumber("cwnd", connection.CongestionWindow);
                json.WriteNumber("ssthresh", connection.SlowStartThreshold);
                json.WriteNumber("bytesInFlight", connection.BytesInFlight);
                json.WriteNumber("outOfOrderBytes", connection.OutOfOrderBytes);
                json.WriteNumber("retransmissions", connection.Retransmissions);
                json.WriteString("congestionControl", connection.CongestionControl);
                json.WriteBoolean("sack", connection.Sack);
                json.WriteBoolean("timestamps", connection.Timestamps);
                json.WriteEndObject();
            }
            json.WriteEndArray();

            var c = diagnostics.Counters;
            json.WriteStartObject("counters");
            json.WriteNumber("packetsReceived", c.PacketsReceived);
            json.WriteNumber("packetsSent", c.PacketsSent);
            json.WriteNumber("segmentsReceived", c.SegmentsReceived);
            json.WriteNumber("segmentsSent", c.SegmentsSent);
            json.WriteNumber("retransmissions", c.Retransmissions);
            json.WriteNumber("fastRecoveries", c.FastRecoveries);
            json.WriteNumber("retransmissionTimeouts", c.RetransmissionTimeouts);
            json.WriteNumber("lossProbes", c.LossProbes);
            json.WriteNumber("lostRetransmissions", c.LostRetransmissions);
            json.WriteNumber("windowProbes", c.WindowProbes);
            json.WriteNumber("delayedAcks", c.DelayedAcks);
            json.WriteNumber("outOfOrderSegments", c.OutOfOrderSegments);
            json.WriteNumber("outOfOrderDropped", c.OutOfOrderDropped);
            json.WriteNumber("beyondWindowSegments", c.BeyondWindowSegments);
            json.WriteNumber("receiveBufferOverruns", c.ReceiveBufferOverruns);
            json.WriteNumber("challengeAcksSuppressed", c.ChallengeAcksSuppressed);
            json.WriteNumber("synCookiesSent", c.SynCookiesSent);
            json.WriteNumber("synCookiesAccepted", c.SynCookiesAccepted);
            json.WriteNumber("pathMtuReductions", c.PathMtuReductions);
            json.WriteNumber("internalErrors", c.InternalErrors);
            json.WriteNumber("superPacketsSent", c.SuperPacketsSent);
            json.WriteNumber("superPacketsReceived", c.SuperPacketsReceived);
            json.WriteNumber("packetsHandedOff", c.PacketsHandedOff);
            json.WriteNumber("duplicateSegments", c.DuplicateSegments);
            json.WriteNumber("sackBlocksSent", c.SackBlocksSent);
            json.WriteNumber("sackBlocksReceived", c.SackBlocksReceived);
            json.WriteNumber("dsacksReceived", c.DsacksReceived);
            json.WriteNumber("resetsSent", c.ResetsSent);
            json.WriteNumber("resetsReceived", c.ResetsReceived);
            json.WriteNumber("passiveOpens", c.PassiveOpens);
            json.WriteNumber("connectionsEstablished", c.ConnectionsEstablished);
            json.WriteNumber("connectionsClosed", c.ConnectionsClosed);
            json.WriteNumber("connectionsAborted", c.ConnectionsAborted);
            json.WriteNumber("connectionsTimedOut", c.ConnectionsTimedOut);
            json.WriteNumber("echoRepliesSent", c.EchoRepliesSent);
            json.WriteNumber("timeWaitLimitReached", c.TimeWaitLimitReached);
            json.WriteNumber("packetTooBigReceived", c.PacketTooBigReceived);
            json.WriteEndObject();

            json.WriteStartObject("drops");
            foreach (var (reason, count) in c.Drops())
                json.WriteNumber(reason.ToString(), count);
            json.WriteEndObject();

            // One entry per TUN queue and engine shard (--queues): what each took in and sent, and handed to another.
            json.WriteStartArray("shards");
            foreach (var shard in diagnostics.ShardCounters)
            {
                json.WriteStartObject();
                json.WriteNumber("packetsReceived", shard.PacketsReceived);
                json.WriteNumber("packetsSent", shard.PacketsSent);
                json.WriteNumber("packetsHandedOff", shard.PacketsHandedOff);
                json.WriteNumber("passiveOpens", shard.PassiveOpens);
                json.WriteNumber("activeOpens", shard.ActiveOpens);
                json.WriteEndObject();
            }
            json.WriteEndArray();

            if (impaired is not null)
            {
                json.WriteStartObject("impairment");
                json.WriteString("options", impaired.Options.ToString());
                WriteImpairmentCounts(json, "inbound", impaired.Inbound);
                WriteImpairmentCounts(json, "outbound", impaired.Outbound);
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>address:port, with the IPv6 address in brackets (RFC 3986 §3.2.2).</summary>
    private static string Endpoint(System.Net.IPEndPoint endpoint) => endpoint.ToString();

    private static void WriteImpairmentCounts(Utf8JsonWriter json, string direction, ImpairmentCounts counts)
    {
        json.WriteStartObject(direction);
        json.WriteNumber("packets", counts.Packets);
        json.WriteNumber("dropped", counts.Dropped);
        json.WriteNumber("duplicated", counts.Duplicated);
        json.WriteNumber("corrupted", counts.Corrupted);
        json.WriteNumber("reordered", counts.Reordered);
        json.WriteNumber("delayed", counts.Delayed);
        json.WriteEndObject();
    }
}
