namespace TunStack.Wire;

/// <summary>TCP control bits (RFC 9293 §3.1).</summary>
[Flags]
public enum TcpFlags : byte
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary>FIN: no more data from the sender.</summary>
    Fin = 0x01,
    /// <summary>SYN: synchronize sequence numbers.</summary>
    Syn = 0x02,
    /// <summary>RST: reset the connection.</summary>
    Rst = 0x04,
    /// <summary>PSH: push.</summary>
    Psh = 0x08,
    /// <summary>ACK: the acknowledgment field is significant.</summary>
    Ack = 0x10,
    /// <summary>URG: the urgent pointer is significant.</summary>
    Urg = 0x20,
    /// <summary>ECE: ECN echo (RFC 3168).</summary>
    Ece = 0x40,
    /// <summary>CWR: congestion window reduced (RFC 3168).</summary>
    Cwr = 0x80,
}

internal static class TcpFlagsExtensions
{
    /// <summary>
    /// Formats flags as tcpdump does, e.g. "S." for SYN-ACK, "F." for FIN-ACK, "R" for RST, "FS" for SYN-FIN,
    /// "P.U" for PSH-ACK-URG: tcpdump's fixed order is F S R P . U E W (print-tcp.c, tcp_flag_values).
    /// </summary>
    public static string ToShortString(this TcpFlags flags)
    {
        Span<char> chars = stackalloc char[8];
        int n = 0;
        if ((flags & TcpFlags.Fin) != 0) chars[n++] = 'F';
        if ((flags & TcpFlags.Syn) != 0) chars[n++] = 'S';
        if ((flags & TcpFlags.Rst) != 0) chars[n++] = 'R';
        if ((flags & TcpFlags.Psh) != 0) chars[n++] = 'P';
        if ((flags & TcpFlags.Ack) != 0) chars[n++] = '.';
        if ((flags & TcpFlags.Urg) != 0) chars[n++] = 'U';
        if ((flags & TcpFlags.Ece) != 0) chars[n++] = 'E';
        if ((flags & TcpFlags.Cwr) != 0) chars[n++] = 'W';
        return n == 0 ? "none" : new string(chars[..n]);
    }
}
