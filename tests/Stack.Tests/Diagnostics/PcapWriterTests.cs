using System.Buffers.Binary;
using TunStack.Diagnostics;
using TunStack.Runtime;
using TunStack.Tests.Runtime;
using TunStack.Tests.Tcp;
using TunStack.Tests.Wire;

namespace TunStack.Tests.Diagnostics;

public class PcapWriterTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>One record read back from a capture.</summary>
    private sealed record Record(uint Seconds, uint Microseconds, int CapturedLength, int OriginalLength, byte[] Data);

    /// <summary>Reads a classic little-endian pcap file; asserts the file header on the way.</summary>
    private static List<Record> ReadCapture(byte[] file)
    {
        Assert.True(file.Length >= 24, $"{file.Length} bytes is not even a file header");
        var records = new List<Record>();
        int offset = 24;
        while (offset < file.Length)
        {
            var h = file.AsSpan(offset, 16);
            int captured = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
            records.Add(new Record(BinaryPrimitives.ReadUInt32LittleEndian(h), BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                captured, BinaryPrimitives.ReadInt32LittleEndian(h[12..]), file.AsSpan(offset + 16, captured).ToArray()));
            offset += 16 + captured;
        }
        Assert.Equal(file.Length, offset);
        return records;
    }

    private static async Task<byte[]> CaptureAsync(long limit, params (byte[] Packet, long Micros)[] packets)
    {
        var stream = new MemoryStream();
        await using (var writer = new PcapWriter(stream, limit))
        {
            foreach (var (packet, micros) in packets)
                Assert.True(writer.TryCapture(packet, micros));
        }
        return stream.ToArray();
    }

    [Fact]
    public async Task The_file_header_says_microseconds_version_2_4_snaplen_262144_raw_ip()
    {
        byte[] file = await CaptureAsync(long.MaxValue);
        Assert.Equal(Convert.FromHexString("d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "00000400" + "65000000"), file);
    }

    [Fact]
    public async Task Each_packet_becomes_a_record_with_its_timestamp_and_lengths()
    {
        byte[] v4 = LinuxCaptures.Syn;
        byte[] v6 = LinuxIpv6Captures.SynAck;
        byte[] file = await CaptureAsync(long.MaxValue, (v4, 1_764_612_000_123_456), (v6, 1_764_612_001_999_999));

        var records = ReadCapture(file);
        Assert.Equal(2, records.Count);
        Assert.Equal(1_764_612_000u, records[0].Seconds);
        Assert.Equal(123_456u, records[0].Microseconds);
        Assert.Equal(v4.Length, records[0].CapturedLength);
        Assert.Equal(v4.Length, records[0].OriginalLength);
        Assert.Equal(v4, records[0].Data);
        Assert.Equal(1_764_612_001u, records[1].Seconds);
        Assert.Equal(999_999u, records[1].Microseconds);
        Assert.Equal(v6.Length, records[1].CapturedLength);
        Assert.Equal(v6.Length, records[1].OriginalLength);
        Assert.Equal(v6, records[1].Data);
        Assert.Equal(24 + 16 + 60 + 16 + 80, file.Length);
    }

    [Fact]
    public async Task A_packet_longer_than_the_snap_length_is_cut_and_keeps_its_original_length()
    {
        var huge = new byte[PcapWriter.SnapLength + 1000];
        huge[0] = 0x60;
        huge[PcapWriter.SnapLength - 1] = 0xAB;
        var record = Assert.Single(ReadCapture(await CaptureAsync(long.MaxValue, (huge, 0))));
        Assert.Equal(PcapWriter.SnapLength, record.CapturedLength);
        Assert.Equal(huge.Length, record.OriginalLength);
        Assert.Equal(0xAB, record.Data[^1]);
    }

    [Fact]
    public async Task Capture_stops_at_the_size_limit_with_one_message()
    {
        byte[] packet = LinuxCaptures.Syn; // 60 bytes: 76 per record
        var messages = new List<string>();
        var stream = new MemoryStream();
        long limit = 24 + 3 * 76 + 75; // room for three records and not quite a fourth
        var writer = new PcapWriter(stream, limit, messages.Add);
        for (int i = 0; i < 10; i++)
            writer.TryCapture(packet, i);
        await writer.DisposeAsync();

        byte[] file = stream.ToArray();
        Assert.Equal(24 + 3 * 76, file.Length);
        Assert.Equal(3, ReadCapture(file).Count);
        Assert.Equal(3, writer.PacketsWritten);
        Assert.True(writer.Stopped);
        var message = Assert.Single(messages);
        Assert.Contains("limit", message);
        Assert.False(writer.TryCapture(packet, 11));
    }

    [Fact]
    public async Task A_limit_met_exactly_keeps_every_record()
    {
        byte[] packet = LinuxCaptures.Syn;
        byte[] file = await CaptureAsync(24 + 2 * 76, (packet, 1), (packet, 2));
        Assert.Equal(2, ReadCapture(file).Count);
    }

    /// <summary>A stream whose writes wait for <see cref="Open"/> once <see cref="Shut"/> was called.</summary>
    private sealed class GatedStream : MemoryStream
    {
        private readonly ManualResetEventSlim _open = new(true);
        public readonly ManualResetEventSlim Entered = new(false);

        public void Shut() => _open.Reset();
        public void Open() => _open.Set();

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Pass();
            base.Write(buffer.ToArray(), 0, buffer.Length);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Pass();
            base.Write(buffer, offset, count);
        }

        private void Pass()
        {
            Entered.Set();
            Assert.True(_open.Wait(Deadline), "the gate was never opened");
        }
    }

    [Fact]
    public async Task A_full_queue_drops_and_counts_instead_of_blocking()
    {
        var stream = new GatedStream();
        var writer = new PcapWriter(stream, queueCapacity: 4);
        stream.Shut();
        stream.Entered.Reset();
        byte[] packet = LinuxCaptures.Syn;

        // The writer takes the first packet and is stuck writing it; then four fit in the queue, the rest do not.
        Assert.True(writer.TryCapture(packet, 0));
        Assert.True(stream.Entered.Wait(Deadline), "the writer never started writing");
        for (int i = 1; i <= 4; i++)
            Assert.True(writer.TryCapture(packet, i), $"packet {i} should have been queued");
        Assert.False(writer.TryCapture(packet, 5));
        Assert.False(writer.TryCapture(packet, 6));
        Assert.Equal(2, writer.PacketsDropped);

        stream.Open();
        await writer.DisposeAsync();
        var records = ReadCapture(stream.ToArray());
        Assert.Equal([0u, 1u, 2u, 3u, 4u], records.Select(r => r.Microseconds));
        Assert.Equal(5, writer.PacketsWritten);
    }

    [Fact]
    public async Task The_queue_is_bounded_in_bytes_too()
    {
        var stream = new GatedStream();
        var writer = new PcapWriter(stream, maxQueuedBytes: 200);
        stream.Shut();
        stream.Entered.Reset();
        byte[] packet = new byte[120];

        Assert.True(writer.TryCapture(packet, 0));   // 120 waiting (the writer holds it until written)
        Assert.True(stream.Entered.Wait(Deadline));
        Assert.False(writer.TryCapture(packet, 1));  // 240 > 200
        Assert.True(writer.TryCapture(new byte[80], 2)); // 200 fits
        Assert.Equal(1, writer.PacketsDropped);

        stream.Open();
        await writer.DisposeAsync();
        Assert.Equal([0u, 2u], ReadCapture(stream.ToArray()).Select(r => r.Microseconds));
    }

    [Fact]
    public async Task Records_are_flushed_while_capturing_not_only_at_the_end()
    {
        var stream = new MemoryStream();
        await using var writer = new PcapWriter(stream);
        writer.TryCapture(LinuxCaptures.Syn, 1);
        var stop = DateTime.UtcNow + Deadline;
        while (writer.PacketsWritten < 1 && DateTime.UtcNow < stop)
            await Task.Delay(5);
        Assert.Equal(1, writer.PacketsWritten);
        Assert.Equal(24 + 76, writer.BytesWritten);
    }

    [Fact]
    public async Task Capturing_allocates_nothing_on_the_callers_thread_once_warm()
    {
        var stream = new GatedStream();
        await using var writer = new PcapWriter(stream);
        byte[] small = LinuxCaptures.Syn;
        byte[] large = LinuxCaptures.FullSizeData;
        const int burst = 300;

        // Warm up with the whole burst waiting at once (the writer held at the gate), so that the pool and the
        // queue have grown to what the measured burst can need however fast the writer runs then.
        stream.Shut();
        for (int i = 0; i < burst; i++)
        {
            Assert.True(writer.TryCapture(small, i));
            Assert.True(writer.TryCapture(large, i));
        }
        stream.Open();
        var stop = DateTime.UtcNow + Deadline;
        while (writer.PacketsWritten < 2 * burst && DateTime.UtcNow < stop)
            await Task.Delay(1);
        Assert.Equal(2 * burst, writer.PacketsWritten);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < burst; i++)
        {
            writer.TryCapture(small, i);
            writer.TryCapture(large, i);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(0, writer.PacketsDropped);
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task The_capturing_device_records_reads_and_writes_in_order_with_wall_clock_times()
    {
        var clock = new FixedClock(DateTimeOffset.FromUnixTimeSeconds(1_764_612_000).AddTicks(1234560));
        var inner = new QueueDevice();
        var stream = new MemoryStream();
        var writer = new PcapWriter(stream);
        using (var device = new CapturingDevice(inner, writer, clock))
        {
            Assert.Equal(inner.Name, device.Name);
            Assert.Equal(inner.Mtu, device.Mtu);
            inner.Inject(LinuxIpv6Captures.EchoRequest);
            var buffer = new byte[1600];
            int n = device.TryRead(buffer);
            Assert.Equal(LinuxIpv6Captures.EchoRequest.Length, n);
            Assert.Equal(0, device.TryRead(buffer)); // nothing waiting: nothing recorded
            clock.Now = clock.Now.AddMilliseconds(2);
            device.Write(LinuxIpv6Captures.EchoReply);
            Assert.True(inner.Written.TryDequeue(out var written));
            Assert.Equal(LinuxIpv6Captures.EchoReply, written);
        }
        await writer.DisposeAsync();

        var records = ReadCapture(stream.ToArray());
        Assert.Equal(2, records.Count);
        Assert.Equal(LinuxIpv6Captures.EchoRequest, records[0].Data);
        Assert.Equal(LinuxIpv6Captures.EchoReply, records[1].Data);
        Assert.Equal(1_764_612_000u, records[0].Seconds);
        Assert.Equal(123_456u, records[0].Microseconds);
        Assert.Equal(125_456u, records[1].Microseconds);
    }

    [Fact]
    public async Task Under_an_event_loop_the_capture_holds_the_ping_and_its_answer()
    {
        var inner = new QueueDevice();
        var stream = new MemoryStream();
        var writer = new PcapWriter(stream);
        var device = new CapturingDevice(inner, writer);
        var loop = new EventLoop(new NetStack(ScriptedPeer.DefaultOptions()), device);
        inner.Inject(LinuxIpv6Captures.EchoRequest);
        inner.Inject(LinuxCaptures.EchoRequest);
        var stop = DateTime.UtcNow + Deadline;
        while (inner.Written.Count < 2 && DateTime.UtcNow < stop)
            loop.RunOnce(wait: false);
        Assert.Equal(2, inner.Written.Count);
        await writer.DisposeAsync();

        var records = ReadCapture(stream.ToArray());
        Assert.Equal(4, records.Count);
        Assert.Equal(LinuxIpv6Captures.EchoRequest, records[0].Data);
        Assert.Equal(LinuxCaptures.EchoRequest, records[1].Data);
        Assert.Equal(inner.Written.ToArray(), records.Skip(2).Select(r => r.Data));
        Assert.Equal(6, records[2].Data[0] >> 4);
        Assert.Equal(4, records[3].Data[0] >> 4);
        device.Dispose();
    }
}
