using System.Text;
using System.Text.Json;
using TunStack.Runtime;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Host;

/// <summary>Renders the connection table and counters as JSON for <c>GET /stats</c>. Runs on the loop thread.</summary>
public static class StatsJson
{
    /// <summary>
    /// Connections listed one by one at most; <c>connectionCount</c> and <c>connectionStates</c> count them all. Bounds
    /// what one request costs when tens of thousands are open.
    /// </summary>
    public const int MaxListedConnections = 1000;

    /// <param name="stack">The stack whose connections and counters are shown.</param>
    /// <param name="impaired">With <c>--impair</c>, the device whose counts are shown under <c>impairment</c>.</param>
    /// <param name="loop">The loop that drives the stack, for its own counts.</param>
    public static string Render(NetStack stack, ImpairedDevice? impaired = null, EventLoop? loop = null)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("connectionCount", stack.Connections.Count);
            json.WriteNumber("timeWaitCount", stack.TimeWaitCount);
            json.WriteStartObject("connectionStates");
            Span<int> states = stackalloc int[Enum.GetValues<TcpState>().Length];
            foreach (var tcb in stack.Connections)
                states[(int)tcb.State]++;
            for (int i = 0; i < states.Length; i++)
            {
                if (states[i] != 0)
                    json.WriteNumber(((TcpState)i).ToString(), states[i]);
            }
            json.WriteEndObject();
            json.WriteStartArray("connections");
            int listed = 0;
            foreach (var tcb in stack.Connections)
            {
                if (listed++ == MaxListedConnections)
                    break;
                var t = tcb.Tuple;
                json.WriteStartObject();
                json.WriteString("local", Endpoint(t.LocalAddress, t.LocalPort));
                json.WriteString("remote", Endpoint(t.RemoteAddress, t.RemotePort));
                json.WriteString("state", tcb.State.ToString());
                json.WriteString("rfcState", tcb.State.ToRfcName());
                json.WriteNumber("sendQueued", tcb.BytesQueued);
                json.WriteNumber("receiveQueued", tcb.BytesAvailable);
                json.WriteNumber("srttMicros", tcb.SmoothedRttMicros);
                json.WriteNumber("rtoMicros", tcb.CurrentRtoMicros);
                json.WriteNumber("cwnd", tcb.CongestionWindow);
                json.WriteNumber("ssthresh", tcb.SlowStartThreshold);
                json.WriteNumber("bytesInFlight", tcb.BytesInFlight);
                json.WriteNumber("outOfOrderBytes", tcb.BytesOutOfOrder);
                json.WriteNumber("retransmissions", tcb.Retransmissions);
                json.WriteString("congestionControl", tcb.CongestionControlName);
                json.WriteBoolean("sack", tcb.SackEnabled);
                json.WriteBoolean("timestamps", tcb.TimestampsEnabled);
                json.WriteEndObject();
            }
            json.WriteEndArray();

            var c = stack.Counters;
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
            json.WriteNumber("connectionLimitReached", c.ConnectionLimitReached);
            json.WriteNumber("memoryLimitReached", c.MemoryLimitReached);
            json.WriteNumber("challengeAcksSent", c.ChallengeAcksSent);
            json.WriteNumber("outOfWindowAcksSuppressed", c.OutOfWindowAcksSuppressed);
            json.WriteNumber("resetsOnUnreadData", c.ResetsOnUnreadData);
            json.WriteNumber("pawsRejected", c.PawsRejected);
            json.WriteEndObject();

            json.WriteStartObject("drops");
            foreach (var (reason, count) in c.Drops())
                json.WriteNumber(reason.ToString(), count);
            json.WriteEndObject();

            WriteMemory(json, stack, loop);

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

    /// <summary>
    /// Where the host's memory is: resident set (VmRSS, and its peak VmHWM, from /proc/self/status), the managed heap
    /// as of the last collection, and the connections' pooled buffers.
    /// </summary>
    private static void WriteMemory(Utf8JsonWriter json, NetStack stack, EventLoop? loop)
    {
        var gc = GC.GetGCMemoryInfo();
        json.WriteStartObject("memory");
        if (ProcessMemory.TryRead(out long resident, out long peak))
        {
            json.WriteNumber("residentBytes", resident);
            json.WriteNumber("peakResidentBytes", peak);
        }
        json.WriteNumber("managedHeapBytes", gc.HeapSizeBytes);
        json.WriteNumber("managedCommittedBytes", gc.TotalCommittedBytes);
        json.WriteNumber("managedFragmentedBytes", gc.FragmentedBytes);
        json.WriteNumber("managedAllocatedBytes", GC.GetTotalAllocatedBytes());
        json.WriteNumber("gen0Collections", GC.CollectionCount(0));
        json.WriteNumber("gen1Collections", GC.CollectionCount(1));
        json.WriteNumber("gen2Collections", GC.CollectionCount(2));
        json.WriteNumber("bufferBytes", stack.Buffers.InUse);
        json.WriteNumber("bufferPeakBytes", stack.Buffers.Peak);
        if (loop is not null)
        {
            json.WriteNumber("applicationConnections", loop.ApplicationConnectionCount);
            json.WriteNumber("deviceWriteErrors", loop.WriteErrors);
        }
        json.WriteEndObject();
    }

    /// <summary>address:port, with the IPv6 address in brackets (RFC 3986 §3.2.2).</summary>
    private static string Endpoint(IpAddress address, ushort port) =>
        address.IsV4 ? $"{address}:{port}" : $"[{address}]:{port}";
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
