namespace TunStack.Tcp;

/// <summary>A range of sequence space [<see cref="Start"/>, <see cref="End"/>), modulo 2^32.</summary>
internal readonly record struct SeqRange(SeqNumber Start, SeqNumber End)
{
    public int Length => End - Start;
    public bool IsEmpty => End <= Start;
    public bool Contains(SeqNumber seq) => seq.InRange(Start, End);
    public bool Covers(SeqRange other) => Start <= other.Start && other.End <= End;
    public bool Overlaps(SeqRange other) => Start < other.End && other.Start < End;
    public override string ToString() => $"{Start.Value}:{End.Value}";
}
