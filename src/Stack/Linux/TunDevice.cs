using System.Runtime.InteropServices;
using System.Text;
using TunStack.Runtime;

namespace TunStack.Linux;

/// <summary>
/// A Linux TUN device (layer 3, no packet-information prefix): every read and write is one IP datagram.
/// <see cref="Open"/> creates the interface, or attaches to one made beforehand with
/// <c>ip tuntap add dev NAME mode tun</c>. The interface is created in the network namespace of the
/// calling thread. Kernel-side configuration (address, link up, MTU) is left to <c>ip</c>.
/// </summary>
/// <remarks>
/// The descriptor is non-blocking; <see cref="WaitReadable"/> polls it together with an eventfd that
/// <see cref="Wake"/> signals. A device we created disappears when it is disposed; a persistent one
/// (made by <c>ip tuntap add</c>) stays and can be attached to again.
/// </remarks>
public sealed unsafe class TunDevice : IPacketDevice
{
    /// <summary>The clone device every TUN interface is opened through.</summary>
    public const string ClonePath = "/dev/net/tun";

    /// <summary><c>_IOW('T', 202, int)</c>.</summary>
    internal const nuint TUNSETIFF = 0x400454ca;
    internal const short IFF_TUN = 0x0001;
    internal const short IFF_NO_PI = 0x1000;
    internal const short IFF_VNET_HDR = 0x4000;
    internal const short IFF_MULTI_QUEUE = 0x0100;

    /// <summary>The kernel's limit on queues per TUN device (MAX_TAP_QUEUES).</summary>
    public const int MaxQueues = 256;

    /// <summary><c>_IOW('T', 208, unsigned int)</c>: which offloads the kernel may rely on us for.</summary>
    internal const nuint TUNSETOFFLOAD = 0x400454d0;
    internal const uint TUN_F_CSUM = 0x01;
    internal const uint TUN_F_TSO4 = 0x02;
    internal const uint TUN_F_TSO6 = 0x04;

    /// <summary><c>sizeof(struct ifreq)</c> on 64-bit Linux: a 16-byte name and a 24-byte union.</summary>
    internal const int InterfaceRequestSize = 40;
    /// <summary><c>IFNAMSIZ</c>: 15 name bytes and a terminating NUL.</summary>
    internal const int InterfaceNameSize = 16;
    internal const int FlagsOffset = 16;

    private readonly SafeFileDescriptor _tun;
    private readonly SafeFileDescriptor _event;
    private long _writeDrops;
    private int _disposed;

    private TunDevice(SafeFileDescriptor tun, SafeFileDescriptor eventFd, string name, int mtu, bool virtioHeader,
        DeviceOffloads offloads)
    {
        _tun = tun;
        _event = eventFd;
        Name = name;
        Mtu = mtu;
        _virtioHeader = virtioHeader;
        Offloads = offloads;
    }

    private readonly bool _virtioHeader;

    /// <summary>
    /// The offloads in force (<see cref="Open"/> with offloads asks for checksum and TCP segmentation over IPv4 and
    /// IPv6, and settles for what the kernel grants). With segmentation, reads and writes are up to 64 KiB.
    /// </summary>
    public DeviceOffloads Offloads { get; }

    /// <inheritdoc />
    public int MaxPacketSize =>
        (Offloads & (DeviceOffloads.TcpSegmentation4 | DeviceOffloads.TcpSegmentation6)) != 0 ? ushort.MaxValue : Mtu;

    /// <summary>Packets read as super-packets (segmentation offload) since the device was opened.</summary>
    public long SuperPacketsRead => Interlocked.Read(ref _superPacketsRead);
    private long _superPacketsRead;

    /// <summary>Whether this descriptor is one queue of a multi-queue device.</summary>
    public bool IsMultiQueue { get; private init; }

    /// <summary>The interface name the kernel reports (the one given, or the one it chose for a pattern like "tun%d").</summary>
    public string Name { get; }

    /// <summary>The MTU given to <see cref="Open"/>. The link's own MTU is whatever <c>ip</c> set.</summary>
    public int Mtu { get; }

    /// <summary>Packets <see cref="Write"/> dropped because the kernel could not take them (EAGAIN, ENOBUFS, EIO while the link is down).</summary>
    public long WriteDrops => Interlocked.Read(ref _writeDrops);

