using System.Runtime.CompilerServices;

namespace TunStack.Wire;

/// <summary>
/// One SACK block (RFC 2018 §3): the receiver holds the bytes from <see cref="Left"/> up to, not including,
/// <see cref="Right"/>. Raw 32-bit sequence numbers, as on the wire.
/// </summary>
internal readonly record struct SackBlock(uint Left, uint Right)
{
    public override string ToString() => $"{Left}:{Right}";
}

/// <summary>Up to four SACK blocks stored inline, so options stay a plain value with no allocation.</summary>
[InlineArray(TcpOptions.MaxSackBlocks)]
internal struct SackBlockArray
{
    private SackBlock _first;
}
