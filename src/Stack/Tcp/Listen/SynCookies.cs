using System.Buffers.Binary;

namespace TunStack.Tcp.Listen;

/// <summary>
/// SYN cookies (RFC 4987 §3.6), encoded as Linux encodes them: when a listener's half-open queue is full, the SYN-ACK
/// carries everything the connection needs in its ISN instead of in a TCB, and the returning ACK proves it:
/// <code>
///   ISS = H1(4-tuple) + peer ISN + (minute &lt;&lt; 24) + ((H2(4-tuple, minute) + MSS index) mod 2^24)
/// </code>
/// H1 and H2 are keyed hashes, so cookies cannot be forged off-path; the minute counter makes them expire (accepted up
/// to <see cref="MaxAgeMinutes"/> minutes old); the MSS is one of four values. With timestamps, the peer's window scale
/// and SACK-permitted ride in the low six bits of our TSval, which the peer echoes back.
/// </summary>
internal sealed class SynCookies
{
    /// <summary>The MSS values a cookie can carry (Linux's msstab for IPv4, and for IPv6: 1280, 1480, 1500, 9000 less 60).</summary>
    public static ReadOnlySpan<ushort> MssTable => [536, 1300, 1440, 1460];
    public static ReadOnlySpan<ushort> MssTableIpv6 => [1220, 1420, 1440, 8940];

    private static ReadOnlySpan<ushort> TableFor(in FourTuple tuple) => tuple.RemoteAddress.IsV4 ? MssTable : MssTableIpv6;

    public const int MaxAgeMinutes = 2;
    private const long MicrosPerMinute = 60_000_000;
    private const uint NoWindowScale = 0xF;
    private const uint SackBit = 0x10;
    private const uint OptionBits = 0x3F;

    private readonly ulong _k0;
    private readonly ulong _k1;

    /// <param name="secret">At least 16 random bytes (the stack derives them from its ISN secret).</param>
    public SynCookies(ReadOnlySpan<byte> secret)
    {
        // Different keys from the ISN function: reversed halves, mixed with a constant.
        _k0 = BinaryPrimitives.ReadUInt64LittleEndian(secret[8..]) ^ 0x5379_6E43_6F6F_6B69UL;
        _k1 = BinaryPrimitives.ReadUInt64LittleEndian(secret) ^ 0x6573_2D52_4643_3439UL;
    }

    /// <summary>The ISS for a SYN from <paramref name="tuple"/> with ISN <paramref name="peerIsn"/> and MSS option <paramref name="peerMss"/>.</summary>
    public SeqNumber Create(in FourTuple tuple, SeqNumber peerIsn, ushort peerMss, long nowMicros)
    {
        uint minute = (uint)(nowMicros / MicrosPerMinute);
        var table = TableFor(tuple);
        int index = 0;
        for (int i = table.Length - 1; i >= 0; i--)
        {
            if (table[i] <= peerMss)
            {
                index = i;
                break;
            }
        }
        uint value = unchecked(Hash(tuple, 0, 1) + peerIsn.Value + (minute << 24) + ((Hash(tuple, minute, 2) + (uint)index) & 0xFFFFFF));
        return new SeqNumber(value);
    }

    /// <summary>
    /// Checks the cookie an ACK returns (<paramref name="cookie"/> = SEG.ACK − 1, <paramref name="peerIsn"/> = SEG.SEQ − 1):
    /// true, with the MSS it encoded, if this stack made it for this 4-tuple within the last two minutes.
    /// </summary>
    public bool TryCheck(in FourTuple tuple, SeqNumber peerIsn, SeqNumber cookie, long nowMicros, out ushort mss)
    {
        mss = 0;
        uint minute = (uint)(nowMicros / MicrosPerMinute);
        uint value = unchecked(cookie.Value - Hash(tuple, 0, 1) - peerIsn.Value);
        uint age = unchecked(minute - (value >> 24)) & 0xFF;
        if (age > MaxAgeMinutes)
            return false;
        uint made = unchecked(minute - age);
        uint index = unchecked(value - Hash(tuple, made, 2)) & 0xFFFFFF;
        var table = TableFor(tuple);
        if (index >= (uint)table.Length)
            return false;
        mss = table[(int)index];
        return true;
    }

    /// <summary>
    /// Our TSval for a cookie SYN-ACK: the clock rounded down to 64 with the peer's window scale (4 bits, 15 = none)
    /// and SACK-permitted (1 bit) in the low bits, never ahead of the clock (so later TSvals keep increasing).
    /// </summary>
    public static uint EncodeTimestamp(uint clock, byte? peerWindowScale, bool sackPermitted)
    {
        uint options = (peerWindowScale is byte s ? Math.Min(s, (byte)14) : NoWindowScale) | (sackPermitted ? SackBit : 0);
        uint value = (clock & ~OptionBits) | options;
        if (unchecked((int)(value - clock)) > 0)
            value = unchecked(value - (OptionBits + 1));
        return value;
    }

    public static void DecodeTimestamp(uint echoed, out byte? peerWindowScale, out bool sackPermitted)
    {
        uint scale = echoed & NoWindowScale;
        peerWindowScale = scale == NoWindowScale ? null : (byte)scale;
        sackPermitted = (echoed & SackBit) != 0;
    }

    private uint Hash(in FourTuple tuple, uint minute, byte salt)
    {
        Span<byte> input = stackalloc byte[41];
        tuple.LocalAddress.WriteTo(input);
        tuple.RemoteAddress.WriteTo(input[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(input[32..], tuple.LocalPort);
        BinaryPrimitives.WriteUInt16BigEndian(input[34..], tuple.RemotePort);
        BinaryPrimitives.WriteUInt32BigEndian(input[36..], minute);
        input[40] = salt;
        return (uint)SipHash.Hash(_k0, _k1, input);
    }
}
