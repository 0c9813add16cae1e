using System.Security.Cryptography;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Tcp;

/// <summary>
/// Whole transfers over a seeded lossy, reordering path, with time driven explicitly: whatever is lost, the bytes
/// that arrive are exactly the bytes sent, and the transfer always finishes (never stuck).
/// </summary>
public class LossyTransferTests
{
    public static TheoryData<int> Seeds => new() { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Stack_to_peer_transfer_survives_loss(int seed)
    {
        var random = new Random(seed);
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        var data = RandomNumberGenerator.GetBytes(300_000);
        int offered = 0;
        var received = new MemoryStream();
        bool finReceived = false;
        double loss = 0.02 + seed % 4 * 0.04; // 2% .. 14%

        for (int round = 0; round < 20_000 && !finReceived; round++)
        {
            // The application keeps the send buffer full, then closes.
            if (offered < data.Length)
            {
                offered += tcb.Send(data.AsSpan(offered));
                if (offered == data.Length) tcb.Close();
            }
            var segments = peer.Poll();
            if (segments.Count == 0)
            {
                // Nothing in flight survived: let the retransmission timer fire.
                segments = peer.Advance(tcb.CurrentRtoMicros);
            }
            foreach (var seg in segments)
            {
                if (random.NextDouble() < loss) continue; // lost on the way
                if (seg.Seq == c.ServerNxt)
                {
                    received.Write(seg.Payload);
                    c.ServerNxt += (uint)seg.Payload.Length;
                    if (seg.Flags.HasFlag(TcpFlags.Fin))
                    {
                        c.ServerNxt++;
                        finReceived = true;
                    }
                }
                if (random.NextDouble() < loss) continue; // the ACK is lost
                peer.Now += 100;
                c.SendAck();
            }
        }

        Assert.True(finReceived, $"transfer stuck at {received.Length} of {data.Length} bytes");
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Peer_to_stack_transfer_survives_loss_duplication_and_reordering(int seed)
    {
        var random = new Random(seed);
        var peer = new ScriptedPeer();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.Establish();
        var data = RandomNumberGenerator.GetBytes(200_000);
        var app = new MemoryStream();
        var buffer = new byte[8192];
        uint start = c.ClientNxt;
        uint acked = start;
        uint window = 65535;

        for (int round = 0; round < 20_000 && acked - start < data.Length; round++)
        {
            // The peer sends a window's worth from the last acknowledged byte (go-back-N), shuffled, some lost,
            // some duplicated.
            var batch = new List<(uint seq, int offset, int length)>();
            for (uint seq = acked; seq - acked < window && seq - start < data.Length; seq += 1000)
            {
                int offset = (int)(seq - start);
                batch.Add((seq, offset, Math.Min(1000, data.Length - offset)));
            }
            var order = batch.OrderBy(_ => random.Next()).ToList();
            if (random.NextDouble() < 0.3 && order.Count > 0) order.Add(order[0]);
            foreach (var (seq, offset, length) in order)
            {
                if (random.NextDouble() < 0.1) continue;
                foreach (var reply in c.Send(seq, c.ServerNxt, TcpFlags.Ack, data.AsSpan(offset, length)))
                {
                    if (new SeqNumber(reply.Ack) > new SeqNumber(acked)) acked = reply.Ack;
                    window = reply.Window;
                }
            }
            // The application reads whatever is there.
            int n;
            while ((n = tcb.Receive(buffer)) > 0) app.Write(buffer, 0, n);
            foreach (var reply in peer.Poll())
            {
                if (new SeqNumber(reply.Ack) > new SeqNumber(acked)) acked = reply.Ack;
                window = Math.Max(reply.Window, (ushort)1000);
            }
            peer.Now += 1000;
        }

        Assert.Equal(data.Length, (int)(acked - start));
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(app.ToArray()));
    }
}
