using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Segments from addresses no real peer can have: our own address (LAND, where source and destination are the same
/// address and port), broadcast, multicast, "this network" and loopback. RFC 1122 §3.2.1.3: "A host MUST silently
/// discard an incoming datagram containing an IP source address that is invalid by the rules of this section";
/// §4.2.3.10: "An incoming SYN with an invalid source address must be ignored either by TCP or by the IP layer".
/// Such a SYN must create no connection, and no RST or SYN-ACK may go to a broadcast or multicast address (which
/// would make the stack an amplifier) or to itself (which loops, the LAND attack).
/// </summary>
public class SourceAddressTests
{
    public static TheoryData<string> InvalidSources() => new()
    {
        "255.255.255.255", // limited broadcast (RFC 1122 §3.2.1.3 (c))
        "198.18.0.255",    // the broadcast address of the link's 198.18.0.0/24 (§3.2.1.3 (d)); see the note below
        "224.0.0.1",       // multicast (§3.2.1.3: a multicast address is never a source)
        "239.255.255.250", // multicast
        "0.0.0.0",         // "this host", allowed only while booting (§3.2.1.3 (a))
        "0.1.2.3",         // "this network" (§3.2.1.3 (b))
        "127.0.0.1",       // loopback: never seen on a real interface (§3.2.1.3 (g))
        "198.18.0.2",      // ourselves
    };

    // Note on 198.18.0.255: NetStackOptions knows the stack's address but not the link's prefix length, so the
    // stack cannot tell a subnet broadcast yet; the host configures the link as a /24 (run-linux.sh, StackHost).

    [Theory]
    [MemberData(nameof(InvalidSources))]
    public void Syn_from_an_invalid_source_creates_no_connection_and_gets_no_answer(string source)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn).With(p => p.Source = IpAddress.Parse(source)).Build();
        target.AssertDropped(packet, DropReason.BadSourceAddress);
        target.AssertStillServes();
    }

    [Theory]
    [MemberData(nameof(InvalidSources))]
    public void Segment_from_an_invalid_source_to_a_closed_port_gets_no_reset(string source)
    {
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn, destinationPort: TargetStack.ClosedPort)
            .With(p => p.Source = IpAddress.Parse(source)).Build();
        target.AssertDropped(packet, DropReason.BadSourceAddress);
        Assert.Equal(0, target.Counters.ResetsSent);
        target.AssertStillServes();
    }

    [Theory]
    [InlineData(TargetStack.ListenPort)]
    [InlineData(TargetStack.ClosedPort)]
    public void Land_source_equal_to_destination_is_dropped(int port)
    {
        // The LAND attack: SYN from 198.18.0.2:port to 198.18.0.2:port. A stack that accepts it answers itself.
        var target = new TargetStack();
        var packet = TargetStack.Packet(TcpFlags.Syn, destinationPort: (ushort)port, sourcePort: (ushort)port)
            .With(p => p.Source = ScriptedPeer.StackAddress).Build();
        target.AssertDropped(packet, DropReason.BadSourceAddress);
        Assert.Empty(target.Stack.Connections);
        target.AssertStillServes();
    }

    [Fact]
    public void Land_replies_fed_back_do_not_storm()
    {
        // If a LAND SYN is ever answered, the answer, looped back by a router, must not start an endless exchange.
        var target = new TargetStack();
        var pending = new Queue<byte[]>();
        pending.Enqueue(TargetStack.Packet(TcpFlags.Syn, sourcePort: TargetStack.ListenPort)
            .With(p => p.Source = ScriptedPeer.StackAddress).Build());
        int exchanged = 0;
        while (pending.TryDequeue(out var packet) && exchanged < 1000)
        {
            exchanged++;
            target.Stack.Receive(packet, target.Peer.Now);
            target.Stack.Poll(target.Peer.Now);
            while (target.Stack.Transmit.TryDequeue(out var reply))
            {
                if (ScriptedPeer.Parse(reply.Span).Destination == ScriptedPeer.StackAddress)
                    pending.Enqueue(reply.Span.ToArray());
                target.Stack.Transmit.Return(reply);
            }
        }
        Assert.InRange(exchanged, 1, 3);
        target.AssertStillServes();
    }
}
