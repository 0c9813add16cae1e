using TunStack.Diagnostics;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Diagnostics;

public class TextTracerTests
{
    [Fact]
    public void Handshake_data_and_close_read_like_a_textbook_trace()
    {
        var output = new StringWriter();
        var peer = new ScriptedPeer();
        peer.Stack.Tracer = new TextTracer(output);
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish(new TcpOptions { Mss = 1460, WindowScale = 7 });
        c.SendData("GET"u8);
        tcb.Send("OK"u8);
        tcb.Close();
        peer.Poll();

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Collection(lines,
            l => Assert.Matches(@"in  198\.18\.0\.1:40000 > 198\.18\.0\.2:80 S +seq 0 win 65535 len 0 \[mss 1460,wscale 7\]  LISTEN -> SYN-RECEIVED$", l),
            // Our shift is the smallest that lets the field express the 64 KiB buffer: 1.
            l => Assert.Matches(@"out 198\.18\.0\.2:80 > 198\.18\.0\.1:40000 S\. +seq 0 ack 1 win 65535 len 0 \[mss 1460,wscale 1\]  SYN-RECEIVED$", l),
            l => Assert.Matches(@"in  198\.18\.0\.1:40000 > 198\.18\.0\.2:80 \. +seq 1 ack 1 win 65535 len 0  SYN-RECEIVED -> ESTABLISHED$", l),
            // The ACK of the request is delayed (RFC 9293 §3.8.6.3) and rides on the answer.
            l => Assert.Matches(@"in  .* P\. +seq 1 ack 1 win 65535 len 3  ESTABLISHED$", l),
            l => Assert.Matches(@"-- .* close\(\)  ESTABLISHED -> FIN-WAIT-1$", l),
            l => Assert.Matches(@"out .* FP\. +seq 1 ack 4 win \d+ len 2  FIN-WAIT-1$", l));
    }

    [Fact]
    public void Reset_to_a_closed_port_is_shown_with_absolute_numbers()
    {
        var output = new StringWriter();
        var peer = new ScriptedPeer();
        peer.Stack.Tracer = new TextTracer(output);
        peer.Send(40000, 81, 777, 0, TcpFlags.Syn);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Matches(@"in  198\.18\.0\.1:40000 > 198\.18\.0\.2:81 S +seq 777 win 65535 len 0 \[\]  dropped: NoListener  CLOSED$", lines[0]);
        Assert.Matches(@"out 198\.18\.0\.2:81 > 198\.18\.0\.1:40000 R\. +seq 0 ack 778 win 0 len 0  CLOSED$", lines[1]);
    }
}