    /// <summary>
    /// Opens <c>/dev/net/tun</c> and binds it to interface <paramref name="name"/> (IFF_TUN | IFF_NO_PI),
    /// creating the interface if it does not exist. Throws <see cref="TunDeviceException"/> with a plain
    /// explanation when that is not possible.
    /// </summary>
    /// <param name="name">Interface name, at most 15 bytes; a pattern such as "tun%d" lets the kernel choose.</param>
    /// <param name="mtu">Largest datagram the caller will send or expects to receive (68..65535).</param>
    /// <remarks>
    /// Without offloads every packet costs a system call, which holds a bulk transfer at MTU 1500 to about 200 MB/s on
    /// a small machine; a stack that moves bulk data wants <see cref="Open(string, int, bool)"/> with offloads (several
    /// times faster, as <c>tunstack</c> runs by default). This form gives plain IP packets with full checksums, for
    /// tools that read the device themselves.
    /// </remarks>
    public static TunDevice Open(string name, int mtu = 1500) => Open(name, mtu, offloads: false);

    /// <summary>
    /// Like <see cref="Open(string, int)"/>; with <paramref name="offloads"/> the device carries a virtio-net header on
    /// every packet (IFF_VNET_HDR) and asks the kernel for checksum and TCP segmentation offload (TUNSETOFFLOAD:
    /// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), falling back to fewer — or none — where the kernel refuses.
    /// </summary>
    public static TunDevice Open(string name, int mtu, bool offloads)
    {
        try
        {
            return OpenQueue(name, mtu, offloads, multiQueue: false);
        }
        catch (TunDeviceException e) when (e.Errno == Native.EINVAL)
        {
            // Perhaps a persistent device made with "ip tuntap add ... multi_queue": attach as one of its queues.
            try { return OpenQueue(name, mtu, offloads, multiQueue: true); }
            catch (TunDeviceException) { throw e; }
        }
    }

