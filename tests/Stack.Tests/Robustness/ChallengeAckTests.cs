using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Robustness;

/// <summary>
/// A storm of in-window RSTs and SYNs against one connection. Each deserves a challenge ACK (RFC 5961 §3.2, §4.2),
/// but RFC 5961 §7: "An implementation SHOULD include an ACK throttling mechanism to be conservative". The limit
/// must be per connection: a global one (Linux before 4.7) lets an off-path attacker count the challenge ACKs of
/// other connections and infer their sequence numbers (CVE-2016-5696). Linux now answers at most one per 500 ms
/// per connection (net.ipv4.tcp_invalid_ratelimit); these tests allow up to 10 per second.
/// </summary>
public class ChallengeAckTests
{
    private const int StormSize = 1000;
    private const long StormMicros = 1_000_000; // the storm lasts one second
    private const int MaxChallengeAcksPerSecond = 10;

    private static int Storm(TargetStack target, Tests.Tcp.ScriptedConnection c, TcpFlags flags)
    {
        int acks = 0;
        for (int i = 0; i < StormSize; i++)
        {
            // In the window, never exactly RCV.NXT: each one is a blind guess that must not reset anything.
            var replies = c.Send(c.ClientNxt + 1 + (uint)i * 13, 0, flags);
            foreach (var r in replies)
            {
                Assert.Equal(TcpFlags.Ack, r.Flags);
                Assert.Equal(c.ClientNxt, r.Ack);
                acks++;
            }
            target.Peer.Now += StormMicros / StormSize;
        }
        return acks;
    }

    [Theory]
    [InlineData(TcpFlags.Rst)]
    [InlineData(TcpFlags.Rst | TcpFlags.Ack)]
    [InlineData(TcpFlags.Syn)]
    public void Challenge_acks_are_rate_limited_per_connection(TcpFlags flags)
    {
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        int acks = Storm(target, c, flags);
        Assert.Equal(TcpState.Established, tcb.State);
        Assert.InRange(acks, 1, MaxChallengeAcksPerSecond);
        target.AssertStillServes();
    }

    [Fact]
    public void A_storm_on_one_connection_does_not_silence_another()
    {
        var target = new TargetStack();
        var (attacked, _) = target.Connect();
        var (other, otherTcb) = target.Connect();
        Storm(target, attacked, TcpFlags.Rst);
        var challenge = Assert.Single(other.Send(other.ClientNxt + 100, 0, TcpFlags.Rst));
        Assert.Equal(TcpFlags.Ack, challenge.Flags);
        Assert.Equal(other.ClientNxt, challenge.Ack);
        Assert.Equal(TcpState.Established, otherTcb.State);
        target.AssertStillServes();
    }

    [Fact]
    public void After_a_storm_an_exact_reset_still_resets()
    {
        var target = new TargetStack();
        var (c, tcb) = target.Connect();
        Storm(target, c, TcpFlags.Rst);
        Assert.Empty(c.Send(c.ClientNxt, 0, TcpFlags.Rst));
        Assert.Equal(TcpState.Closed, tcb.State);
        target.AssertStillServes();
    }
}
