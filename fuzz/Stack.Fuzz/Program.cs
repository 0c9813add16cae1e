using System.Security.Cryptography;
using SharpFuzz;
using TunStack.Fuzz;
using TunStack.Tests.Wire;
using TunStack.Wire;

// The fuzzing entry point (run under afl-fuzz by ./run-linux.sh fuzz) and its helpers:
//   TunStack.Fuzz wire|engine                  one harness over stdin; AFL's fork server when run by afl-fuzz
//   TunStack.Fuzz replay wire|engine|both PATH... every file (directories recursively) through the harness(es)
//   TunStack.Fuzz seeds OUT-DIR [CAPTURE.pcap...] write the seed corpus: OUT-DIR/wire and OUT-DIR/engine
return args switch
{
    ["wire"] => Fuzz(input => WireHarness.Run(input)),
    ["engine"] => Fuzz(input => EngineHarness.Run(input)),
    ["replay", var which, .. var paths] when paths.Length > 0 => Replay(which, paths),
    ["seeds", var outDir, .. var captures] => Seeds(outDir, captures),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        Usage:
          TunStack.Fuzz wire|engine                     run one harness on stdin (under afl-fuzz: the fork server)
          TunStack.Fuzz replay wire|engine|both PATH... replay files or directories; exit 1 on any failure
          TunStack.Fuzz seeds OUT-DIR [CAPTURE.pcap...] write seed inputs to OUT-DIR/wire and OUT-DIR/engine
        """);
    return 2;
}

static int Fuzz(Action<byte[]> harness)
{
    var buffer = new MemoryStream();
    Fuzzer.Run(stream =>
    {
        buffer.SetLength(0);
        stream.CopyTo(buffer);
        harness(buffer.ToArray());
    });
    return 0;
}

static int Replay(string which, string[] paths)
{
    // TUNSTACK_FUZZ_TRACE=1 prints the engine harness's segments, tcpdump-like, while replaying.
    if (Environment.GetEnvironmentVariable("TUNSTACK_FUZZ_TRACE") == "1")
        EngineHarness.TraceTo = Console.Out;
    var harnesses = new List<(string Name, Action<byte[]> Run)>();
    if (which is "wire" or "both") harnesses.Add(("wire", input => WireHarness.Run(input)));
    if (which is "engine" or "both") harnesses.Add(("engine", input => EngineHarness.Run(input)));
    if (harnesses.Count == 0) return Usage();

    int failures = 0, files = 0;
    foreach (string file in paths.SelectMany<string, string>(p => Directory.Exists(p)
                 ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories).Order()
                 : [p]))
    {
        files++;
        byte[] input = File.ReadAllBytes(file);
        foreach (var (name, run) in harnesses)
        {
            try
            {
                run(input);
            }
            catch (Exception e)
            {
                failures++;
                Console.WriteLine($"FAIL {name} {file}\n{e}\n");
            }
        }
    }
    Console.WriteLine($"{files} files, {failures} failures");
    return failures == 0 ? 0 : 1;
}

static int Seeds(string outDir, string[] captures)
{
    string wireDir = Path.Combine(outDir, "wire"), engineDir = Path.Combine(outDir, "engine");
    Directory.CreateDirectory(wireDir);
    Directory.CreateDirectory(engineDir);
    int wire = 0, engine = 0;

    void Write(string dir, string prefix, byte[] bytes, ref int count)
    {
        // Named by content, so running this twice or over overlapping captures adds nothing twice.
        string name = $"{prefix}-{Convert.ToHexStringLower(SHA256.HashData(bytes))[..12]}";
        string path = Path.Combine(dir, name);
        if (File.Exists(path)) return;
        File.WriteAllBytes(path, bytes);
        count++;
    }

    foreach (var (name, packet) in new[]
             {
                 ("syn", LinuxCaptures.Syn), ("synack", LinuxCaptures.SynAck), ("get", LinuxCaptures.HttpGet),
                 ("data", LinuxCaptures.FullSizeData), ("fin", LinuxCaptures.Fin), ("echo", LinuxCaptures.EchoRequest),
                 ("echoreply", LinuxCaptures.EchoReply),
             })
        Write(wireDir, $"linux-{name}", packet, ref wire);

    foreach (var (name, packet) in new[]
             {
                 ("syn", LinuxIpv6Captures.Syn), ("synack", LinuxIpv6Captures.SynAck), ("get", LinuxIpv6Captures.HttpGet),
                 ("fin", LinuxIpv6Captures.Fin), ("echo", LinuxIpv6Captures.EchoRequest), ("echoreply", LinuxIpv6Captures.EchoReply),
                 ("ptb", LinuxIpv6Captures.PacketTooBig), ("mld", LinuxIpv6Captures.MldReport),
                 ("rs", LinuxIpv6Captures.RouterSolicitation), ("fragment", LinuxIpv6Captures.SecondFragment),
             })
        Write(wireDir, $"linux6-{name}", packet, ref wire);
    foreach (var (name, packet) in Ipv6Seeds.All())
        Write(wireDir, $"ipv6-{name}", packet, ref wire);

    foreach (string capture in captures)
    {
        var packets = PcapReader.ReadIpv4Packets(capture);
        string stem = Path.GetFileNameWithoutExtension(capture);
        foreach (var p in packets)
            Write(wireDir, stem, p.Packet, ref wire);
        // The server is whoever answers the first SYN: the destination of the first packet with SYN alone.
        foreach (var p in packets)
        {
            if (!Ipv4Packet.TryParse(p.Packet, out var ip, out _) || ip.Protocol != IpProtocol.Tcp
                || !TcpSegment.TryParse(ip.Payload, out var seg, out _) || (seg.Flags & (TcpFlags.Syn | TcpFlags.Ack)) != TcpFlags.Syn)
                continue;
            Write(engineDir, stem, CaptureSeeds.ToEngineInput(packets, ip.Destination, EngineConfig.Default), ref engine);
            Write(engineDir, stem + "-small", CaptureSeeds.ToEngineInput(packets, ip.Destination,
                EngineConfig.Default with { ReceiveBufferSize = 1024, SendBufferSize = 1024, Mtu = 576, Trace = true }), ref engine);
            // The same session over IPv6: the records carry no addresses, so only the config changes.
            Write(engineDir, stem + "-ipv6", CaptureSeeds.ToEngineInput(packets, ip.Destination, EngineConfig.Default with { Ipv6 = true }), ref engine);
            break;
        }
    }

    foreach (var (name, input) in EngineScripts.All())
    {
        Write(engineDir, $"script-{name}", input, ref engine);
        // And over IPv6: bit 6 of the second config byte (EngineConfig.From).
        byte[] ipv6 = [.. input];
        ipv6[1] |= 0x40;
        Write(engineDir, $"script6-{name}", ipv6, ref engine);
    }

    Console.WriteLine($"{wire} wire seeds in {wireDir}, {engine} engine seeds in {engineDir}");
    return 0;
}
