using TunStack.Wire;

namespace TunStack.Tests.Wire;

/// <summary>
/// IPv6 packets captured from Linux 6.18 (Debian 12 userland, curl 7.88.1, iputils ping) on 2026-12-01, IPv6 headers
/// onward (the 14-byte Ethernet header removed). As for <see cref="LinuxCaptures"/>: three throw-away namespaces,
/// A (2001:2::1) - B (2001:2::2, forwarding) - C (2001:2:0:1::2), joined by veth pairs with offloads turned off by
/// ethtool, the B-C link at MTU 1280, addresses added with <c>nodad</c>; captured with <c>tcpdump -i va -s 0 -w</c>
/// on A's side, and <c>tcpdump -r -vv</c> reported every checksum correct. TCP: <c>python3 -m http.server --bind 2001:2::2 18080</c> in B,
/// <c>curl http://[2001:2::2]:18080/data.txt</c> (a 4 KB base64 file) from A. The MLD report and the router
/// solicitation are what A's kernel sent as the link came up.
/// </summary>
internal static class LinuxIpv6Captures
{
    public static readonly IpAddress Client = IpAddress.Parse("2001:2::1");
    public static readonly IpAddress Server = IpAddress.Parse("2001:2::2");

    /// <summary>MLDv2 report from :: to ff02::16, hop limit 1, sent while the link came up (before the link-local
    /// address was ready): Hop-by-Hop Options header (Router Alert 0, PadN), then ICMPv6 type 143 with 2 group
    /// records. 96 bytes.</summary>
    public static byte[] MldReport => LinuxCaptures.Hex("""
        600000000038000100000000000000000000000000000000ff0200000000000000000000000000163a00050200000100
        8f0059110000000204000000ff0200000000000000000001ff15144904000000ff0200000000000000000001ff000001
        """);

    /// <summary>Router solicitation fe80::c0e5:62ff:fe15:1449 > ff02::2, hop limit 255, ICMPv6 type 133 with a
    /// source link-layer address option. 56 bytes.</summary>
    public static byte[] RouterSolicitation => LinuxCaptures.Hex("""
        6000000000103afffe80000000000000c0e562fffe151449ff02000000000000000000000000000285000ca600000000
        0101c2e562151449
        """);

    /// <summary>Client SYN [2001:2::1]:49406 > [2001:2::2]:18080, flow label 0x5dba9, seq 418427409, win 64800,
    /// options [mss 1440,sackOK,TS val 1508422117 ecr 0,nop,wscale 10]. TCP cksum 0x2c79 correct.</summary>
    public static byte[] Syn => LinuxCaptures.Hex("""
        6005dba9002806402001000200000000000000000000000120010002000000000000000000000002c0fe46a018f0b211
        00000000a002fd202c790000020405a00402080a59e8b1e5000000000103030a
        """);

    /// <summary>Server SYN-ACK [2001:2::2]:18080 > [2001:2::1]:49406, flow label 0x152a3, seq 3444774278,
    /// ack 418427410, win 64260, options [mss 1440,sackOK,TS val 2898028185 ecr 1508422117,nop,wscale 10].
    /// TCP cksum 0x3854 correct.</summary>
    public static byte[] SynAck => LinuxCaptures.Hex("""
        600152a300280640200100020000000000000000000000022001000200000000000000000000000146a0c0fecd531586
        18f0b212a012fb0438540000020405a00402080aacbc669959e8b1e50103030a
        """);

    /// <summary>Client data [P.] seq 418427410, ack 3444774279, win 64, [nop,nop,TS val 1508422118 ecr 2898028185],
    /// 89 bytes "GET /data.txt HTTP/1.1 ... Host: [2001:2::2]:18080 ...". TCP cksum 0x6751 correct.</summary>
    public static byte[] HttpGet => LinuxCaptures.Hex("""
        6005dba9007906402001000200000000000000000000000120010002000000000000000000000002c0fe46a018f0b212
        cd53158780180040675100000101080a59e8b1e6acbc6699474554202f646174612e74787420485454502f312e310d0a
        486f73743a205b323030313a323a3a325d3a31383038300d0a557365722d4167656e743a206375726c2f372e38382e31
        0d0a4163636570743a202a2f2a0d0a0d0a
        """);

    /// <summary>Server FIN [F.] seq 3444778520, ack 418427499, win 63, [nop,nop,TS val 2898028191 ecr 1508422123].
    /// TCP cksum 0x50de correct.</summary>
    public static byte[] Fin => LinuxCaptures.Hex("""
        600152a300200640200100020000000000000000000000022001000200000000000000000000000146a0c0fecd532618
        18f0b26b8011003f50de00000101080aacbc669f59e8b1eb
        """);

    /// <summary>ping -6 -c1 -p 54756e537461636b 2001:2::2 from 2001:2::1: echo request id 9923 seq 1, 56 data
    /// bytes (8-byte timestamp, 8 zero bytes, then "TunStack" repeated), flow label 0x6d4f0.</summary>
    public static byte[] EchoRequest => LinuxCaptures.Hex("""
        6006d4f000403a4020010002000000000000000000000001200100020000000000000000000000028000908c26c30001
        67080f6b0000000008cc04000000000054756e537461636b54756e537461636b54756e537461636b54756e537461636b
        54756e537461636b
        """);

    /// <summary>Linux's echo reply to <see cref="EchoRequest"/>: hop limit 64, flow label 0xcd6a2, ICMPv6 type 129.</summary>
    public static byte[] EchoReply => LinuxCaptures.Hex("""
        600cd6a200403a40200100020000000000000000000000022001000200000000000000000000000181008f8c26c30001
        67080f6b0000000008cc04000000000054756e537461636b54756e537461636b54756e537461636b54756e537461636b
        54756e537461636b
        """);

    /// <summary>A router (2001:2::2, forwarding onto a link with MTU 1280) to 2001:2::1: Packet Too Big, MTU 1280,
    /// quoting 1232 bytes of a 1448-byte echo request to 2001:2:0:1::2 (ping -6 -s 1400 -M do). 1280 bytes.</summary>
    public static byte[] PacketTooBig => LinuxCaptures.Hex("""
        600b8ff704d83a4020010002000000000000000000000002200100020000000000000000000000010200377000000500
        6002bbb005803a402001000200000000000000000000000120010002000000010000000000000002800046ed26c40001
        67080f6b00000000e6f8040000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
        303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f
        606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f
        909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
        c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef
        f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f
        505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f
        808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf
        b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf
        e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
        404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f
        707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f
        a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf
        d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
        303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f
        606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f
        909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf
        c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef
        f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f
        505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f
        808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f
        """);

    /// <summary>The second fragment of a 1608-byte echo request (ping -6 -s 1600 -M dont 2001:2::2): Fragment
    /// header with identification 0xca86be41, offset 1448, M clear; 160 bytes of fragment data.</summary>
    public static byte[] SecondFragment => LinuxCaptures.Hex("""
        6006d4f000a82c4020010002000000000000000000000001200100020000000000000000000000023a0005a8ca86be41
        a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf
        d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
        303132333435363738393a3b3c3d3e3f
        """);
}
