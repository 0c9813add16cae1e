using System.Buffers.Binary;

namespace TunStack.Wire;

/// <summary>
/// The TCP options the stack understands, parsed from (or written to) the options area of a header
/// (RFC 9293 §3.1/§3.2; window scale and timestamps RFC 7323; SACK RFC 2018).
/// </summary>
internal struct TcpOptions : IEquatable<TcpOptions>
{
    public const byte KindEndOfList = 0;
    public const byte KindNoOperation = 1;
    public const byte KindMss = 2;
    public const byte KindWindowScale = 3;
    public const byte KindSackPermitted = 4;
    public const byte KindSack = 5;
    public const byte KindTimestamps = 8;

    /// <summary>The most SACK blocks one option can carry in 40 bytes of option space (RFC 2018 §3).</summary>
    public const int MaxSackBlocks = 4;
    /// <summary>Bytes an option area needs for the timestamps option, padded (RFC 7323 Appendix A layout).</summary>
    public const int TimestampsLength = 12;

    public ushort? Mss;
    public byte? WindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TimestampValue;
    public uint TimestampEcho;
    public int SackBlockCount;
    /// <summary>The SACK blocks in the order the sender listed them (the first is the most recent, RFC 2018 §4).</summary>
    public SackBlockArray SackBlocks;
    public int UnknownCount;

    /// <summary>Bytes the SACK option needs for <paramref name="blocks"/> blocks, padded to a multiple of 4.</summary>
    public static int SackLength(int blocks) => blocks == 0 ? 0 : 2 + 2 + 8 * blocks;

    /// <summary>Adds a SACK block to send; ignored beyond <see cref="MaxSackBlocks"/>.</summary>
    public void AddSackBlock(SackBlock block)
    {
        if (SackBlockCount < MaxSackBlocks)
            SackBlocks[SackBlockCount++] = block;
    }

    /// <summary>
    /// Parses an options area. Structural errors — a length of 0 or 1, or an option running past the end — fail
    /// the whole segment (RFC 9293 §3.1: options must be parsed safely). A known option with the wrong length is
    /// ignored, as is any unknown option (RFC 9293 §3.2, MUST-6/MUST-68).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> area, out TcpOptions options)
    {
        options = default;
        // The layout of nearly every segment after the SYNs (RFC 7323 Appendix A, what Linux and we send): NOP, NOP,
        // timestamps, nothing else. One comparison instead of the loop.
        if (area.Length == 2 + 10 && BinaryPrimitives.ReadUInt32BigEndian(area) == NopNopTimestampsHeader)
        {
            options.HasTimestamps = true;
            options.TimestampValue = BinaryPrimitives.ReadUInt32BigEndian(area[4..]);
            options.TimestampEcho = BinaryPrimitives.ReadUInt32BigEndian(area[8..]);
            return true;
        }
        int i = 0;
        while (i < area.Length)
        {
            byte kind = area[i];
            if (kind == KindNoOperation)
            {
                i++;
                continue;
            }
            if (kind == KindEndOfList)
                break;
            if (i + 1 >= area.Length)
                return false;
            int length = area[i + 1];
            if (length < 2 || length > area.Length - i)
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
                case KindSack when (length - 2) % 8 == 0 && length > 2 && length <= 2 + 8 * MaxSackBlocks:
                    options.SackBlockCount = (length - 2) / 8;
                    for (int b = 0; b < options.SackBlockCount; b++)
                        options.SackBlocks[b] = new SackBlock(
                            BinaryPrimitives.ReadUInt32BigEndian(body[(8 * b)..]),
                            BinaryPrimitives.ReadUInt32BigEndian(body[(8 * b + 4)..]));
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

    /// <summary>NOP, NOP, kind 8, length 10: the first four bytes of the usual timestamps-only option area.</summary>
    private const uint NopNopTimestampsHeader = (uint)KindNoOperation << 24 | (uint)KindNoOperation << 16 | (uint)KindTimestamps << 8 | 10;

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
        if (SackPermitted && HasTimestamps)
        {
            // The layout Linux uses in a SYN: SACK-permitted fills the two bytes that would be NOPs.
            destination[n++] = KindSackPermitted;
            destination[n++] = 2;
        }
        else if (SackPermitted)
        {
            destination[n++] = KindNoOperation;
            destination[n++] = KindNoOperation;
            destination[n++] = KindSackPermitted;
            destination[n++] = 2;
        }
        if (HasTimestamps)
        {
            if (!SackPermitted)
            {
                destination[n++] = KindNoOperation;
                destination[n++] = KindNoOperation;
            }
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
        if (SackBlockCount > 0)
        {
            destination[n++] = KindNoOperation;
            destination[n++] = KindNoOperation;
            destination[n++] = KindSack;
            destination[n++] = (byte)(2 + 8 * SackBlockCount);
            for (int b = 0; b < SackBlockCount; b++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(destination[n..], SackBlocks[b].Left);
                BinaryPrimitives.WriteUInt32BigEndian(destination[(n + 4)..], SackBlocks[b].Right);
                n += 8;
            }
        }
        while (n % 4 != 0)
            destination[n++] = KindNoOperation;
        return n;
    }

    /// <summary>Field by field; SACK blocks up to the count (the inline storage beyond it is not compared).</summary>
    public readonly bool Equals(TcpOptions other)
    {
        if (Mss != other.Mss || WindowScale != other.WindowScale || SackPermitted != other.SackPermitted
            || HasTimestamps != other.HasTimestamps || TimestampValue != other.TimestampValue
            || TimestampEcho != other.TimestampEcho || SackBlockCount != other.SackBlockCount || UnknownCount != other.UnknownCount)
            return false;
        for (int i = 0; i < SackBlockCount; i++)
            if (SackBlocks[i] != other.SackBlocks[i]) return false;
        return true;
    }

    public override readonly bool Equals(object? obj) => obj is TcpOptions other && Equals(other);
    public override readonly int GetHashCode() => HashCode.Combine(Mss, WindowScale, SackPermitted, TimestampValue, TimestampEcho, SackBlockCount);
    public static bool operator ==(TcpOptions a, TcpOptions b) => a.Equals(b);
    public static bool operator !=(TcpOptions a, TcpOptions b) => !a.Equals(b);

    /// <summary>A compact tcpdump-like rendering, e.g. "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7".</summary>
    public override readonly string ToString()
    {
        var parts = new List<string>(5);
        if (Mss is ushort mss) parts.Add($"mss {mss}");
        if (SackPermitted) parts.Add("sackOK");
        if (HasTimestamps) parts.Add($"TS val {TimestampValue} ecr {TimestampEcho}");
        if (WindowScale is byte ws) parts.Add($"wscale {ws}");
        if (SackBlockCount > 0)
        {
            var blocks = new string[SackBlockCount];
            for (int b = 0; b < SackBlockCount; b++) blocks[b] = SackBlocks[b].ToString();
            parts.Add($"sack {SackBlockCount} {{{string.Join(' ', blocks)}}}");
        }
        if (UnknownCount > 0) parts.Add($"unknown {UnknownCount}");
        return string.Join(",", parts);
    }
}
