using System.Globalization;
using System.Text;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Diagnostics;

/// <summary>
/// Writes one line per segment, tcpdump-like, with relative sequence numbers and the state transition:
/// <code>
///   0.000000 in  198.18.0.1:40522 > 198.18.0.2:80 S   seq 0 win 64240 len 0 [mss 1460,sackOK,TS val 1 ecr 0,wscale 7]  LISTEN -> SYN-RECEIVED
/// </code>
/// </summary>
internal sealed class TextTracer : IStackTracer
{
    private readonly TextWriter _writer;
    private long _origin = -1;

    public TextTracer(TextWriter writer) => _writer = writer;

    public void OnSegment(in SegmentTraceRecord r) => _writer.WriteLine(Format(r, ref _origin));

    public void OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause) =>
        _writer.WriteLine($"{Time(timeMicros, ref _origin)} --  {Endpoint(tuple.LocalAddress, tuple.LocalPort)} <> {Endpoint(tuple.RemoteAddress, tuple.RemotePort)} {cause}  {from.ToRfcName()} -> {to.ToRfcName()}");

    public void OnPacketDropped(long timeMicros, DropReason reason) =>
        _writer.WriteLine($"{Time(timeMicros, ref _origin)} in  packet dropped: {reason}");

    /// <summary>Seconds since <paramref name="origin"/> (set by the first event), right-aligned in 11 columns.</summary>
    internal static string Time(long micros, ref long origin)
    {
        if (origin < 0) origin = micros;
        return ((micros - origin) / 1e6).ToString("0.000000", CultureInfo.InvariantCulture).PadLeft(11);
    }

    public static string Format(in SegmentTraceRecord r, ref long origin)
    {
        var t = r.Tuple;
        var sb = new StringBuilder(160);
        sb.Append(Time(r.TimeMicros, ref origin)).Append(' ');
        if (r.Direction == TraceDirection.In)
            sb.Append("in  ").Append(Endpoint(t.RemoteAddress, t.RemotePort)).Append(" > ").Append(Endpoint(t.LocalAddress, t.LocalPort));
        else
            sb.Append("out ").Append(Endpoint(t.LocalAddress, t.LocalPort)).Append(" > ").Append(Endpoint(t.RemoteAddress, t.RemotePort));
        sb.Append(' ').Append(r.Flags.ToShortString().PadRight(3));

        // Relative numbers: incoming seq counts from the peer's ISN, incoming ack from ours; outgoing the reverse.
        uint seqBase = 0, ackBase = 0;
        if (r.HasConnection)
        {
            seqBase = r.Direction == TraceDirection.In ? r.PeerIsn : r.LocalIsn;
            ackBase = r.Direction == TraceDirection.In ? r.LocalIsn : r.PeerIsn;
        }
        sb.Append(" seq ").Append(unchecked(r.Sequence - seqBase));
        if ((r.Flags & TcpFlags.Ack) != 0)
            sb.Append(" ack ").Append(unchecked(r.Acknowledgment - ackBase));
        sb.Append(" win ").Append(r.Window).Append(" len ").Append(r.PayloadLength);
        if ((r.Flags & TcpFlags.Syn) != 0)
            sb.Append(" [").Append(r.Options.ToString()).Append(']');
        else if (r.Options.SackBlockCount > 0)
            AppendSackBlocks(sb, r.Options, ackBase);
        if (r.Drop != DropReason.None)
            sb.Append("  dropped: ").Append(r.Drop);
        if (r.Before != r.After)
            sb.Append("  ").Append(r.Before.ToRfcName()).Append(" -> ").Append(r.After.ToRfcName());
        else
            sb.Append("  ").Append(r.After.ToRfcName());
        AppendNotes(sb, r.Note);
        return sb.ToString();
    }

    /// <summary>SACK blocks relative to the ISN of the side whose data they acknowledge, as tcpdump shows them.</summary>
    private static void AppendSackBlocks(StringBuilder sb, in TcpOptions options, uint dataIsn)
    {
        sb.Append(" [sack ").Append(options.SackBlockCount).Append(" {");
        for (int i = 0; i < options.SackBlockCount; i++)
        {
            if (i > 0) sb.Append(' ');
            sb.Append(unchecked(options.SackBlocks[i].Left - dataIsn)).Append(':').Append(unchecked(options.SackBlocks[i].Right - dataIsn));
        }
        sb.Append("}]");
    }

    private static void AppendNotes(StringBuilder sb, TraceNote note)
    {
        if (note == TraceNote.None) return;
        if ((note & TraceNote.Retransmission) != 0) sb.Append("  retransmission");
        if ((note & TraceNote.LossProbe) != 0) sb.Append("  loss-probe");
        if ((note & TraceNote.WindowProbe) != 0) sb.Append("  window-probe");
        if ((note & TraceNote.KeepAlive) != 0) sb.Append("  keep-alive");
        if ((note & TraceNote.SynCookie) != 0) sb.Append("  syn-cookie");
        if ((note & TraceNote.DuplicateAck) != 0) sb.Append("  dup-ack");
        if ((note & TraceNote.OutOfOrder) != 0) sb.Append("  out-of-order");
        if ((note & TraceNote.Duplicate) != 0) sb.Append("  duplicate");
    }

    /// <summary>address:port, with an IPv6 address in brackets.</summary>
    internal static string Endpoint(IpAddress address, ushort port) =>
        address.IsV4 ? $"{address}:{port}" : $"[{address}]:{port}";
}
