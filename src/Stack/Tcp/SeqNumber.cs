namespace TunStack.Tcp;

/// <summary>
/// A 32-bit TCP sequence number with modulo-2^32 arithmetic (RFC 9293 §3.4). All comparisons are wrap-safe:
/// a &lt; b means "b is ahead of a by less than 2^31". No raw uint comparison of sequence numbers exists elsewhere.
/// </summary>
internal readonly struct SeqNumber : IEquatable<SeqNumber>
{
    public readonly uint Value;

    public SeqNumber(uint value) => Value = value;

    public static SeqNumber operator +(SeqNumber s, int n) => new(unchecked(s.Value + (uint)n));
    public static SeqNumber operator +(SeqNumber s, uint n) => new(unchecked(s.Value + n));
    public static SeqNumber operator -(SeqNumber s, int n) => new(unchecked(s.Value - (uint)n));

    /// <summary>The signed distance from <paramref name="b"/> to <paramref name="a"/> (a - b).</summary>
    public static int operator -(SeqNumber a, SeqNumber b) => unchecked((int)(a.Value - b.Value));

    public static bool operator <(SeqNumber a, SeqNumber b) => (a - b) < 0;
    public static bool operator >(SeqNumber a, SeqNumber b) => (a - b) > 0;
    public static bool operator <=(SeqNumber a, SeqNumber b) => (a - b) <= 0;
    public static bool operator >=(SeqNumber a, SeqNumber b) => (a - b) >= 0;
    public static bool operator ==(SeqNumber a, SeqNumber b) => a.Value == b.Value;
    public static bool operator !=(SeqNumber a, SeqNumber b) => a.Value != b.Value;

    /// <summary>low ≤ this &lt; high, modulo 2^32.</summary>
    public bool InRange(SeqNumber low, SeqNumber highExclusive) => this >= low && this < highExclusive;

    public static SeqNumber Max(SeqNumber a, SeqNumber b) => a > b ? a : b;
    public static SeqNumber Min(SeqNumber a, SeqNumber b) => a < b ? a : b;

    public bool Equals(SeqNumber other) => Value == other.Value;
    public override bool Equals(object? obj) => obj is SeqNumber s && s.Value == Value;
    public override int GetHashCode() => (int)Value;
    public override string ToString() => Value.ToString();
}
