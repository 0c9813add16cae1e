using System.Globalization;
using System.Text;
using TunStack.Tcp;

namespace TunStack.Host;

/// <summary>
/// The connection table as plain text for <c>GET /connections</c>, one line per live connection in the manner of
/// <c>ss -tin</c>: state, queues, endpoints, RTT, RTO, congestion window, slow-start threshold, bytes in flight,
/// retransmissions and the options in use; then how many connections wait in TIME-WAIT. Rendered from a
/// <see cref="TunStackDiagnostics"/> snapshot.
/// </summary>
public static class ConnectionTable
{
    private static readonly string[] Header =
        ["State", "Recv-Q", "Send-Q", "Local", "Peer", "rtt(ms)", "rto(ms)", "cwnd", "ssthresh", "inflight", "retrans", "mss", "options"];

    /// <summary>Columns aligned left (the others are numbers, aligned right).</summary>
    private static readonly bool[] LeftAligned = [true, false, false, true, true, false, false, false, false, false, false, false, true];

    public static string Render(TunStackDiagnostics diagnostics)
    {
        var rows = new List<string[]>();
        foreach (var tcb in diagnostics.Connections
                     .OrderBy(c => c.LocalEndPoint.Port)
                     .ThenBy(c => c.RemoteEndPoint.Address.ToString(), StringComparer.Ordinal)
                     .ThenBy(c => c.RemoteEndPoint.Port))
        {
            rows.Add(Row(tcb));
        }

        var b = new StringBuilder(256 + rows.Count * 160);
        int timeWait = diagnostics.TimeWaitCount;
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

    private static string[] Row(TcpConnectionStatistics tcb)
    {
        var options = new List<string>(3);
        if (tcb.Sack) options.Add("sack");
        if (tcb.Timestamps) options.Add("ts");
        if (tcb.CongestionControl.Length > 0) options.Add(tcb.CongestionControl.ToLowerInvariant());
        return
        [
            tcb.State.ToRfcName(),
            Number(tcb.ReceiveQueued),
            Number(tcb.SendQueued),
            tcb.LocalEndPoint.ToString(),
            tcb.RemoteEndPoint.ToString(),
            tcb.SmoothedRtt > TimeSpan.Zero ? Millis((long)tcb.SmoothedRtt.TotalMicroseconds) : "-",
            Millis((long)tcb.RetransmissionTimeout.TotalMicroseconds),
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
}
