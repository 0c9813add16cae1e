using TunStack.Tcp;

namespace TunStack.Tests.Tcp;

/// <summary>
/// The byte ring against a plain model: every byte written — in order, or ahead of the FIFO for reassembly — reads
/// back in its place across wraps, storage growth and release, and the storage grows only with what is held.
/// </summary>
public sealed class ByteRingTests
{
    [Fact]
    public void Storage_starts_small_doubles_with_the_bytes_held_and_never_passes_the_capacity()
    {
        var budget = new BufferBudget();
        var ring = new ByteRing(256 * 1024, budget);
        Assert.Equal(0, ring.StorageLength);
        ring.Write(new byte[100]);
        Assert.Equal(ByteRing.InitialStorage, ring.StorageLength);      // a request's worth: 4 KiB, not 256
        ring.Write(new byte[5000]);
        Assert.Equal(2 * ByteRing.InitialStorage, ring.StorageLength);  // 5,100 bytes: doubled once
        ring.WriteAt(100_000, new byte[10]);                           // out of order, far ahead
        Assert.True(ring.StorageLength >= 5100 + 100_010);
        Assert.Equal(budget.InUse, ring.StorageLength);                 // the budget sees the storage, not the capacity
        ring.Write(new byte[ring.Free]);
        Assert.Equal(256 * 1024, ring.StorageLength);
        Assert.Equal(0, ring.Write(new byte[1]));
        ring.Discard(ring.Count);
        ring.Release();
        Assert.Equal(0, ring.StorageLength);
        Assert.Equal(0, budget.InUse);
    }

    [Theory]
    [InlineData(4096, 100)]
    [InlineData(10_000, 100)]  // not a power of two: the storage rented is larger than the capacity
    [InlineData(65_536, 6)]    // the model costs the capacity per step: few seeds
    public void Random_operations_agree_with_a_model(int capacity, int seeds)
    {
        for (int seed = 0; seed < seeds; seed++)
            RunModel(capacity, seed);
    }

    private static void RunModel(int capacity, int seed)
    {
        var random = new Random(seed);
        var ring = new ByteRing(capacity);
        // The model: byte at logical offset i from the head, null where nothing was written; the first `count` form the FIFO.
        var model = new List<int?>();
        int count = 0;
        byte next = 1;
        int maxChunk = Math.Max(16, capacity / 4);
        for (int step = 0; step < 600; step++)
        {
            switch (random.Next(6))
            {
                case 0: // append in order
                {
                    var data = Bytes(random.Next(0, maxChunk), ref next);
                    int taken = ring.Write(data);
                    Assert.Equal(Math.Min(data.Length, capacity - count), taken);
                    for (int i = 0; i < taken; i++) Set(model, count + i, data[i]);
                    count += taken;
                    break;
                }
                case 1: // out of order, somewhere in the free space
                {
                    int free = capacity - count;
                    if (free == 0) break;
                    int offset = random.Next(free);
                    var data = Bytes(random.Next(0, Math.Min(maxChunk, free - offset) + 1), ref next);
                    ring.WriteAt(offset, data);
                    for (int i = 0; i < data.Length; i++) Set(model, count + offset + i, data[i]);
                    break;
                }
                case 2: // the bytes right after the FIFO that were stored out of order join it
                {
                    int n = 0;
                    while (count + n < model.Count && model[count + n] is not null && n < capacity - count) n++;
                    n = random.Next(n + 1);
                    ring.Extend(n);
                    count += n;
                    break;
                }
                case 3: // read
                {
                    var destination = new byte[random.Next(0, maxChunk)];
                    int n = ring.Read(destination);
                    Assert.Equal(Math.Min(destination.Length, count), n);
                    for (int i = 0; i < n; i++) Assert.Equal(model[i], destination[i]);
                    model.RemoveRange(0, Math.Min(n, model.Count));
                    count -= n;
                    break;
                }
                case 4: // peek anywhere in the FIFO
                {
                    if (count == 0) break;
                    int offset = random.Next(count);
                    int length = random.Next(count - offset + 1);
                    ring.Peek(offset, length, out var first, out var second);
                    Assert.Equal(length, first.Length + second.Length);
                    for (int i = 0; i < first.Length; i++) Assert.Equal(model[offset + i], first[i]);
                    for (int i = 0; i < second.Length; i++) Assert.Equal(model[offset + first.Length + i], second[i]);
                    break;
                }
                case 5: // give the storage back when nothing at all is held
                    if (count == 0 && model.TrueForAll(b => b is null))
                    {
                        ring.Release();
                        model.Clear();
                        Assert.Equal(0, ring.StorageLength);
                    }
                    break;
            }
            Assert.Equal(count, ring.Count);
            Assert.Equal(capacity - count, ring.Free);
            Assert.True(ring.StorageLength <= Math.Max(capacity, 0) * 2, $"seed {seed}: storage {ring.StorageLength}");
        }
    }

    private static void Set(List<int?> model, int index, byte value)
    {
        while (model.Count <= index) model.Add(null);
        model[index] = value;
    }

    private static byte[] Bytes(int length, ref byte next)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = next;
            next = (byte)(next == 255 ? 1 : next + 1);
        }
        return data;
    }
}
