using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// A peer that shrinks its window below data already in flight. RFC 9293 §3.8.6.2.1 / RFC 1122 §4.2.2.16: "A TCP
/// sender MUST be robust against window shrinking, which may cause the 'usable window' to become negative": no
/// new data goes past the new right edge, nothing breaks, and sending resumes from the right place when the window
/// opens again.
/// </summary>
public class PeerWindowTests
{
    private static readonly byte[] Data = Enumerable.Range(0, 20_000).Select(i => (byte)(i % 251)).ToArray();

    private static (TargetStack Target, ScriptedConnection C, Tcb Tcb, uint Start) SendWithFirstFlight()
    {
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        Assert.Equal(Data.Length, tcb.Send(Data));
        var flight = target.Peer.Poll();
        Assert.Equal(10, flight.Count); // the initial window: 10 segments (RFC 6928)
        return (target, c, tcb, c.ServerNxt);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    [InlineData(2920)]
    public void Window_shrunk_below_the_flight_sends_nothing_new(int window)
    {
        var (target, c, tcb, start) = SendWithFirstFlight();
        // The peer acknowledges one segment and offers a window whose right edge lies inside what is in flight.
        Assert.Empty(c.SendAck(start + 1460, (ushort)window));
        Assert.Equal(start + 1460, tcb.SndUna.Value);
        Assert.Equal(start + 14_600, tcb.SndMax.Value);
        Assert.Equal((uint)window, tcb.SndWnd);
        Assert.Null(target.Counters.LastInternalError);

        // The window opens again with everything acknowledged: the rest follows, from exactly where it stopped.
        var rest = c.SendAck(start + 14_600, 65535);
        Assert.NotEmpty(rest);
        Assert.Equal(start + 14_600, rest[0].Seq);
        var received = new List<byte>(Data[..14_600]);
        uint next = start + 14_600;
        while (rest.Count > 0)
        {
            foreach (var seg in rest)
            {
                Assert.Equal(next, seg.Seq);
                received.AddRange(seg.Payload);
                next += (uint)seg.Payload.Length;
            }
            rest = c.SendAck(next, 65535);
        }
        Assert.Equal(Data, received.ToArray());
        target.AssertStillServes();
    }

    [Fact]
    public void Window_shrunk_to_zero_is_probed_then_reopened()
    {
        var (target, c, tcb, start) = SendWithFirstFlight();
        // Everything in flight is acknowledged but the window closes: 5400 bytes wait.
        Assert.Empty(c.SendAck(start + 14_600, 0));
        Assert.Equal(0u, tcb.SndWnd);
        // The persist timer probes (RFC 9293 §3.8.6.1) with a segment that occupies no sequence space (SEQ = SND.UNA - 1,
        // no text, as Linux does): the peer must answer with its window, and nothing is sent past the data.
        var probe = Assert.Single(target.Peer.Advance(tcb.CurrentRtoMicros));
        Assert.Equal(start + 14_600 - 1, probe.Seq);
        Assert.Empty(probe.Payload);
        // The peer opens the window without having taken the probe byte. Whether the stack resends that byte at
        // once or after a timeout, every byte arrives, in order, and nothing is sent past the data.
        var received = new List<byte>(Data[..14_600]);
        uint next = start + 14_600;
        var segments = c.SendAck(next, 65535);
        for (int round = 0; round < 100 && received.Count < Data.Length; round++)
        {
            foreach (var seg in segments)
            {
                // An in-order receiver: keeps what continues its stream, drops the rest.
                int skip = (int)(next - seg.Seq);
                if (skip >= 0 && skip < seg.Payload.Length)
                {
                    received.AddRange(seg.Payload[skip..]);
                    next += (uint)(seg.Payload.Length - skip);
                }
            }
            segments = c.SendAck(next, 65535);
            if (segments.Count == 0 && received.Count < Data.Length)
                segments = target.Peer.Advance(tcb.CurrentRtoMicros);
        }
        Assert.Equal(Data, received.ToArray());
        Assert.Equal(tcb.SndMax, tcb.SndUna);
        target.AssertStillServes();
    }
}
