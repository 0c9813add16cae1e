using CsCheck;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>Bad input never crashes the stack and never breaks its invariants.</summary>
public class RobustnessTests
{
    [Fact]
    public void Arbitrary_bytes_never_throw()
    {
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        Gen.Byte.Array[0, 120].Sample(bytes =>
        {
            peer.Stack.Receive(bytes, peer.Now);
            peer.Poll();
        }, iter: 20_000, threads: 1); // one stack, one thread: the engine is single-threaded by design
        Assert.Equal(20_000, peer.Stack.Counters.PacketsReceived);
        Assert.Null(peer.Stack.Counters.LastInternalError);
    }

    [Fact]
    public void Arbitrary_valid_segments_against_an_established_connection_keep_invariants()
    {
        var flags = Gen.Byte.Select(b => (TcpFlags)b);
        var segment = Gen.Select(Gen.UInt, Gen.UInt, flags, Gen.UShort, Gen.Byte.Array[0, 40], Gen.Int[-3000, 3000]);
        segment.Array[1, 30].Sample(script =>
        {
            var peer = new ScriptedPeer();
            peer.Stack.Listen(80);
            var c = new ScriptedConnection(peer);
            var tcb = c.Establish();
            tcb.Send(new byte[5000]);
            peer.Poll();
            foreach (var (seq, ack, f, window, payload, near) in script)
            {
                // Half the segments are near the real sequence numbers, so they get past the acceptability test.
                uint s = near % 2 == 0 ? c.ClientNxt + (uint)near : seq;
                uint a = near % 3 == 0 ? c.ServerNxt + (uint)(near / 2) : ack;
                c.Send(s, a, f, payload, window);
                peer.Advance(50_000);
                tcb.Receive(new byte[100]);

                // Invariants of RFC 9293 §3.3.1: SND.UNA ≤ SND.NXT ≤ SND.MAX, bounded buffers.
                Assert.True(tcb.SndUna <= tcb.SndNxt && tcb.SndNxt <= tcb.SndMax);
                Assert.InRange(tcb.BytesQueued, 0, 65536);
                Assert.InRange(tcb.BytesAvailable, 0, 65536);
                if (tcb.State == TcpState.Closed) break;
            }
            Assert.Null(peer.Stack.Counters.LastInternalError);
        }, iter: 2_000);
    }
}
