using System.Globalization;
using System.Text;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Host;

/// <summary>
/// The connection table as plain text for <c>GET /connections</c>, one line per live connection in the manner of
/// <c>ss -tin</c>: state, queues, endpoints, RTT, RTO, congestion window, slow-start threshold, bytes in flight,
/// retransmissions and the options in use; then how many connections wait in TIME-WAIT. Runs on the loop thread.
/// </summary>
public static class ConnectionTable
{
    private static readonly string[] Header =
        ["State", "Recv-Q", "Send-Q", "Local", "Peer", "rtt(ms)", "rto(ms)", "cwnd", "ssthresh", "inflight", "retrans", "mss", "options"];

    /// <summary>Columns aligned left (the others are numbers, aligned right).</summary>
    private static readonly bool[] LeftAligned = [true, false, false, true, true, false, false, false, false, false, false, false, true];

    public static string Render(NetStack stack)
    {
        var rows = new List<string[]>();
        foreach (var tcb in stack.Connections
                     .OrderBy(c => c.Tuple.LocalPort)
                     .ThenBy(c => c.Tuple.RemoteAddress.ToString(), StringComparer.Ordinal)
                     .ThenBy(c => c.Tuple.RemotePort))
        {
            rows.Add(Row(tcb));
        }

        var b = new StringBuilder(256 + rows.Count * 160);
        int timeWait = stack.TimeWaitCount;
        b.Append(CultureInfo.InvariantCulture,
            $"{rows.Count} live connection{(rows.Count == 1 ? "" : "s")}, {timeWait} in TIME-WAIT (kept 2·MSL after the close; not listed)\n\n");
        var widths = new int[Header.Length];
        for (int i = 0; i < Header.Length; i++)
            widths[i] = Math.Max(Header[i].Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length));
        AppendRow(b, Header, widths);
        foreach (var row in rows)
            AppendRow(b, row, widths);
        b.Append(
            """

            Recv-Q: bytes received in order and not yet read by the application. Send-Q: bytes queued to send, including
            those sent and not yet acknowledged. cwnd, ssthresh and inflight (RFC 6675 "pipe") are in bytes; ssthresh "-"
            is still unset (slow start until the first loss). rtt is the smoothed RTT (RFC 6298), "-" before the first sample.

            """);
        return b.ToString();
    }

    private static string[] Row(Tcb tcb)
    {
        var t = tcb.Tuple;
        var options = new List<string>(3);
        if (tcb.SackEnabled) options.Add("sack");
        if (tcb.TimestampsEnabled) options.Add("ts");
        if (tcb.CongestionControlName.Length > 0) options.Add(tcb.CongestionControlName.ToLowerInvariant());
        return
        [
            tcb.State.ToRfcName(),
            Number(tcb.BytesAvailable),
            Number(tcb.BytesQueued),
            Endpoint(t.LocalAddress, t.LocalPort),
            Endpoint(t.RemoteAddress, t.RemotePort),
            tcb.SmoothedRttMicros > 0 ? Millis(tcb.SmoothedRttMicros) : "-",
            Millis(tcb.CurrentRtoMicros),
            tcb.CongestionWindow > 0 ? Number(tcb.CongestionWindow) : "-",
            tcb.SlowStartThreshold is > 0 and < UnsetSsthresh ? Number(tcb.SlowStartThreshold) : "-",
            Number(tcb.BytesInFlight),
            Number(tcb.Retransmissions),
            tcb.SendMss > 0 ? Number(tcb.SendMss) : "-",
            options.Count > 0 ? string.Join(',', options) : "-",
        ];
    }

    /// <summary>The engine's initial ssthresh, "arbitrarily high" (RFC 5681 §3.1): 2^30 bytes.</summary>
    private const long UnsetSsthresh = 1L << 30;

    private static void AppendRow(StringBuilder b, string[] cells, int[] widths)
    {
        for (int i = 0; i < cells.Length; i++)
        {
            if (i > 0) b.Append("  ");
            bool last = i == cells.Length - 1;
            if (LeftAligned[i])
                b.Append(last ? cells[i] : cells[i].PadRight(widths[i]));
            else
                b.Append(cells[i].PadLeft(widths[i]));
        }
        b.Append('\n');
    }

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Millis(long micros) => (micros / 1000.0).ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>address:port, with the IPv6 address in brackets (RFC 3986 §3.2.2).</summary>
    private static string Endpoint(IpAddress address, ushort port) =>
        address.IsV4 ? $"{address}:{port}" : $"[{address}]:{port}";
}
