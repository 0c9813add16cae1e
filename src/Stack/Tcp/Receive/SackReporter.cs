using TunStack.Wire;

namespace TunStack.Tcp.Receive;

/// <summary>
/// Chooses the SACK blocks a receiver reports (RFC 2018 §4): the first block holds the segment that arrived most
/// recently, the following ones repeat the most recently reported blocks, so that each block is reported several times
/// and survives a lost ACK. A duplicate segment is reported once, as the first block, with D-SACK (RFC 2883 §4).
/// </summary>
internal sealed class SackReporter
{
    private const int Remembered = TcpOptions.MaxSackBlocks;

    private readonly SeqRange[] _recent = new SeqRange[Remembered];
    private int _count;
    private SeqRange _duplicate;
    private bool _hasDuplicate;

    /// <summary>True when the next ACK should carry a D-SACK block.</summary>
    public bool HasDuplicate => _hasDuplicate;

    /// <summary>Out-of-order data arrived and is now part of <paramref name="block"/>: it goes first.</summary>
    public void OnOutOfOrder(SeqRange block)
    {
        int kept = 0;
        for (int i = 0; i < _count; i++)
        {
            if (!block.Overlaps(_recent[i]) && block.End != _recent[i].Start && _recent[i].End != block.Start)
                _recent[kept++] = _recent[i];
        }
        int n = Math.Min(kept, Remembered - 1);
        Array.Copy(_recent, 0, _recent, 1, n);
        _recent[0] = block;
        _count = n + 1;
    }

    /// <summary>A segment carried only bytes we already had: report them once with D-SACK (RFC 2883 §4 (1)).</summary>
    public void OnDuplicate(SeqRange duplicate)
    {
        _duplicate = duplicate;
        _hasDuplicate = true;
    }

    public void Clear()
    {
        _count = 0;
        _hasDuplicate = false;
    }

    /// <summary>
    /// Adds up to <paramref name="maxBlocks"/> blocks to <paramref name="options"/>: the D-SACK block if one is pending
    /// (then forgotten), then the remembered blocks that are still held out of order (with their current extent), then
    /// any other held range, highest first.
    /// </summary>
    public void Fill(ref TcpOptions options, int maxBlocks, Reassembler reassembler)
    {
        int from = options.SackBlockCount;
        if (_hasDuplicate && options.SackBlockCount < maxBlocks)
        {
            options.AddSackBlock(new SackBlock(_duplicate.Start.Value, _duplicate.End.Value));
            _hasDuplicate = false;
            from++; // a held block equal to the D-SACK block is still reported after it (RFC 2883 §4 (3))
            // RFC 2883 §4 (2): a duplicate inside a held block is followed by that block.
            if (reassembler.TryFind(_duplicate.Start, out var containing) && options.SackBlockCount < maxBlocks)
                options.AddSackBlock(new SackBlock(containing.Start.Value, containing.End.Value));
        }
        int kept = 0;
        for (int i = 0; i < _count; i++)
        {
            // A remembered block may have grown (merged with a neighbour) or been delivered in order since.
            if (!reassembler.TryFind(_recent[i].Start, out var current))
                continue;
            _recent[kept++] = current;
            if (options.SackBlockCount < maxBlocks && !Contains(options, from, current))
                options.AddSackBlock(new SackBlock(current.Start.Value, current.End.Value));
        }
        _count = kept;
        var ranges = reassembler.Ranges;
        for (int i = ranges.Length - 1; i >= 0 && options.SackBlockCount < maxBlocks; i--)
        {
            if (!Contains(options, from, ranges[i]))
                options.AddSackBlock(new SackBlock(ranges[i].Start.Value, ranges[i].End.Value));
        }
    }

    private static bool Contains(in TcpOptions options, int from, SeqRange range)
    {
        for (int i = from; i < options.SackBlockCount; i++)
        {
            if (options.SackBlocks[i].Left == range.Start.Value && options.SackBlocks[i].Right == range.End.Value)
                return true;
        }
        return false;
    }
}
