namespace TunStack;

/// <summary>
/// Pooled buffer memory the connections hold right now, over the whole stack (Linux's tcp_mem, as one number). Rings
/// take memory on their first write and give it back when empty, so this follows the busy connections only.
/// </summary>
internal sealed class BufferBudget
{
    /// <summary>Bytes held now.</summary>
    public long InUse { get; private set; }

    /// <summary>The most ever held at once.</summary>
    public long Peak { get; private set; }

    internal void Rented(int bytes)
    {
        InUse += bytes;
        if (InUse > Peak) Peak = InUse;
    }

    internal void Returned(int bytes) => InUse -= bytes;
}
