namespace TunStack;

/// <summary>Offloads a device performs for the stack (Linux TUN: TUNSETOFFLOAD with the virtio-net header).</summary>
[Flags]
public enum DeviceOffloads
{
    /// <summary>No offload: plain packets with complete checksums.</summary>
    None = 0,
    /// <summary>The device completes TCP checksums of packets marked <see cref="ChecksumStatus.Partial"/> (TUN_F_CSUM).</summary>
    Checksum = 1,
    /// <summary>The device cuts TCP/IPv4 super-packets into segments of <see cref="PacketInfo.SegmentSize"/> (TUN_F_TSO4).</summary>
    TcpSegmentation4 = 2,
    /// <summary>The same for TCP/IPv6 (TUN_F_TSO6).</summary>
    TcpSegmentation6 = 4,
}

/// <summary>The state of a packet's transport checksum, as the device reports or expects it.</summary>
public enum ChecksumStatus : byte
{
    /// <summary>The checksum field holds the full checksum: verify it.</summary>
    Complete,
    /// <summary>
    /// The field holds only the pseudo-header sum; the rest is to be computed by whoever delivers it (virtio
    /// NEEDS_CSUM). A packet the kernel hands over like this never crossed a wire: there is nothing to verify.
    /// </summary>
    Partial,
    /// <summary>The device has verified it (virtio DATA_VALID).</summary>
    Verified,
}

/// <summary>Generic segmentation offload (GSO) of a packet: one super-packet standing for several TCP segments.</summary>
public enum SegmentationKind : byte
{
    /// <summary>Nothing: plain packets.</summary>
    None,
    /// <summary>A TCP/IPv4 super-packet to be cut into segments of <see cref="PacketInfo.SegmentSize"/>.</summary>
    TcpV4,
    /// <summary>A TCP/IPv6 super-packet to be cut into segments of <see cref="PacketInfo.SegmentSize"/>.</summary>
    TcpV6,
}

/// <summary>
/// What travels with a packet besides its bytes when the device offloads work (the virtio-net header of Linux TUN):
/// the checksum's state, and for a super-packet its segmentation. The default value is a plain packet: complete
/// checksum, one segment.
/// </summary>
public readonly record struct PacketInfo
{
    /// <summary>Whether the packet's transport checksum is complete, left to the device, or already verified.</summary>
    public ChecksumStatus Checksum { get; init; }
    /// <summary>Whether the packet is a super-packet, and of which kind.</summary>
    public SegmentationKind Segmentation { get; init; }
    /// <summary>For a super-packet: the TCP payload bytes per segment (the MSS less options).</summary>
    public ushort SegmentSize { get; init; }

    /// <summary>A complete packet with its checksum filled in, as a device without offloads carries.</summary>
    public bool IsPlain => Checksum == ChecksumStatus.Complete && Segmentation == SegmentationKind.None;

    /// <summary>A checksum the stack need not verify (partial or verified by the device).</summary>
    public bool ChecksumTrusted => Checksum != ChecksumStatus.Complete;

    /// <summary>The metadata of a plain packet.</summary>
    public static PacketInfo Plain => default;
}
