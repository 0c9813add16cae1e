using System.Buffers.Binary;
using System.Numerics;
using Microsoft.Extensions.Time.Testing;
using TunStack.Runtime;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Runtime;

/// <summary>
/// <see cref="ImpairedDevice"/> over the in-memory <see cref="QueueDevice"/>, with a fake clock: the test injects
/// numbered packets "from the wire", reads what reaches the engine, writes as the engine, and sees what reached the wire.
/// </summary>
public class ImpairedDeviceTests
{
    private const int PacketSize = 64;

    private sealed class Rig : IDisposable
    {
        public readonly FakeTimeProvider Clock = new();
        public readonly QueueDevice Inner = new();
        public readonly ImpairedDevice Device;
        private readonly byte[] _buffer = new byte[2048];

        public Rig(ImpairmentOptions options) => Device = new ImpairedDevice(Inner, options, Clock);

        /// <summary>Reads everything ready for the engine now.</summary>
        public List<byte[]> ReadAll()
        {
            var read = new List<byte[]>();
            int n;
            while ((n = Device.TryRead(_buffer)) > 0)
                read.Add(_buffer[..n]);
            return read;
        }

        /// <summary>What reached the wire so far.</summary>
        public List<byte[]> TakeWritten()
        {
            var written = new List<byte[]>();
            while (Inner.Written.TryDequeue(out var packet))
                written.Add(packet);
            return written;
        }

        /// <summary>
        /// Turns the clock in 100 µs steps, as an idle loop would wake for held packets, until nothing is held;
        /// fails if that takes longer than <paramref name="limit"/>. Returns what reached each side meanwhile.
        /// </summary>
        public (List<byte[]> Read, List<byte[]> Written) Settle(TimeSpan limit)
        {
            var read = ReadAll();
            var written = TakeWritten();
            var waited = TimeSpan.Zero;
            while (Device.HeldPackets > 0)
            {
                Assert.True(waited < limit, $"{Device.HeldPackets} packets still held after {waited.TotalMilliseconds} ms");
                Clock.Advance(TimeSpan.FromMicroseconds(100));
                waited += TimeSpan.FromMicroseconds(100);
                Device.WaitReadable(TimeSpan.Zero);
                read.AddRange(ReadAll());
                written.AddRange(TakeWritten());
            }
            return (read, written);
        }

        public void Dispose() => Device.Dispose();
    }

    /// <summary>Longest a packet can be held once traffic stops: delay, jitter and the reorder hold limit.</summary>
    private static TimeSpan MaxHold(ImpairmentOptions options) =>
        options.Delay + options.Jitter + options.ReorderHoldLimit + TimeSpan.FromMicroseconds(100);

    /// <summary>
    /// A numbered packet: the number at both ends (one flipped bit cannot hide it) and, between them, bytes of a
    /// bijective mix of the number, so that packets with different numbers differ in many bits.
    /// </summary>
    private static byte[] Packet(int id, int size = PacketSize)
    {
        var packet = new byte[size];
        uint mix = unchecked((uint)id * 2654435761u);
        for (int i = 0; i < size; i++)
            packet[i] = (byte)((mix >> (8 * (i % 4))) + i);
        BinaryPrimitives.WriteInt32BigEndian(packet, id);
        BinaryPrimitives.WriteInt32BigEndian(packet.AsSpan(size - 4), id);
        return packet;
    }

    /// <summary>The number of a delivered packet, and how many bits differ from the packet sent with that number.</summary>
    private static (int Id, int FlippedBits) Identify(byte[] delivered)
    {
        int first = BinaryPrimitives.ReadInt32BigEndian(delivered);
        int last = BinaryPrimitives.ReadInt32BigEndian(delivered.AsSpan(delivered.Length - 4));
        int fromFirst = BitDistance(delivered, Packet(first, delivered.Length));
        int fromLast = BitDistance(delivered, Packet(last, delivered.Length));
        return fromFirst <= fromLast ? (first, fromFirst) : (last, fromLast);
    }

