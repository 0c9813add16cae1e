using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// What the kernel in a namespace thinks of its TCP connections: the counters of <c>/proc/net/netstat</c> and
/// <c>/proc/net/snmp</c> (what <c>nstat -az</c> shows, per namespace), and <c>ss -tin</c> (cwnd, rto, retrans, lost,
/// bytes_acked ... per socket).
/// </summary>
public static class KernelTcpView
{
    /// <summary>The counters worth showing about a transfer: timeouts versus SACK recovery, probes, retransmissions.</summary>
    public static readonly IReadOnlyList<string> TransferCounters =
    [
        "TcpExt.TCPTimeouts", "TcpExt.TCPSackRecovery", "TcpExt.TCPRenoRecovery", "TcpExt.TCPLossProbes",
        "TcpExt.TCPLossProbeRecovery", "TcpExt.TCPFastRetrans", "TcpExt.TCPSlowStartRetrans", "TcpExt.TCPLostRetransmit",
        "TcpExt.TCPSackRecoveryFail", "TcpExt.TCPSACKReorder", "TcpExt.TCPRenoReorder", "TcpExt.TCPDSACKRecv",
        "TcpExt.TCPSpuriousRTOs", "TcpExt.TCPOFOQueue", "Tcp.RetransSegs", "Tcp.InSegs", "Tcp.OutSegs",
    ];

    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Every counter of <c>/proc/net/netstat</c> and <c>/proc/net/snmp</c> in the namespace, as "TcpExt.TCPTimeouts" and so on.</summary>
    public static async Task<IReadOnlyDictionary<string, long>> ReadCountersAsync(NetNamespace ns)
    {
        var r = await ns.RunAsync(CommandTimeout, "cat", "/proc/net/netstat", "/proc/net/snmp");
        r.EnsureSuccess();
        return ParseCounters(r.Stdout);
    }

    /// <summary>
    /// Parses the header/value line pairs of <c>/proc/net/netstat</c> and <c>/proc/net/snmp</c>
    /// ("TcpExt: SyncookiesSent ..." then "TcpExt: 0 ..."). Values that do not fit a long are skipped.
    /// </summary>
    public static Dictionary<string, long> ParseCounters(string text)
    {
        var counters = new Dictionary<string, long>(StringComparer.Ordinal);
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i + 1 < lines.Length; i += 2)
        {
            string[] names = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            string[] values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (names.Length != values.Length || names.Length == 0 || names[0] != values[0] || !names[0].EndsWith(':'))
                throw new FormatException($"unexpected counter lines:\n{lines[i]}\n{lines[i + 1]}");
            string prefix = names[0][..^1];
            for (int k = 1; k < names.Length; k++)
            {
                if (long.TryParse(values[k], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                    counters[$"{prefix}.{names[k]}"] = value;
            }
        }
        return counters;
    }

    /// <summary>after − before for <paramref name="name"/> (0 when either side lacks it).</summary>
    public static long Delta(IReadOnlyDictionary<string, long> before, IReadOnlyDictionary<string, long> after, string name) =>
        after.TryGetValue(name, out long a) && before.TryGetValue(name, out long b) ? a - b : 0;

    /// <summary>"TCPTimeouts 2, TCPSackRecovery 14, ..." for <see cref="TransferCounters"/>, as deltas.</summary>
    public static string DescribeDeltas(IReadOnlyDictionary<string, long> before, IReadOnlyDictionary<string, long> after)
    {
        var text = new StringBuilder();
        foreach (string name in TransferCounters)
        {
            if (!after.ContainsKey(name))
                continue;
            if (text.Length > 0)
                text.Append(", ");
            text.Append(name[(name.IndexOf('.', StringComparison.Ordinal) + 1)..]).Append(' ').Append(Delta(before, after, name));
        }
        return text.ToString();
    }

    /// <summary><c>ss -tin</c> for the connections to <paramref name="peer"/> in the namespace (empty when none).</summary>
    public static async Task<string> SocketsAsync(NetNamespace ns, string peer)
    {
        var r = await ns.RunAsync(CommandTimeout, "ss", "-tin", "dst", peer);
        if (!r.Succeeded)
            return $"(ss failed: {r})";
        string[] lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Only the header line: no socket.
        return lines.Length <= 1 ? string.Empty : r.Stdout.TrimEnd();
    }

    /// <summary>The largest value of <c>field:N</c> in <c>ss -i</c> output (e.g. bytes_acked), or null when absent.</summary>
    public static long? Field(string ss, string field)
    {
        long? best = null;
        foreach (Match m in Regex.Matches(ss, $@"\b{Regex.Escape(field)}:(\d+)\b"))
        {
            long value = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            best = best is null ? value : Math.Max(best.Value, value);
        }
        return best;
    }
}
