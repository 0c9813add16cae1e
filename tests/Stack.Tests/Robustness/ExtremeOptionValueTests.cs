using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Well-formed options with values at or past their limits (MSS 0, 1 and 65535; window scale 15 and 255; SACK
/// blocks outside the window) and the urgent pointer at its extremes: the connection works, the data arrives
/// exactly once and in order, and the stack still serves afterwards.
/// </summary>
public class ExtremeOptionValueTests
{
    /// <summary>Sends <paramref name="count"/> bytes from the application, ACKs every segment, returns the segments.</summary>
    private static List<Seg> TransferToPeer(ScriptedConnection c, Tcb tcb, int count)
    {
        var data = Enumerable.Range(0, count).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(count, tcb.Send(data));
        var received = new List<byte>();
        var segments = new List<Seg>();
        var pending = c.Peer.Poll();
        for (int rounds = 0; pending.Count > 0 && rounds < 10_000; rounds++)
        {
            foreach (var seg in pending)
            {
                Assert.Equal(c.ServerNxt, seg.Seq); // in order, nothing resent
                Assert.NotEmpty(seg.Payload);
                received.AddRange(seg.Payload);
                c.ServerNxt += (uint)seg.Payload.Length;
                segments.Add(seg);
            }
            pending = c.SendAck();
        }
        Assert.Equal(data, received.ToArray());
        Assert.Equal(tcb.SndMax, tcb.SndUna);
        return segments;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void Mss_0_or_1_is_raised_to_a_floor_and_data_still_flows(int mss)
    {
        // RFC 9293 §3.7.1 sets no minimum, but a segment must carry data: an MSS of 0 taken literally would stall
        // the connection, and 1 byte per segment is a resource attack (CVE-2019-11479). Linux raises the peer's MSS
        // to 48 (net.ipv4.tcp_min_snd_mss); anything from 48 to the default 536 (MUST-15) is sane.
        var target = new TargetStack();
        var (c, tcb) = target.Connect(new TcpOptions { Mss = (ushort)mss });
        var segments = TransferToPeer(c, tcb, 3000);
        int size = segments[0].Payload.Length;
        Assert.InRange(size, 48, 536);
        Assert.All(segments[..^1], s => Assert.Equal(size, s.Payload.Length));
        Assert.Equal((3000 + size - 1) / size, segments.Count);
        target.AssertStillServes();
    }

    [Fact]
    public void Mss_65535_is_capped_by_our_own_mss()
    {
        // RFC 9293 §3.7.1: the effective send MSS is min(SendMSS, MMS_S - 20): our MTU 1500 allows 1460.
        var target = new TargetStack();
        var (c, tcb) = target.Connect(new TcpOptions { Mss = 65535 });
        var segments = TransferToPeer(c, tcb, 5000);
        Assert.Equal([1460, 1460, 1460, 620], segments.Select(s => s.Payload.Length));
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(15)]
    [InlineData(255)]
    public void Window_scale_above_14_is_treated_as_14(int shift)
    {
        // RFC 7323 §2.3: "If a Window Scale option is received with a shift.cnt value larger than 14, the TCP
        // SHOULD log the error but MUST use 14 instead of the specified value."
        var target = new TargetStack();
        var (c, tcb) = target.Connect(new TcpOptions { Mss = 1460, WindowScale = (byte)shift }, window: 3);
        Assert.Equal(3u << 14, tcb.SndWnd);
        Assert.Empty(c.SendAck(window: 1));
        Assert.Equal(1u << 14, tcb.SndWnd);
        var segments = TransferToPeer(c, tcb, 20_000);
        Assert.Equal(20_000, segments.Sum(s => s.Payload.Length));
        target.AssertStillServes();
    }

    [Fact]
    public void Window_scale_on_a_non_syn_segment_is_ignored()
    {
        // RFC 7323 §2.2: the option is meaningful only on a SYN; the shift is fixed for the connection.
        var target = new TargetStack();
        var (c, tcb) = target.Connect(new TcpOptions { Mss = 1460, WindowScale = 2 });
        Assert.Empty(c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Ack, default, 1000, new TcpOptions { WindowScale = 14 }));
        Assert.Equal(1000u << 2, tcb.SndWnd);
        target.AssertStillServes();
    }

    [Fact]
    public void Sack_blocks_outside_the_window_are_ignored()
    {
        // SACK was not negotiated (our SYN-ACK carries no SACK-permitted), so SACK options are ignored (RFC 2018 §2);
        // even if it were, blocks outside SND.UNA..SND.NXT must not move anything (RFC 2018 §3, RFC 6675 §5).
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        tcb.NoDelay = true; // all three segments at once, the 80-byte runt included
        Assert.Equal(3000, tcb.Send(new byte[3000]));
        var flight = target.Peer.Poll();
        Assert.Equal([1460, 1460, 80], flight.Select(s => s.Payload.Length));
        uint una = c.ServerNxt, max = c.ServerNxt + 3000;

        byte[] sack = SackOption((max + 100_000, max + 200_000), (una - 5000, una - 1000), (una + 1460, una - 1));
        var ack = TargetStack.Packet(TcpFlags.Ack, c.ClientNxt, una + 1460, sourcePort: c.ClientPortNumber)
            .With(p => p.Options = sack).Build();
        Assert.Empty(target.Inject(ack)); // no retransmission, nothing new to send
        Assert.Equal(una + 1460, tcb.SndUna.Value);
        Assert.Equal(max, tcb.SndMax.Value);

        var all = TargetStack.Packet(TcpFlags.Ack, c.ClientNxt, max, sourcePort: c.ClientPortNumber)
            .With(p => p.Options = SackOption((0, uint.MaxValue))).Build();
        Assert.Empty(target.Inject(all));
        Assert.Equal(max, tcb.SndUna.Value);
        target.AssertStillServes();
    }

    /// <summary>NOP, NOP, then a SACK option with the given blocks (RFC 2018 §3).</summary>
    private static byte[] SackOption(params (uint Left, uint Right)[] blocks)
    {
        var bytes = new byte[4 + 8 * blocks.Length];
        bytes[0] = bytes[1] = TcpOptions.KindNoOperation;
        bytes[2] = TcpOptions.KindSack;
        bytes[3] = (byte)(2 + 8 * blocks.Length);
        for (int i = 0; i < blocks.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 8 * i), blocks[i].Left);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8 + 8 * i), blocks[i].Right);
        }
        return bytes;
    }

    [Theory]
    [InlineData(TcpFlags.Urg, 0)]      // URG with pointer 0 (RFC 6093 §3: urgent data ends before this byte: none)
    [InlineData(TcpFlags.Urg, 0xFFFF)] // urgent data continues far past this segment
    [InlineData(TcpFlags.Urg, 5)]      // exactly the segment
    [InlineData(TcpFlags.None, 3)]     // a pointer without URG: "only significant when URG is set" (RFC 9293 §3.1)
    public void Urgent_data_is_delivered_inline_exactly_once(TcpFlags urg, int urgentPointer)
    {
        // RFC 6093 §5 recommends against new uses of urgent data; this stack delivers it inline (SO_OOBINLINE), so
        // whatever the pointer says, the bytes arrive once, in order, and are acknowledged normally.
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        var packet = TargetStack.Packet(TcpFlags.Ack | TcpFlags.Psh | urg, c.ClientNxt, c.ServerNxt, sourcePort: c.ClientPortNumber)
            .With(p => { p.UrgentPointer = (ushort)urgentPointer; p.Payload = "hello"u8.ToArray(); }).Build();
        Assert.Empty(target.Inject(packet)); // acknowledged normally: the ACK of one small segment is delayed
        var ack = Assert.Single(target.Peer.Advance(40_000));
        Assert.Equal(TcpFlags.Ack, ack.Flags);
        Assert.Equal(c.ClientNxt + 5, ack.Ack);
        c.ClientNxt += 5;
        Assert.Empty(c.SendData(" world"u8));
        var buffer = new byte[32];
        Assert.Equal("hello world", System.Text.Encoding.ASCII.GetString(buffer, 0, tcb.Receive(buffer)));
        target.AssertStillServes();
    }
}
