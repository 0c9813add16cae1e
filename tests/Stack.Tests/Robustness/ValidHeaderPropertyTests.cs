using CsCheck;
using TunStack.Fuzz;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Random content inside valid IPv4 and TCP headers with correct checksums — random flags, sequence and
/// acknowledgment numbers near and far from the connection's, a random options area, a random payload, a random
/// urgent pointer — sent to a listener, a closed port and an established connection. Random bytes alone almost
/// never pass the checksums and reach only the parsers; these reach the state machine. Nothing may throw, no
/// internal error may be recorded, every packet sent in reply must be valid, and the stack must still serve.
/// </summary>
public class ValidHeaderPropertyTests
{
    private enum Target { Listener, ClosedPort, Established }

    private sealed record RandomSegment(Target Target, byte Flags, bool SeqNear, int SeqOffset, uint SeqRandom,
        bool AckNear, int AckOffset, uint AckRandom, ushort Window, ushort Urgent, bool OptionsWellFormed, byte[] Options,
        byte[] Payload);

    /// <summary>One option with a correct length: a known kind with its length (SACK with 1-4 blocks) or any other.</summary>
    private static readonly Gen<byte[]> WellFormedOption =
        Gen.Select(Gen.OneOf<byte>(2, 3, 4, 5, 8, 30, 34, 254), Gen.Int[1, 4], Gen.Byte.Array[0, 6], Gen.Byte.Array[34],
            (kind, blocks, other, random) =>
            {
                int bodyLength = kind switch { 2 => 2, 3 => 1, 4 => 0, 5 => 8 * blocks, 8 => 8, _ => other.Length };
                byte[] option = [kind, (byte)(2 + bodyLength), .. random[..bodyLength]];
                return option;
            });

    /// <summary>A well-formed options area (true) most of the time, else raw random bytes for the parser (false).</summary>
    private static readonly Gen<(bool WellFormed, byte[] Area)> OptionsArea =
        Gen.Frequency(
            (3, WellFormedOption.Array[0, 5].Select(options =>
            {
                var area = new List<byte>();
                foreach (var option in options)
                    if (area.Count + option.Length <= TcpPacketBuilder.MaxOptionsLength) area.AddRange(option);
                return (true, area.ToArray());
            })),
            (1, Gen.Byte.Array[0, TcpPacketBuilder.MaxOptionsLength].Select(bytes => (false, bytes))));

    private static readonly Gen<RandomSegment> Segment =
        Gen.Select(
            Gen.Select(Gen.Enum<Target>(), Gen.Byte, Gen.Bool, Gen.Int[-70_000, 70_000], Gen.UInt),
            Gen.Select(Gen.Bool, Gen.Int[-70_000, 70_000], Gen.UInt, Gen.UShort, Gen.UShort),
            Gen.Select(OptionsArea, Gen.Byte.Array[0, 1400]),
            (a, b, c) => new RandomSegment(a.Item1, a.Item2, a.Item3, a.Item4, a.Item5,
                b.Item1, b.Item2, b.Item3, b.Item4, b.Item5, c.Item1.WellFormed, c.Item1.Area, c.Item2));

    [Fact]
    public void Random_content_in_valid_headers_never_breaks_the_stack()
    {
        Segment.Array[1, 25].Sample(script =>
        {
            var target = new TargetStack();
            var (c, tcb) = target.Connect();
            Assert.Equal(3000, tcb.Send(new byte[3000])); // something in flight, so ACKs mean something
            target.Peer.Poll();
            ushort nextListenerPort = 41000;
            long segmentsBefore = target.Counters.SegmentsReceived;
            foreach (var s in script)
            {
                bool toConnection = s.Target == Target.Established;
                uint seqBase = toConnection && tcb.State != TcpState.Closed ? tcb.RcvNxt.Value : 1_000_000;
                uint ackBase = toConnection && tcb.State != TcpState.Closed ? tcb.SndNxt.Value : 2_000_000;
                var packet = new TcpPacketBuilder
                {
                    Source = Tests.Tcp.ScriptedPeer.PeerAddress,
                    Destination = Tests.Tcp.ScriptedPeer.StackAddress,
                    SourcePort = s.Target switch
                    {
                        Target.Established => c.ClientPortNumber,
                        Target.Listener => nextListenerPort++,
                        _ => TargetStack.AttackerPort,
                    },
                    DestinationPort = s.Target == Target.ClosedPort ? TargetStack.ClosedPort : TargetStack.ListenPort,
                    Seq = s.SeqNear ? seqBase + (uint)s.SeqOffset : s.SeqRandom,
                    Ack = s.AckNear ? ackBase + (uint)s.AckOffset : s.AckRandom,
                    Flags = (TcpFlags)s.Flags,
                    Window = s.Window,
                    UrgentPointer = s.Urgent,
                    Options = s.Options,
                    Payload = s.Payload,
                }.Build();

                target.Stack.Receive(packet, target.Peer.Now);
                target.Peer.Now += 20_000;
                target.Stack.Poll(target.Peer.Now);
                while (target.Stack.Transmit.TryDequeue(out var reply))
                {
                    WireHarness.CheckOutgoing(reply.Span);
                    target.Stack.Transmit.Return(reply);
                }
                Assert.Null(target.Counters.LastInternalError);
                tcb.Receive(new byte[4096]);
            }
            // Every segment with well-formed options got past the parsers to TCP's demultiplexing and state machine.
            Assert.True(target.Counters.SegmentsReceived - segmentsBefore >= script.Count(s => s.OptionsWellFormed));
            target.AssertStillServes();
        }, iter: 1500, threads: 1);
    }
}