    private static int BitDistance(byte[] a, byte[] b)
    {
        Assert.Equal(a.Length, b.Length);
        int bits = 0;
        for (int i = 0; i < a.Length; i++)
            bits += BitOperations.PopCount((uint)(a[i] ^ b[i]));
        return bits;
    }

    private static ImpairmentOptions Everything(ulong seed) => new()
    {
        LossPercent = 5, ReorderPercent = 5, DuplicatePercent = 5, CorruptPercent = 5,
        Delay = TimeSpan.FromMilliseconds(2), Jitter = TimeSpan.FromMilliseconds(1), Seed = seed,
    };

    /// <summary>10 000 packets in, at irregular but fixed times; optionally traffic the other way in between.</summary>
    private static (List<byte[]> Delivered, ImpairmentCounts Counts) RunInbound(ImpairmentOptions options, bool withOutboundTraffic)
    {
        using var rig = new Rig(options);
        var delivered = new List<byte[]>();
        for (int i = 0; i < 10_000; i++)
        {
            rig.Inner.Inject(Packet(i));
            if (withOutboundTraffic)
            {
                rig.Device.Write(Packet(1_000_000 + i));
                rig.Device.Write(Packet(2_000_000 + i));
            }
            delivered.AddRange(rig.ReadAll());
            rig.Clock.Advance(TimeSpan.FromMicroseconds(37 * (i % 5)));
        }
        delivered.AddRange(rig.Settle(MaxHold(options)).Read);
        return (delivered, rig.Device.Inbound);
    }

    [Fact]
    public void The_same_seed_gives_the_same_outcome_whatever_the_other_direction_does()
    {
        var (quiet, quietCounts) = RunInbound(Everything(seed: 7), withOutboundTraffic: false);
        var (busy, busyCounts) = RunInbound(Everything(seed: 7), withOutboundTraffic: true);
        var (other, otherCounts) = RunInbound(Everything(seed: 8), withOutboundTraffic: false);

        Assert.Equal(quietCounts, busyCounts);
        Assert.Equal(quiet.Count, busy.Count);
        for (int i = 0; i < quiet.Count; i++)
            Assert.Equal(quiet[i], busy[i]);

        Assert.NotEqual(quietCounts, otherCounts);
        Assert.True(quiet.Count != other.Count || quiet.Zip(other).Any(pair => !pair.First.AsSpan().SequenceEqual(pair.Second)));
    }

