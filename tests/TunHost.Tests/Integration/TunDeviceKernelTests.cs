using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using TunStack.Linux;
using TunStack;
using Xunit;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// <see cref="TunDevice"/> against the real kernel, in-process: the device is opened on a thread that joined
/// a fresh namespace, and the kernel's own IPv4 stack in that namespace is the peer.
/// </summary>
[Collection(IntegrationCollection.Name)]
public sealed class TunDeviceKernelTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(15);

    [IntegrationFact]
    public async Task Create_mode_makes_the_interface_and_dispose_removes_it()
    {
        await using var ns = new NetNamespace(output);
        using (var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500)))
        {
            Assert.Equal("tun0", device.Name);
            Assert.Equal(1500, device.Mtu);
            var show = (await ns.RunAsync(CommandTimeout, "ip", "-d", "link", "show", "tun0")).EnsureSuccess();
            Assert.Contains("tun type tun pi off", show.Stdout);
            Assert.Contains("persist off", show.Stdout);
        }

        var after = await ns.RunAsync(CommandTimeout, "ip", "link", "show", "tun0");
        Assert.True(after.ExitCode != 0, $"tun0 should be gone once its creator closed it: {after}");
    }

    [IntegrationFact]
    public async Task A_name_pattern_lets_the_kernel_choose_and_Name_reports_its_choice()
    {
        await using var ns = new NetNamespace(output);
        using var device = ns.InNamespace(() => TunDevice.Open("tst%d", 1500));
        Assert.Equal("tst0", device.Name);
        (await ns.RunAsync(CommandTimeout, "ip", "link", "show", "tst0")).EnsureSuccess();
    }

    [IntegrationFact]
    public async Task Attach_mode_uses_a_precreated_interface_and_leaves_it_in_place()
    {
        await using var ns = new NetNamespace(output);
        await ns.IpAsync("tuntap", "add", "dev", "tun0", "mode", "tun");

        using (var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500)))
        {
            Assert.Equal("tun0", device.Name);
            var busy = Assert.Throws<TunDeviceException>(() => ns.InNamespace(() => TunDevice.Open("tun0", 1500)));
            Assert.Equal(16, busy.Errno); // EBUSY
            Assert.Contains("in use by another process", busy.Message);
        }

        var show = (await ns.RunAsync(CommandTimeout, "ip", "-d", "link", "show", "tun0")).EnsureSuccess();
        Assert.Contains("persist on", show.Stdout);
        // Free again once the first user closed it.
        using var again = ns.InNamespace(() => TunDevice.Open("tun0", 1500));
        Assert.Equal("tun0", again.Name);
    }

    [IntegrationFact]
    public async Task A_tap_device_of_the_same_name_is_refused_with_an_explanation()
    {
        await using var ns = new NetNamespace(output);
        await ns.IpAsync("tuntap", "add", "dev", "tap0", "mode", "tap");
        var e = Assert.Throws<TunDeviceException>(() => ns.InNamespace(() => TunDevice.Open("tap0", 1500)));
        Assert.Equal(22, e.Errno); // EINVAL
        Assert.Contains("not a TUN device of the kind asked for", e.Message);
    }

    [IntegrationFact]
    public async Task Written_echo_request_is_answered_by_the_kernel_and_the_reply_is_read()
    {
        await using var ns = new NetNamespace(output);
        using var device = await OpenConfiguredAsync(ns);

        byte[] request = Packets.IcmpEchoRequest(source: [198, 18, 0, 2], destination: [198, 18, 0, 1], id: 0x5453, sequence: 7, "tunstack"u8);
        device.Write(request);
        Assert.Equal(0, device.WriteDrops);

        byte[] reply = ReadUntil(device, p =>
            p.Length >= 28 && p[0] >> 4 == 4 && p[9] == 1 && p[20] == 0 &&
            BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(24)) == 0x5453);
        Assert.Equal(new byte[] { 198, 18, 0, 1 }, reply[12..16]);
        Assert.Equal(new byte[] { 198, 18, 0, 2 }, reply[16..20]);
        Assert.Equal(7, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(26)));
        Assert.Equal("tunstack"u8.ToArray(), reply[28..]);
    }

    /// <summary>
    /// TUNSETOFFLOAD changes the interface's features, which outlive the descriptor: after an attachment with offloads
    /// (tunstack's default), the kernel still hands a persistent tun0 packets with partial checksums. An attachment
    /// without the virtio-net header cannot be told so, and would drop every TCP segment as corrupt (the samples, the
    /// README's library example and <c>tunstack --offload off</c> all attach that way): it must switch them off.
    /// </summary>
    [IntegrationFact]
    public async Task Attaching_without_offloads_after_an_attachment_with_them_reads_full_checksums()
    {
        await using var ns = new NetNamespace(output);
        using (var withOffloads = await OpenConfiguredAsync(ns, offloads: true))
            Assert.NotEqual(DeviceOffloads.None, withOffloads.Offloads);

        using var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500));
        var features = await ns.RunAsync(CommandTimeout, "ethtool", "-k", "tun0");
        if (features.Succeeded)
            Assert.Contains("tx-checksumming: off", features.Stdout, StringComparison.Ordinal);

        // A kernel SYN to the stack's address: its TCP checksum must be complete.
        await using var client = ns.Start("python3", "-c",
            "import socket; s = socket.socket(); s.settimeout(5)\ntry: s.connect(('198.18.0.2', 80))\nexcept OSError: pass");
        byte[] syn = ReadUntil(device, p => p.Length >= 40 && p[0] >> 4 == 4 && p[9] == 6 && (p[33] & 0x02) != 0);
        Assert.True(Wire.Ipv4Packet.TryParse(syn, out var ip, out _));
        Assert.True(Wire.TcpSegment.TryParse(ip.Payload, out var segment, out _));
        Assert.True(segment.VerifyChecksum(ip.Source, ip.Destination),
            $"the kernel's SYN reached a device without offloads with a partial checksum 0x{segment.Checksum:x4}");
    }

    [IntegrationFact]
    public async Task A_datagram_sent_by_a_kernel_socket_is_read_whole()
    {
        await using var ns = new NetNamespace(output);
        using var device = await OpenConfiguredAsync(ns);

        var send = await ns.RunAsync(CommandTimeout, "python3", "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'hello over tun', ('198.18.0.2', 9999))");
        Assert.True(send.Succeeded, send.ToString());

        byte[] packet = ReadUntil(device, p => p.Length >= 28 && p[0] >> 4 == 4 && p[9] == 17 &&
                                               BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(22)) == 9999);
        Assert.Equal(BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2)), packet.Length); // IPv4 total length
        Assert.Equal("hello over tun", Encoding.ASCII.GetString(packet, 28, packet.Length - 28));
    }

    [IntegrationFact]
    public async Task Writes_while_the_link_is_down_are_dropped_and_counted()
    {
        await using var ns = new NetNamespace(output);
        using var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500));

        device.Write(Packets.IcmpEchoRequest([198, 18, 0, 2], [198, 18, 0, 1], 1, 1, "x"u8));
        device.Write(Packets.IcmpEchoRequest([198, 18, 0, 2], [198, 18, 0, 1], 1, 2, "x"u8));
        Assert.Equal(2, device.WriteDrops);
        Assert.Equal(0, device.TryRead(new byte[1500]));
    }

    [IntegrationFact]
    public async Task Wake_ends_a_wait_early_and_a_wait_without_wake_lasts_its_timeout()
    {
        await using var ns = new NetNamespace(output);
        using var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500)); // link down: no traffic

        var clock = Stopwatch.StartNew();
        int waiter = TestNative.GetThreadId();
        var waker = Task.Run(async () =>
        {
            // The wake lands while this thread is blocked in poll().
            Assert.True(await TestNative.WaitUntilBlockedInPollAsync(waiter, TimeSpan.FromSeconds(5)), "the wait never blocked in poll()");
            device.Wake();
        });
        device.WaitReadable(TimeSpan.FromSeconds(20));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"Wake from another thread took {clock.Elapsed}");
        await waker;

        device.Wake();
        device.Wake();
        clock.Restart();
        device.WaitReadable(TimeSpan.FromSeconds(20));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"a pending Wake should end the next wait at once, took {clock.Elapsed}");

        clock.Restart();
        device.WaitReadable(TimeSpan.FromMilliseconds(300));
        // An undrained eventfd would end this wait at once; EINTR may end it a little early, which is allowed.
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(100), $"the wake-up was not drained: waited only {clock.Elapsed}");
        Assert.Equal(0, device.TryRead(new byte[1500]));
    }

    [IntegrationFact]
    public async Task Dispose_is_idempotent_releases_a_blocked_waiter_and_later_calls_are_refused()
    {
        await using var ns = new NetNamespace(output);
        var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500));

        int waiterThread = 0;
        var waiter = Task.Run(() =>
        {
            Volatile.Write(ref waiterThread, TestNative.GetThreadId());
            try
            {
                device.WaitReadable(TimeSpan.FromSeconds(30));
            }
            catch (ObjectDisposedException)
            {
                // Disposed before the wait began: also fine.
            }
        });
        // Dispose while the waiter is blocked in poll(), the case that matters (disposing first is fine too).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Volatile.Read(ref waiterThread) == 0 && DateTime.UtcNow < deadline)
            await Task.Delay(1);
        Assert.True(await TestNative.WaitUntilBlockedInPollAsync(Volatile.Read(ref waiterThread), TimeSpan.FromSeconds(5)),
            "the waiter never blocked in poll()");
        device.Dispose();
        device.Dispose();
        device.Wake();
        await waiter.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Throws<ObjectDisposedException>(() => device.TryRead(new byte[1500]));
        Assert.Throws<ObjectDisposedException>(() => device.Write(new byte[20]));
        Assert.Throws<ObjectDisposedException>(() => device.WaitReadable(TimeSpan.Zero));
    }

    [IntegrationFact]
    public async Task A_read_buffer_smaller_than_the_mtu_is_refused()
    {
        await using var ns = new NetNamespace(output);
        using var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500));
        Assert.Throws<ArgumentException>(() => device.TryRead(new byte[1499]));
    }

    [IntegrationFact]
    public async Task The_kernel_spreads_flows_over_the_queues_of_a_multi_queue_device()
    {
        await using var ns = new NetNamespace(output);
        var queues = ns.InNamespace(() => TunDevice.OpenQueues("tun0", 1500, offloads: false, queues: 2));
        try
        {
            Assert.Equal(2, queues.Length);
            Assert.All(queues, q => Assert.True(q.IsMultiQueue));
            var show = (await ns.RunAsync(CommandTimeout, "ip", "-d", "link", "show", "tun0")).EnsureSuccess();
            Assert.Contains("multi_queue", show.Stdout);
            await ns.IpAsync("addr", "add", "198.18.0.1/24", "dev", "tun0");
            await ns.IpAsync("link", "set", "tun0", "up");

            // 40 flows (one datagram from each of 40 source ports); each must come out of exactly one queue.
            var send = await ns.RunAsync(CommandTimeout, "python3", "-c",
                "import socket\nfor p in range(41000, 41040):\n" +
                "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('198.18.0.1', p)); s.sendto(b'q', ('198.18.0.2', 9999)); s.close()");
            Assert.True(send.Succeeded, send.ToString());

            var portsByQueue = queues.Select(_ => new HashSet<ushort>()).ToArray();
            byte[] buffer = new byte[2048];
            var clock = Stopwatch.StartNew();
            while (portsByQueue.Sum(p => p.Count) < 40 && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                for (int q = 0; q < queues.Length; q++)
                {
                    queues[q].WaitReadable(TimeSpan.FromMilliseconds(20));
                    int n;
                    while ((n = queues[q].TryRead(buffer)) > 0)
                    {
                        if (n >= 28 && buffer[0] >> 4 == 4 && buffer[9] == 17 && BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(22)) == 9999)
                            Assert.True(portsByQueue[q].Add(BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(20))), "a datagram was read twice");
                    }
                }
            }
            output.WriteLine($"queue 0: {portsByQueue[0].Count} flows, queue 1: {portsByQueue[1].Count} flows");
            Assert.Equal(40, portsByQueue.Sum(p => p.Count));
            Assert.Empty(portsByQueue[0].Intersect(portsByQueue[1]));
            Assert.All(portsByQueue, p => Assert.NotEmpty(p));
        }
        finally
        {
            foreach (var q in queues) q.Dispose();
        }
    }

    [IntegrationFact]
    public async Task A_single_queue_device_made_beforehand_keeps_working_with_one_queue()
    {
        await using var ns = new NetNamespace(output);
        await ns.IpAsync("tuntap", "add", "dev", "tun0", "mode", "tun");
        var queues = ns.InNamespace(() => TunDevice.OpenQueues("tun0", 1500, offloads: false, queues: 4));
        using var only = Assert.Single(queues);
        Assert.False(only.IsMultiQueue);
        Assert.Equal("tun0", only.Name);
    }

    [IntegrationFact]
    public async Task A_multi_queue_device_made_beforehand_is_attached_as_one_of_its_queues()
    {
        await using var ns = new NetNamespace(output);
        await ns.IpAsync("tuntap", "add", "dev", "tun0", "mode", "tun", "multi_queue");
        using var device = ns.InNamespace(() => TunDevice.Open("tun0", 1500));
        Assert.True(device.IsMultiQueue);
        var queues = ns.InNamespace(() => TunDevice.OpenQueues("tun0", 1500, offloads: true, queues: 3));
        try
        {
            Assert.Equal(3, queues.Length);
            Assert.All(queues, q => Assert.NotEqual(DeviceOffloads.None, q.Offloads));
        }
        finally
        {
            foreach (var q in queues) q.Dispose();
        }
    }

    private static async Task<TunDevice> OpenConfiguredAsync(NetNamespace ns, bool offloads = false)
    {
        await ns.IpAsync("tuntap", "add", "dev", "tun0", "mode", "tun");
        await ns.IpAsync("addr", "add", "198.18.0.1/24", "dev", "tun0");
        await ns.IpAsync("link", "set", "tun0", "up");
        return ns.InNamespace(() => TunDevice.Open("tun0", 1500, offloads));
    }

    /// <summary>Reads packets until one matches (skipping the kernel's own IPv6 chatter); fails after 10 s.</summary>
    private byte[] ReadUntil(TunDevice device, Func<byte[], bool> match)
    {
        byte[] buffer = new byte[65536];
        var clock = Stopwatch.StartNew();
        var seen = new List<string>();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            device.WaitReadable(TimeSpan.FromMilliseconds(200));
            int n;
            while ((n = device.TryRead(buffer)) > 0)
            {
                byte[] packet = buffer[..n];
                if (match(packet))
                    return packet;
                seen.Add($"{n} bytes: {Convert.ToHexString(packet.AsSpan(0, Math.Min(n, 40)))}");
                output.WriteLine($"skipped packet {seen[^1]}");
            }
        }
        Assert.Fail($"no matching packet within 10 s; saw {seen.Count}: {string.Join("; ", seen)}");
        return [];
    }
}

/// <summary>Hand-built IPv4 packets for talking to the kernel directly.</summary>
internal static class Packets
{
    public static byte[] IcmpEchoRequest(byte[] source, byte[] destination, ushort id, ushort sequence, ReadOnlySpan<byte> payload)
    {
        byte[] p = new byte[20 + 8 + payload.Length];
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), 0x1234); // identification
        p[8] = 64; // TTL
        p[9] = 1;  // ICMP
        source.CopyTo(p, 12);
        destination.CopyTo(p, 16);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), InternetChecksum(p.AsSpan(0, 20)));

        p[20] = 8; // echo request, code 0
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(24), id);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(26), sequence);
        payload.CopyTo(p.AsSpan(28));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(22), InternetChecksum(p.AsSpan(20)));
        return p;
    }

    public static ushort InternetChecksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length)
            sum += (uint)data[i] << 8;
        while (sum >> 16 != 0)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }
}
