using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// The TCP options the stack understands, parsed from (or written to) the options area of a header
/// (RFC 9293 §3.1/§3.2; window scale and timestamps RFC 7323; SACK RFC 2018).
/// </summary>
public struct TcpOptions
{
    public const byte KindEndOfList = 0;
    public const byte KindNoOperation = 1;
    public const byte KindMss = 2;
    public const byte KindWindowScale = 3;
    public const byte KindSackPermitted = 4;
    public const byte KindSack = 5;
    public const byte KindTimestamps = 8;

    public ushort? Mss;
    public byte? WindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TimestampValue;
    public uint TimestampEcho;
    public int SackBlockCount;
    public int UnknownCount;

    /// <summary>
    /// Parses an options area. Structural errors — a length of 0 or 1, or an option running past the end — fail
    /// the whole segment (RFC 9293 §3.1: options must be parsed safely). A known option with the wrong length is
    /// ignored, as is any unknown option (RFC 9293 §3.2, MUST-6/MUST-68).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> area, out TcpOptions options)
    {
        options = default;
        int i = 0;
        while (i < area.Length)
        {
            byte kind = area[i];
            if (kind == KindEndOfList)
                break;
            if (kind == KindNoOperation)
            {
                i++;
                continue;
            }
            if (i + 1 >= area.Length)
                return false;
            int length = area[i + 1];
            if (length < 2 || i + length > area.Length)
                return false;
            var body = area.Slice(i + 2, length - 2);
            switch (kind)
            {
                case KindMss when length == 4:
                    options.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case KindWindowScale when length == 3:
                    options.WindowScale = body[0];
                    break;
                case KindSackPermitted when length == 2:
                    options.SackPermitted = true;
                    break;
                case KindSack when (length - 2) % 8 == 0 && length > 2:
                    options.SackBlockCount = (length - 2) / 8;
                    break;
                case KindTimestamps when length == 10:
                    options.HasTimestamps = true;
                    options.TimestampValue = BinaryPrimitives.ReadUInt32BigEndian(body);
                    options.TimestampEcho = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    break;
                default:
                    options.UnknownCount++;
                    break;
            }
            i += length;
        }
        return true;
    }

    /// <summary>
    /// Writes the set options, padded with NOPs to a multiple of 4 bytes; returns the number of bytes written
    /// (at most 40).
    /// </summary>
    public readonly int WriteTo(Span<byte> destination)
    {
        int n = 0;
        if (Mss is ushort mss)
        {
            destination[n++] = KindMss;
            destination[n++] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(destination[n..], mss);
            n += 2;
        }
        if (SackPermitted)
        {
            destination[n++] = KindNoOperation;
            destination[n++] = KindNoOperation;
            destination[n++] = KindSackPermitted;
            destination[n++] = 2;
        }
        if (HasTimestamps)
        {
            destination[n++] = KindNoOperation;
            destination[n++] = KindNoOperation;
            destination[n++] = KindTimestamps;
            destination[n++] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(destination[n..], TimestampValue);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(n + 4)..], TimestampEcho);
            n += 8;
        }
        if (WindowScale is byte shift)
        {
            destination[n++] = KindNoOperation;
            destination[n++] = KindWindowScale;
            destination[n++] = 3;
            destination[n++] = shift;
        }
        while (n % 4 != 0)
            destination[n++] = KindNoOperation;
        return n;
    }

    /// <summary>A compact tcpdump-like rendering, e.g. "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7".</summary>
    public override readonly string ToString()
    {
        var parts = new List<string>(5);
        if (Mss is ushort mss) parts.Add($"mss {mss}");
        if (SackPermitted) parts.Add("sackOK");
        if (HasTimestamps) parts.Add($"TS val {TimestampValue} ecr {TimestampEcho}");
        if (WindowScale is byte ws) parts.Add($"wscale {ws}");
        if (SackBlockCount > 0) parts.Add($"sack {SackBlockCount}");
        if (UnknownCount > 0) parts.Add($"unknown {UnknownCount}");
        return string.Join(",", parts);
    }
}