    [Fact]
    public void The_seed_in_use_is_reported_and_repeats_the_run()
    {
        using var random = new Rig(Everything(seed: 0) with { Seed = null });
        ulong chosen = Assert.IsType<ulong>(random.Device.Options.Seed);
        Assert.Contains($"seed={chosen}", random.Device.Options.ToString(), StringComparison.Ordinal);

        var (first, firstCounts) = RunInbound(random.Device.Options, withOutboundTraffic: false);
        var (again, againCounts) = RunInbound(ImpairmentOptions.Parse(random.Device.Options.ToString()), withOutboundTraffic: false);
        Assert.Equal(firstCounts, againCounts);
        Assert.Equal(first.Select(Convert.ToHexString), again.Select(Convert.ToHexString));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rates_are_within_tolerance_over_100k_packets(bool inbound)
    {
        const int n = 100_000;
        using var rig = new Rig(new ImpairmentOptions
        {
            LossPercent = 1, ReorderPercent = 2, DuplicatePercent = 0.5, CorruptPercent = 0.1, Seed = 12345,
        });
        var delivered = new List<byte[]>(n + 1000);
        for (int i = 0; i < n; i++)
        {
            if (inbound)
            {
                rig.Inner.Inject(Packet(i));
                delivered.AddRange(rig.ReadAll());
            }
            else
            {
                rig.Device.Write(Packet(i));
                delivered.AddRange(rig.TakeWritten());
            }
            rig.Clock.Advance(TimeSpan.FromMicroseconds(10));
        }
        var (lastRead, lastWritten) = rig.Settle(MaxHold(rig.Device.Options));
        delivered.AddRange(inbound ? lastRead : lastWritten);

        ImpairmentCounts counts = inbound ? rig.Device.Inbound : rig.Device.Outbound;
        ImpairmentCounts untouched = inbound ? rig.Device.Outbound : rig.Device.Inbound;
        Assert.Equal(default, untouched);
        Assert.Equal(n, counts.Packets);
        Assert.Equal(0, counts.Delayed);

        // Expected count ± 5 standard deviations of a binomial.
        static void Near(double percent, long actual, string what)
        {
            double mean = n * percent / 100, sd = Math.Sqrt(mean * (1 - percent / 100));
            Assert.True(Math.Abs(actual - mean) <= 5 * sd, $"{what}: {actual}, expected {mean} ± {5 * sd:F0}");
        }
        Near(1, counts.Dropped, "dropped");
        Near(0.5, counts.Duplicated, "duplicated");
        Near(0.1, counts.Corrupted, "corrupted");
        Near(2 * 0.99, counts.Reordered, "reordered");

        // The counters tell the truth about the packets.
        Assert.Equal(n - counts.Dropped + counts.Duplicated, delivered.Count);
        var copies = new int[n];
        var corruptedIds = new HashSet<int>();
        int lateArrivals = 0, highest = -1;
        foreach (var packet in delivered)
        {
            var (id, flipped) = Identify(packet);
            copies[id]++;
            Assert.InRange(flipped, 0, 1);
            if (flipped == 1) corruptedIds.Add(id);
            if (id < highest) lateArrivals++;
            highest = Math.Max(highest, id);
        }
        Assert.Equal(counts.Dropped, copies.Count(c => c == 0));
        Assert.Equal(counts.Duplicated, copies.Count(c => c == 2));
        Assert.DoesNotContain(copies, c => c > 2);
        Assert.Equal(counts.Corrupted, corruptedIds.Count);
        Assert.InRange(lateArrivals, 1, counts.Reordered);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Corruption_flips_exactly_one_bit_anywhere_in_the_packet(bool inbound)
    {
        const int size = 40;
        using var rig = new Rig(new ImpairmentOptions { CorruptPercent = 100, Seed = 3 });
        var flippedPositions = new HashSet<int>();
        for (int i = 0; i < 3000; i++)
        {
            byte[] original = Packet(i, size);
            byte[] delivered;
            if (inbound)
            {
                rig.Inner.Inject(original.ToArray());
                delivered = Assert.Single(rig.ReadAll());
            }
            else
            {
                rig.Device.Write(original);
                delivered = Assert.Single(rig.TakeWritten());
            }

            Assert.Equal(size, delivered.Length);
            Assert.Equal(1, BitDistance(original, delivered));
            for (int bit = 0; bit < size * 8; bit++)
                if (((original[bit / 8] ^ delivered[bit / 8]) & (1 << (bit % 8))) != 0)
                    flippedPositions.Add(bit);
        }

        // 3000 draws over 320 positions leave about one unseen; the first and the last bytes are reached.
        Assert.True(flippedPositions.Count >= 310, $"only {flippedPositions.Count} of 320 bit positions were ever flipped");
        Assert.Contains(flippedPositions, bit => bit < 8);
        Assert.Contains(flippedPositions, bit => bit >= (size - 1) * 8);
        Assert.Equal(3000, (inbound ? rig.Device.Inbound : rig.Device.Outbound).Corrupted);
    }

    [Fact]
    public void Delay_holds_incoming_packets_until_due_and_waiting_stops_in_time()
    {
        using var rig = new Rig(new ImpairmentOptions { Delay = TimeSpan.FromMilliseconds(2), Seed = 1 });
        rig.Inner.Inject(Packet(1));
        Assert.Empty(rig.ReadAll());
        Assert.Equal(1, rig.Device.HeldPackets);

        // The engine would sleep for a second; the device asks the inner device for at most the 2 ms left.
        rig.Device.WaitReadable(TimeSpan.FromSeconds(1));
        Assert.True(rig.Inner.WaitTimeouts.TryDequeue(out var asked) && asked <= TimeSpan.FromMilliseconds(2), $"waited {asked}");

        rig.Clock.Advance(TimeSpan.FromMicroseconds(1999));
        Assert.Empty(rig.ReadAll());
        rig.Device.WaitReadable(TimeSpan.FromSeconds(1));
        Assert.True(rig.Inner.WaitTimeouts.TryDequeue(out asked) && asked <= TimeSpan.FromMicroseconds(1), $"waited {asked}");

        rig.Clock.Advance(TimeSpan.FromMicroseconds(1));
        // Due now: WaitReadable returns at once without waiting on the inner device.
        rig.Device.WaitReadable(TimeSpan.FromSeconds(1));
        Assert.Empty(rig.Inner.WaitTimeouts);
        Assert.Equal(Packet(1), Assert.Single(rig.ReadAll()));
        Assert.Equal(new ImpairmentCounts(1, 0, 0, 0, 0, 1), rig.Device.Inbound);
    }

    [Fact]
    public void Delay_holds_outgoing_packets_and_writes_them_when_due()
    {
        using var rig = new Rig(new ImpairmentOptions { Delay = TimeSpan.FromMilliseconds(2), Seed = 1 });
        rig.Device.Write(Packet(1));
        rig.Clock.Advance(TimeSpan.FromMilliseconds(1));
        rig.Device.Write(Packet(2));
        Assert.Empty(rig.TakeWritten());

        // Nothing to read, but a packet to write in 1 ms: the wait is cut short for it, and it goes out.
        rig.Device.WaitReadable(TimeSpan.FromSeconds(1));
        Assert.True(rig.Inner.WaitTimeouts.TryDequeue(out var asked) && asked <= TimeSpan.FromMilliseconds(1), $"waited {asked}");
        rig.Clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Empty(rig.ReadAll()); // any call lets due packets out
        Assert.Equal(Packet(1), Assert.Single(rig.TakeWritten()));

        rig.Clock.Advance(TimeSpan.FromMilliseconds(1));
        rig.Device.WaitReadable(TimeSpan.Zero);
        Assert.Equal(Packet(2), Assert.Single(rig.TakeWritten()));
        Assert.Equal(new ImpairmentCounts(2, 0, 0, 0, 0, 2), rig.Device.Outbound);
    }

    [Fact]
    public void Jitter_spreads_delays_within_bounds_and_lets_packets_overtake()
    {
        const int n = 10_000;
        using var rig = new Rig(new ImpairmentOptions
        {
            Delay = TimeSpan.FromMilliseconds(5), Jitter = TimeSpan.FromMilliseconds(2), Seed = 99,
        });
        var sentAt = new long[n];
        var delays = new List<long>();
        var order = new List<int>();
        long now = 0;
        for (int i = 0; i < n + 100; i++)
        {
            if (i < n)
            {
                sentAt[i] = now;
                rig.Inner.Inject(Packet(i));
            }
            foreach (var packet in rig.ReadAll())
            {
                int id = Identify(packet).Id;
                order.Add(id);
                delays.Add(now - sentAt[id]);
            }
            rig.Clock.Advance(TimeSpan.FromMicroseconds(100));
            now += 100;
        }

        Assert.Equal(n, order.Count);
        Assert.Equal(Enumerable.Range(0, n), order.Order());
        // Read every 100 µs, so a packet is seen up to 100 µs after it became due.
        Assert.InRange(delays.Min(), 3_000, 3_100);
        Assert.InRange(delays.Max(), 6_900, 7_100);
        int overtaken = 0, highest = -1;
        foreach (int id in order)
        {
            if (id < highest) overtaken++;
            highest = Math.Max(highest, id);
        }
        Assert.True(overtaken > n / 10, $"only {overtaken} packets were overtaken");
        Assert.Equal(n, rig.Device.Inbound.Delayed);
        Assert.True(rig.Device.Inbound.Reordered > n / 10, rig.Device.Inbound.ToString());
    }

    [Fact]
    public void Reordering_and_delay_never_lose_a_packet_or_hold_one_forever()
    {
        const int n = 5_000;
        using var rig = new Rig(new ImpairmentOptions
        {
            ReorderPercent = 30, Delay = TimeSpan.FromMilliseconds(1), Jitter = TimeSpan.FromMilliseconds(1), Seed = 5,
        });
        var delivered = new List<int>();
        var written = new List<int>();
        for (int i = 0; i < n; i++)
        {
            rig.Inner.Inject(Packet(i));
            rig.Device.Write(Packet(i));
            // Bursts and gaps: sometimes nothing follows a held-back packet for a while.
            rig.Clock.Advance(TimeSpan.FromMicroseconds(i % 50 == 0 ? 20_000 : 13));
            delivered.AddRange(rig.ReadAll().Select(p => Identify(p).Id));
            written.AddRange(rig.TakeWritten().Select(p => Identify(p).Id));
        }

        // Traffic stops. Within delay + jitter + the reorder hold limit everything is out.
        var (lastRead, lastWritten) = rig.Settle(MaxHold(rig.Device.Options));
        delivered.AddRange(lastRead.Select(p => Identify(p).Id));
        written.AddRange(lastWritten.Select(p => Identify(p).Id));

        Assert.Equal(Enumerable.Range(0, n), delivered.Order());
        Assert.Equal(Enumerable.Range(0, n), written.Order());
        Assert.NotEqual(Enumerable.Range(0, n), delivered);
        Assert.True(rig.Device.Inbound.Reordered >= n / 5, rig.Device.Inbound.ToString());
    }

    [Fact]
    public void A_held_back_packet_is_overtaken_by_one_to_three_packets()
    {
        const int n = 20_000;
        using var rig = new Rig(new ImpairmentOptions { ReorderPercent = 10, Seed = 11 });
        var order = new List<int>();
        for (int i = 0; i < n; i++)
        {
            rig.Inner.Inject(Packet(i));
            order.AddRange(rig.ReadAll().Select(p => Identify(p).Id));
        }
        order.AddRange(rig.Settle(MaxHold(rig.Device.Options)).Read.Select(p => Identify(p).Id));

        Assert.Equal(Enumerable.Range(0, n), order.Order());
        var displacement = new int[4];
        for (int at = 0; at < order.Count; at++)
        {
            // How many later-numbered packets went before this one.
            int overtakers = 0;
            for (int before = Math.Max(0, at - 50); before < at; before++)
                overtakers += order[before] > order[at] ? 1 : 0;
            Assert.InRange(overtakers, 0, 3 * 2); // several held-back packets can add up
            if (overtakers is > 0 and <= 3) displacement[overtakers]++;
        }
        Assert.All(displacement.Skip(1), count => Assert.True(count > 100, string.Join(",", displacement)));
    }

    [Fact]
    public void A_lone_held_back_packet_goes_after_the_hold_limit()
    {
        using var rig = new Rig(new ImpairmentOptions { ReorderPercent = 100, Seed = 2 });
        TimeSpan limit = rig.Device.Options.ReorderHoldLimit;
        rig.Inner.Inject(Packet(1));
        Assert.Empty(rig.ReadAll());
        rig.Device.WaitReadable(TimeSpan.FromSeconds(1));
        Assert.True(rig.Inner.WaitTimeouts.TryDequeue(out var asked) && asked <= limit, $"waited {asked}");

        rig.Clock.Advance(limit - TimeSpan.FromMicroseconds(1));
        Assert.Empty(rig.ReadAll());
        rig.Clock.Advance(TimeSpan.FromMicroseconds(1));
        Assert.Equal(Packet(1), Assert.Single(rig.ReadAll()));
        Assert.Equal(1, rig.Device.Inbound.Reordered);
    }

    [Fact]
    public void Loss_drops_and_dup_delivers_twice_in_a_row()
    {
        using var lossy = new Rig(new ImpairmentOptions { LossPercent = 100, Seed = 1 });
        lossy.Inner.Inject(Packet(1));
        lossy.Device.Write(Packet(2));
        Assert.Empty(lossy.ReadAll());
        Assert.Empty(lossy.TakeWritten());
        Assert.Equal(0, lossy.Device.HeldPackets);
        Assert.Equal(new ImpairmentCounts(1, 1, 0, 0, 0, 0), lossy.Device.Inbound);
        Assert.Equal(new ImpairmentCounts(1, 1, 0, 0, 0, 0), lossy.Device.Outbound);

        using var doubled = new Rig(new ImpairmentOptions { DuplicatePercent = 100, Seed = 1 });
        doubled.Inner.Inject(Packet(1));
        doubled.Inner.Inject(Packet(2));
        Assert.Equal(new[] { 1, 1, 2, 2 }, doubled.ReadAll().Select(p => Identify(p).Id));
        doubled.Device.Write(Packet(3));
        Assert.Equal(new[] { 3, 3 }, doubled.TakeWritten().Select(p => Identify(p).Id));
    }

    [Fact]
    public void Without_impairments_packets_pass_unchanged_and_in_order()
    {
        using var rig = new Rig(new ImpairmentOptions { Seed = 1 });
        for (int i = 0; i < 100; i++)
        {
            rig.Inner.Inject(Packet(i, 20 + i));
            rig.Device.Write(Packet(i, 1500));
        }
        var read = rig.ReadAll();
        var written = rig.TakeWritten();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => Packet(i, 20 + i)), read);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => Packet(i, 1500)), written);
        Assert.Equal(0, rig.Device.HeldPackets);
    }

    [Fact]
    public void The_steady_path_allocates_nothing()
    {
        var clock = new FakeTimeProvider();
        var inner = new SteadyDevice(Packet(1, 1500));
        using var device = new ImpairedDevice(inner, Everything(seed: 4), clock);
        byte[] buffer = new byte[2048];
        byte[] outgoing = Packet(2, 1500);

        void Run(int packets)
        {
            for (int i = 0; i < packets; i++)
            {
                inner.Available++;
                while (device.TryRead(buffer) > 0)
                {
                }

                device.Write(outgoing);
                device.WaitReadable(TimeSpan.Zero);
                clock.Advance(TimeSpan.FromMicroseconds(20));
            }
        }

        Run(20_000); // warm up: the pool and the queues reach their working size
        int buffers = device.BuffersCreated;
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(20_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(buffers, device.BuffersCreated);
        Assert.True(device.Inbound.Packets > 30_000 && device.Outbound.Delayed > 30_000);
    }

    [Fact]
    public async Task The_engine_drops_every_corrupted_packet_on_a_check()
    {
        var clock = new FakeTimeProvider();
        var inner = new QueueDevice();
        using var device = new ImpairedDevice(inner, new ImpairmentOptions { CorruptPercent = 100, Seed = 21 }, clock);
        var stack = new NetStack(ScriptedPeer.DefaultOptions());
        using var loop = new EventLoop(stack, device, clock);
        await loop.ListenAsync(new System.Net.IPEndPoint(System.Net.IPAddress.IPv6Any, 7), null);

        const int n = 500;
        for (int i = 0; i < n; i++)
        {
            inner.Inject(ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, (ushort)(40000 + i), 7,
                (uint)(1000 * i), 0, TcpFlags.Syn, 65535, new TcpOptions { Mss = 1460 }, default));
            loop.RunOnce(wait: false);
        }

        // Not one SYN-ACK or RST: every corrupted SYN failed a header or checksum check, and mostly the checksums.
        Assert.Empty(inner.Written);
        Assert.Empty(stack.Connections);
        Assert.Equal(n, device.Inbound.Corrupted);
        Assert.Equal(n, stack.Counters.TotalDropped);
        long checksums = stack.Counters.Dropped(DropReason.BadIpChecksum) + stack.Counters.Dropped(DropReason.BadTcpChecksum);
        Assert.True(checksums > n * 8 / 10, string.Join(", ", stack.Counters.Drops()));
    }

    /// <summary>An inner device that hands out the same packet whenever one is available and swallows writes, without allocating.</summary>
    private sealed class SteadyDevice(byte[] packet) : IPacketDevice
    {
        public int Available;

        public string Name => "steady0";
        public int Mtu => 1500;

        public int TryRead(Span<byte> buffer)
        {
            if (Available == 0) return 0;
            Available--;
            packet.CopyTo(buffer);
            return packet.Length;
        }

        public void Write(ReadOnlySpan<byte> written) { }
        public void WaitReadable(TimeSpan timeout) { }
        public void Wake() { }
        public void Dispose() { }
    }
}