    /// <summary>
    /// Opens <paramref name="queues"/> queues of one multi-queue device (IFF_MULTI_QUEUE): one descriptor each, every
    /// one a <see cref="TunDevice"/> of its own to be read and written by its own thread. The kernel spreads the flows
    /// it sends over the queues by a hash of each flow, and sends a flow to the queue its packets were last written
    /// on. A persistent device made single-queue beforehand keeps working: then the result has one queue only.
    /// </summary>
    public static TunDevice[] OpenQueues(string name, int mtu, bool offloads, int queues)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queues, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queues, MaxQueues);
        if (queues == 1)
            return [Open(name, mtu, offloads)];
        TunDevice first;
        try
        {
            first = OpenQueue(name, mtu, offloads, multiQueue: true);
        }
        catch (TunDeviceException e) when (e.Errno == Native.EINVAL)
        {
            return [OpenQueue(name, mtu, offloads, multiQueue: false)]; // an existing single-queue device
        }
        var opened = new List<TunDevice>(queues) { first };
        try
        {
            // Further queues attach to the interface the first one made (its name may have been a pattern like tun%d).
            while (opened.Count < queues)
                opened.Add(OpenQueue(first.Name, mtu, offloads, multiQueue: true));
        }
        catch
        {
            foreach (var queue in opened) queue.Dispose();
            throw;
        }
        return opened.ToArray();
    }

    private static TunDevice OpenQueue(string name, int mtu, bool offloads, bool multiQueue)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 68);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(mtu, 65535);
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("TUN devices are only supported on Linux.");

        Span<byte> ifreq = stackalloc byte[InterfaceRequestSize];
        FillInterfaceRequest(ifreq, name, (short)(IFF_TUN | IFF_NO_PI | (offloads ? IFF_VNET_HDR : 0) | (multiQueue ? IFF_MULTI_QUEUE : 0)));

        int fd = Native.Open(ClonePath, Native.O_RDWR | Native.O_CLOEXEC, 0);
        if (fd < 0)
            throw OpenError(Marshal.GetLastPInvokeError());

        var tun = new SafeFileDescriptor(fd);
        SafeFileDescriptor? eventFd = null;
        try
        {
            fixed (byte* p = ifreq)
            {
                if (Native.Ioctl(tun, TUNSETIFF, p) < 0)
                    throw SetInterfaceError(Marshal.GetLastPInvokeError(), name);
            }
            string actualName = ReadInterfaceName(ifreq);

            int flags = Native.Fcntl(tun, Native.F_GETFL, 0);
            if (flags < 0 || Native.Fcntl(tun, Native.F_SETFL, flags | Native.O_NONBLOCK) < 0)
                throw Error(Marshal.GetLastPInvokeError(), $"cannot make the {actualName} descriptor non-blocking");

            int efd = Native.EventFd(0, Native.EFD_NONBLOCK | Native.EFD_CLOEXEC);
            if (efd < 0)
                throw Error(Marshal.GetLastPInvokeError(), "cannot create the wake-up eventfd");
            eventFd = new SafeFileDescriptor(efd);

            var granted = offloads ? RequestOffloads(tun) : ClearOffloads(tun);
            return new TunDevice(tun, eventFd, actualName, mtu, offloads, granted) { IsMultiQueue = multiQueue };
        }
        catch
        {
            eventFd?.Dispose();
            tun.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Without the virtio-net header nothing can say a checksum is partial, so no offload may be on; but TUNSETOFFLOAD
    /// sets the interface's features, which outlive the descriptor that set them: a persistent device an earlier
    /// attachment gave offloads would go on handing out packets with partial checksums (and, with TSO, super-packets).
    /// Switching them off is what a plain attachment needs; a kernel that refuses leaves nothing to switch off.
    /// </summary>
    private static DeviceOffloads ClearOffloads(SafeFileDescriptor tun)
    {
        _ = Native.Ioctl(tun, TUNSETOFFLOAD, (void*)0);
        return DeviceOffloads.None;
    }

    /// <summary>Asks for the most the kernel grants: checksum plus TSO for both families, then IPv4 only, then checksum only.</summary>
    private static DeviceOffloads RequestOffloads(SafeFileDescriptor tun)
    {
        (uint Flags, DeviceOffloads Offloads)[] choices =
        [
            (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation4 | DeviceOffloads.TcpSegmentation6),
            (TUN_F_CSUM | TUN_F_TSO4, DeviceOffloads.Checksum | DeviceOffloads.TcpSegmentation4),
            (TUN_F_CSUM, DeviceOffloads.Checksum),
        ];
        foreach (var (flags, granted) in choices)
        {
            if (Native.Ioctl(tun, TUNSETOFFLOAD, (void*)(nuint)flags) == 0)
                return granted;
        }
        return DeviceOffloads.None;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// With offloads the packet may be a super-packet of up to 64 KiB or carry a partial checksum; see
    /// <paramref name="info"/>.
    /// </remarks>
    public int TryRead(Span<byte> buffer, out PacketInfo info)
    {
        info = PacketInfo.Plain;
        if (!_virtioHeader)
            return TryRead(buffer);
        Span<byte> header = stackalloc byte[VirtioNetHeader.Length];
        fixed (byte* h = header)
        fixed (byte* p = buffer)
        {
            Native.IoVec* vectors = stackalloc Native.IoVec[2];
            vectors[0] = new Native.IoVec { Base = h, Length = VirtioNetHeader.Length };
            vectors[1] = new Native.IoVec { Base = p, Length = (nuint)buffer.Length };
            while (true)
            {
                nint n = Native.Readv(_tun, vectors, 2);
                if (n >= VirtioNetHeader.Length)
                {
                    info = VirtioNetHeader.Read(header);
                    if (info.Segmentation != SegmentationKind.None) Interlocked.Increment(ref _superPacketsRead);
                    return (int)n - VirtioNetHeader.Length;
                }
                if (n >= 0)
                    return 0; // a read shorter than the header carries no packet
                if (!RetryReadAfter(Marshal.GetLastPInvokeError()))
                    return 0;
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Without offloads only plain packets are accepted. A packet the kernel cannot take right now is dropped and
    /// counted, as in <see cref="Write(ReadOnlySpan{byte})"/>.
    /// </remarks>
    public void Write(ReadOnlySpan<byte> packet, in PacketInfo info)
    {
        if (!_virtioHeader)
        {
            if (!info.IsPlain)
                throw new NotSupportedException($"{Name} was opened without offloads; it takes plain packets only.");
            Write(packet);
            return;
        }
        Span<byte> header = stackalloc byte[VirtioNetHeader.Length];
        if (!VirtioNetHeader.TryWrite(header, packet, info))
            throw new ArgumentException("offload metadata for a packet that is not TCP", nameof(info));
        fixed (byte* h = header)
        fixed (byte* p = packet)
        {
            Native.IoVec* vectors = stackalloc Native.IoVec[2];
            vectors[0] = new Native.IoVec { Base = h, Length = VirtioNetHeader.Length };
            vectors[1] = new Native.IoVec { Base = p, Length = (nuint)packet.Length };
            WriteVectors(vectors, packet.Length);
        }
    }

    private void WriteVectors(Native.IoVec* vectors, int packetLength)
    {
        while (true)
        {
            nint n = Native.Writev(_tun, vectors, 2);
            if (n >= 0)
                return;
            if (!RetryWriteAfter(Marshal.GetLastPInvokeError(), packetLength))
                return;
        }
    }

    /// <summary>After a failed read: true to read again (EINTR), false when nothing is waiting (EAGAIN); throws otherwise.</summary>
    private bool RetryReadAfter(int errno) => errno switch
    {
        Native.EINTR => true,
        Native.EAGAIN => false,
        Native.EBADFD => throw Error(errno, $"TUN device {Name} was removed"),
        _ => throw Error(errno, $"read from {Name} failed"),
    };

    /// <summary>
    /// After a failed write: true to write again (EINTR); false when the kernel cannot take the packet now (EAGAIN,
    /// ENOBUFS) or the link is down (EIO), the packet then dropped and counted; throws otherwise.
    /// </summary>
    private bool RetryWriteAfter(int errno, int packetLength)
    {
        switch (errno)
        {
            case Native.EINTR:
                return true;
            case Native.EAGAIN or Native.ENOBUFS or Native.EIO:
                Interlocked.Increment(ref _writeDrops);
                return false;
            case Native.EBADFD:
                throw Error(errno, $"TUN device {Name} was removed");
            default:
                throw Error(errno, $"write of a {packetLength}-byte packet to {Name} failed");
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// <paramref name="buffer"/> must hold at least <see cref="Mtu"/> bytes, and should hold the link's MTU
    /// as configured with <c>ip</c>: the tun driver silently cuts a longer packet to the buffer's length
    /// (the IP total-length field then tells the parser it is incomplete).
    /// </remarks>
    public int TryRead(Span<byte> buffer)
    {
        if (_virtioHeader)
            return TryRead(buffer, out _);
        if (buffer.Length < Mtu)
            throw new ArgumentException($"The read buffer ({buffer.Length} bytes) is smaller than the MTU ({Mtu}).", nameof(buffer));
        fixed (byte* p = buffer)
        {
            while (true)
            {
                nint n = Native.Read(_tun, p, buffer.Length);
                if (n >= 0)
                    return (int)n;

                if (!RetryReadAfter(Marshal.GetLastPInvokeError()))
                    return 0;
            }
        }
    }

    /// <inheritdoc/>
    /// <remarks>
    /// When the kernel cannot take the packet right now (EAGAIN, ENOBUFS) or the link is down (EIO) the
    /// packet is dropped, as a link would, and counted in <see cref="WriteDrops"/>. Any other failure throws
    /// <see cref="TunDeviceException"/>.
    /// </remarks>
    public void Write(ReadOnlySpan<byte> packet)
    {
        if (_virtioHeader)
        {
            Write(packet, PacketInfo.Plain);
            return;
        }
        fixed (byte* p = packet)
        {
            while (true)
            {
                nint n = Native.Write(_tun, p, packet.Length);
                if (n >= 0)
                    return;

                if (!RetryWriteAfter(Marshal.GetLastPInvokeError(), packet.Length))
                    return;
            }
        }
    }

    /// <inheritdoc/>
    public void WaitReadable(TimeSpan timeout)
    {
        int milliseconds = ToPollTimeout(timeout);
        bool tunAdded = false, eventAdded = false;
        try
        {
            _tun.DangerousAddRef(ref tunAdded);
            _event.DangerousAddRef(ref eventAdded);

            Native.PollFd* fds = stackalloc Native.PollFd[2];
            fds[0] = new Native.PollFd { Fd = _tun.Fd, Events = Native.POLLIN };
            fds[1] = new Native.PollFd { Fd = _event.Fd, Events = Native.POLLIN };

            int ready = Native.Poll(fds, 2, milliseconds);
            if (ready < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Native.EINTR)
                    return;
                throw Error(errno, $"poll on {Name} failed");
            }

            if ((fds[1].REvents & Native.POLLIN) != 0)
            {
                // Reading an eventfd returns its counter and resets it to zero.
                ulong counter;
                _ = Native.Read(_event, (byte*)&counter, sizeof(ulong));
            }
        }
        finally
        {
            if (eventAdded)
                _event.DangerousRelease();
            if (tunAdded)
                _tun.DangerousRelease();
        }
    }

    /// <inheritdoc/>
    /// <remarks>Safe from any thread; does nothing once the device is disposed.</remarks>
    public void Wake()
    {
        if (Volatile.Read(ref _disposed) != 0)
            return;
        SignalEvent();
    }

    /// <summary>Closes the device (a device this call created disappears) and the eventfd. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        // Let a WaitReadable blocked on another thread return; the descriptors close once it has.
        SignalEvent();
        _tun.Dispose();
        _event.Dispose();
    }

    private void SignalEvent()
    {
        ulong one = 1;
        try
        {
            // Only EAGAIN (counter saturated) can fail here, and then a wake-up is already pending.
            _ = Native.Write(_event, (byte*)&one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>poll(2) timeout: negative or infinite waits forever; otherwise rounded up to whole milliseconds.</summary>
    internal static int ToPollTimeout(TimeSpan timeout)
    {
        if (timeout < TimeSpan.Zero)
            return -1;
        double ms = Math.Ceiling(timeout.TotalMilliseconds);
        return ms >= int.MaxValue ? int.MaxValue : (int)ms;
    }

    /// <summary>
    /// Fills a <c>struct ifreq</c>: <c>ifr_name</c> (NUL-terminated, NUL-padded to 16 bytes), then
    /// <c>ifr_flags</c> as a native-endian short at offset 16, and zeros up to 40 bytes.
    /// </summary>
    internal static void FillInterfaceRequest(Span<byte> ifreq, string name, short flags)
    {
        if (ifreq.Length < InterfaceRequestSize)
            throw new ArgumentException($"struct ifreq needs {InterfaceRequestSize} bytes", nameof(ifreq));
        ValidateInterfaceName(name);

        ifreq[..InterfaceRequestSize].Clear();
        Encoding.UTF8.GetBytes(name, ifreq[..(InterfaceNameSize - 1)]);
        MemoryMarshal.Write(ifreq[FlagsOffset..], in flags);
    }

    /// <summary>Reads <c>ifr_name</c> back (the kernel writes the chosen name there).</summary>
    internal static string ReadInterfaceName(ReadOnlySpan<byte> ifreq)
    {
        var name = ifreq[..InterfaceNameSize];
        int end = name.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? name : name[..end]);
    }

    /// <summary>
    /// Checks <paramref name="name"/> against the kernel's rule (dev_valid_name): 1..15 bytes, not "." or "..", no '/',
    /// ':' or whitespace; throws <see cref="ArgumentException"/> saying what is wrong.
    /// </summary>
    public static void ValidateInterfaceName(string name)
    {
        int bytes = Encoding.UTF8.GetByteCount(name);
        string? problem =
            bytes == 0 ? "is empty" :
            bytes >= InterfaceNameSize ? $"is {bytes} bytes long; at most {InterfaceNameSize - 1} are allowed" :
            name is "." or ".." ? "is reserved" :
            name.Any(c => c == '/' || c == ':' || c == '\0' || char.IsWhiteSpace(c)) ? "contains '/', ':', NUL or whitespace" :
            null;
        if (problem is not null)
            throw new ArgumentException($"Interface name \"{name}\" {problem}.", nameof(name));
    }

    private static TunDeviceException OpenError(int errno) => errno switch
    {
        Native.ENOENT => new TunDeviceException(errno, $"{ClonePath} not found: load the tun module (modprobe tun)"),
        Native.ENODEV or Native.ENXIO => new TunDeviceException(errno,
            $"{ClonePath} exists but the tun driver is not loaded: load the tun module (modprobe tun)"),
        Native.EPERM or Native.EACCES => new TunDeviceException(errno,
            $"cannot open {ClonePath}: need root or CAP_NET_ADMIN ({Native.ErrorText(errno)})"),
        _ => Error(errno, $"cannot open {ClonePath}"),
    };

    private static TunDeviceException SetInterfaceError(int errno, string name) => errno switch
    {
        Native.EPERM => new TunDeviceException(errno,
            $"cannot create or attach to TUN device {name}: need root or CAP_NET_ADMIN, " +
            $"or the device belongs to another user ({Native.ErrorText(errno)})"),
        Native.EBUSY => new TunDeviceException(errno,
            $"TUN device {name} is in use by another process (a single-queue TUN device accepts one attachment); " +
            $"stop that process or choose another name ({Native.ErrorText(errno)})"),
        Native.EINVAL => new TunDeviceException(errno,
            $"cannot use {name} as a TUN device: an interface of that name exists but is not a TUN device of the kind asked for " +
            $"(a TAP, a TUN with other flags, or another kind of link?) ({Native.ErrorText(errno)})"),
        _ => Error(errno, $"TUNSETIFF for {name} failed"),
    };

    private static TunDeviceException Error(int errno, string what) =>
        new(errno, $"{what}: {Native.ErrorText(errno)} (errno {errno})");
}
