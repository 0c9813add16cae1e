using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Diagnostics;

/// <summary>
/// The <c>TunStack</c> meter, read through a <see cref="System.Diagnostics.Metrics.MeterListener"/> as dotnet-counters
/// reads it, across scripted connections: every instrument moves by exactly what the segments say.
/// </summary>
public class StackMetricsTests
{
    [Fact]
    public void Metrics_follow_a_connection_from_the_handshake_to_the_close()
    {
        var peer = new ScriptedPeer();
        using var metrics = new StackMetrics(peer.Stack);
        using var reader = new MeterReader(metrics.Meter);
        peer.Stack.Listen(80);
        reader.Collect();
        Assert.Equal(0, reader.Value("tunstack.tcp.segments"));
        Assert.Equal(0, reader.Value("tunstack.tcp.connections"));

        // The handshake: SYN in, SYN-ACK out, ACK in 12.5 ms later — one RTT sample of 12.5 ms.
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, rttMicros: 12_500); // without SACK no loss probe comes before the RTO
        reader.Collect();
        Assert.Equal(2, reader.Value("tunstack.tcp.segments", "direction", "in"));
        Assert.Equal(1, reader.Value("tunstack.tcp.segments", "direction", "out"));
        Assert.Equal(1, reader.Value("tunstack.tcp.opens", "kind", "passive"));
        Assert.Equal(0, reader.Value("tunstack.tcp.opens", "kind", "active"));
        Assert.Equal(1, reader.Value("tunstack.tcp.handshakes"));
        Assert.Equal(1, reader.Value("tunstack.tcp.connections", "state", "ESTABLISHED"));
        Assert.Equal(1, reader.Value("tunstack.tcp.connections"));
        Assert.Equal([12.5], reader.Recorded("tunstack.tcp.rtt"));

        // 100 bytes in: one packet of 20 (IPv4) + 20 (TCP) + 12 (timestamps) + 100 bytes.
        long bytesIn = reader.Value("tunstack.ip.bytes", "direction", "in");
        long bytesOut = reader.Value("tunstack.ip.bytes", "direction", "out");
        c.SendData(ScriptedConnection.Pattern(0, 100));
        ScriptedConnection.ReadAll(tcb);
        int length = 2 * tcb.MaxPayload; // two full segments (a third, smaller one would wait for Nagle)
        tcb.Send(ScriptedConnection.Pattern(0, length));
        var sent = peer.Poll();
        Assert.Equal(2, sent.Count);
        c.ServerNxt += (uint)length;
        reader.Collect();
        Assert.Equal(bytesIn + 152, reader.Value("tunstack.ip.bytes", "direction", "in"));
        Assert.Equal(bytesOut + sent.Sum(s => s.PacketLength), reader.Value("tunstack.ip.bytes", "direction", "out"));
        Assert.Equal(3, reader.Value("tunstack.ip.packets", "direction", "in"));
        Assert.Equal(1 + sent.Count, reader.Value("tunstack.ip.packets", "direction", "out"));

        // A corrupted segment is dropped and counted by reason.
        var bad = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, ScriptedConnection.ClientPort, 80,
            c.ClientNxt, c.ServerNxt, TcpFlags.Ack, 65535, default, "x"u8);
        bad[^1] ^= 0xff;
        peer.Stack.Receive(bad, peer.Now);
        // The peer acknowledges nothing: the retransmission timer fires and the first segment goes again.
        var retransmitted = peer.Advance(tcb.CurrentRtoMicros);
        Assert.NotEmpty(retransmitted);
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.drops", "reason", nameof(DropReason.BadTcpChecksum)));
        Assert.Equal(1, reader.Value("tunstack.drops"));
        Assert.Equal(tcb.Retransmissions, reader.Value("tunstack.tcp.retransmissions"));
        Assert.True(reader.Value("tunstack.tcp.retransmissions") >= 1);
        Assert.Equal(1, reader.Value("tunstack.tcp.retransmission_timeouts"));

        // The peer acknowledges everything, then closes first: CLOSE-WAIT, LAST-ACK, CLOSED.
        peer.Now += 10_000;
        c.SendAckOf(length);
        c.SendFin();
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.tcp.connections", "state", "CLOSE-WAIT"));
        Assert.Equal(0, reader.Value("tunstack.tcp.connections", "state", "ESTABLISHED"));
        tcb.Close();
        peer.Poll();
        c.ServerNxt++;
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.tcp.connections", "state", "LAST-ACK"));
        c.SendAck();
        reader.Collect();
        Assert.Equal(0, reader.Value("tunstack.tcp.connections"));
        Assert.Equal(1, reader.Value("tunstack.tcp.closes", "reason", "normal"));
        Assert.Equal(0, reader.Value("tunstack.tcp.closes", "reason", "reset"));
        Assert.Equal(peer.Stack.Counters.SegmentsReceived, reader.Value("tunstack.tcp.segments", "direction", "in"));
        Assert.Equal(peer.Stack.Counters.SegmentsSent, reader.Value("tunstack.tcp.segments", "direction", "out"));
    }

    [Fact]
    public void Time_wait_resets_and_active_opens_are_counted()
    {
        var peer = new ScriptedPeer();
        using var metrics = new StackMetrics(peer.Stack);
        using var reader = new MeterReader(metrics.Meter);
        peer.Stack.Listen(80);

        // We close first: the connection leaves the table for a TIME-WAIT record, counted under its state for 2·MSL.
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith();
        c.CloseActivelyToTimeWait(tcb);
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.tcp.connections", "state", "TIME-WAIT"));
        Assert.Equal(1, reader.Value("tunstack.tcp.connections"));
        Assert.Equal(1, reader.Value("tunstack.tcp.closes", "reason", "normal"));
        peer.Advance(2 * peer.Stack.Options.MslMicros);
        reader.Collect();
        Assert.Equal(0, reader.Value("tunstack.tcp.connections"));

        // A RST from the peer, and an active open refused with RST.
        var c2 = new ScriptedConnection(peer, clientPort: 40001);
        c2.EstablishWith();
        c2.Send(c2.ClientNxt, c2.ServerNxt, TcpFlags.Rst);
        var (c3, _, _) = ScriptedConnection.ConnectFromStack(peer, peerPort: 8001);
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.tcp.connections", "state", "SYN-SENT"));
        c3.Send(0, c3.ServerNxt, TcpFlags.Rst | TcpFlags.Ack);
        reader.Collect();
        Assert.Equal(2, reader.Value("tunstack.tcp.resets", "direction", "in"));
        Assert.Equal(0, reader.Value("tunstack.tcp.resets", "direction", "out"));
        Assert.Equal(2, reader.Value("tunstack.tcp.closes", "reason", "reset"));
        Assert.Equal(1, reader.Value("tunstack.tcp.opens", "kind", "active"));
        Assert.Equal(2, reader.Value("tunstack.tcp.handshakes"));
        Assert.Equal(0, reader.Value("tunstack.tcp.connections"));

        // A SYN to a closed port is answered with RST: one out, and a drop (NoListener).
        peer.Send(40002, 81, 1, 0, TcpFlags.Syn);
        reader.Collect();
        Assert.Equal(1, reader.Value("tunstack.tcp.resets", "direction", "out"));
        Assert.Equal(1, reader.Value("tunstack.drops", "reason", nameof(DropReason.NoListener)));
    }

    [Fact]
    public void Disposing_detaches_the_observer_and_removes_the_instruments()
    {
        var peer = new ScriptedPeer();
        var metrics = new StackMetrics(peer.Stack);
        Assert.Same(metrics, peer.Stack.Observer);
        using var reader = new MeterReader(metrics.Meter);
        metrics.Dispose();
        Assert.Null(peer.Stack.Observer);
        peer.Stack.Listen(80);
        new ScriptedConnection(peer).EstablishWith(rttMicros: 1000);
        reader.Collect();
        Assert.Equal(0, reader.Value("tunstack.tcp.handshakes"));
        Assert.Empty(reader.Recorded("tunstack.tcp.rtt"));
    }

    [Fact]
    public void Rtt_samples_reach_a_listener_without_allocating()
    {
        var peer = new ScriptedPeer();
        using var metrics = new StackMetrics(peer.Stack);
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        long samples = 0;
        double lastRtt = -1;
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, metrics.Meter)) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            samples++;
            lastRtt = value;
        });
        listener.Start();
        peer.Stack.Listen(80);
        var c = new ScriptedConnection(peer);
        var tcb = c.EstablishWith(sack: false, timestamps: false);
        tcb.NoDelay = true;
        var stack = peer.Stack;
        stack.Tracer = null; // tracing formats strings; the path itself must not allocate

        // Each round: 100 bytes out, and 2 ms later the ACK of them in, which is an RTT sample of 2 ms.
        const int warm = 50, measured = 50;
        var acks = new byte[warm + measured][];
        for (int i = 0; i < acks.Length; i++)
            acks[i] = ScriptedPeer.BuildPacket(ScriptedPeer.PeerAddress, ScriptedPeer.StackAddress, ScriptedConnection.ClientPort, 80,
                c.ClientNxt, c.ServerNxt + (uint)((i + 1) * 100), TcpFlags.Ack, 65535, default, default);
        var data = new byte[100];
        long now = peer.Now, before = 0, samplesBefore = 0;
        for (int i = 0; i < acks.Length; i++)
        {
            if (i == warm)
            {
                samplesBefore = samples;
                before = GC.GetAllocatedBytesForCurrentThread();
            }
            tcb.Send(data);
            stack.Poll(now);
            while (stack.Transmit.TryDequeue(out var p)) stack.Transmit.Return(p);
            now += 2_000;
            stack.Receive(acks[i], now);
            stack.Poll(now);
            while (stack.Transmit.TryDequeue(out var p)) stack.Transmit.Return(p);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(measured, samples - samplesBefore);
        Assert.Equal(2.0, lastRtt);
    }

    /// <summary>
    /// Collection runs on the listener's thread while the engine's thread changes the connection table: the census never
    /// throws and never reports more connections than exist.
    /// </summary>
    [Fact]
    public async Task The_census_is_safe_to_read_while_the_engine_runs()
    {
        var peer = new ScriptedPeer(ScriptedPeer.DefaultOptions());
        peer.Stack.Tracer = null;
        using var metrics = new StackMetrics(peer.Stack);
        using var reader = new MeterReader(metrics.Meter);
        peer.Stack.Listen(80);
        const int MaxOpen = 8;
        using var done = new CancellationTokenSource();
        var engine = Task.Run(() =>
        {
            try
            {
                // Connections open and close (some by RST, some with FINs) on this thread only, as on the loop thread.
                for (int i = 0; i < 3000; i++)
                {
                    var c = new ScriptedConnection(peer, clientPort: (ushort)(1024 + i % 30000), clientIsn: (uint)i * 1000);
                    c.SendSyn();
                    c.SendAck();
                    if (i % 2 == 0)
                        c.Send(c.ClientNxt, c.ServerNxt, TcpFlags.Rst);
                    else
                        c.CloseActivelyToTimeWait(c.Tcb!);
                    if (i % MaxOpen == 0)
                        peer.Advance(2 * peer.Stack.Options.MslMicros + 1);
                }
            }
            finally
            {
                done.Cancel();
            }
        });
        int collections = 0;
        while (!done.IsCancellationRequested)
        {
            reader.Collect();
            long live = reader.Value("tunstack.tcp.connections") - reader.Value("tunstack.tcp.connections", "state", "TIME-WAIT");
            Assert.InRange(live, 0, 1);
            Assert.InRange(reader.Value("tunstack.tcp.connections", "state", "TIME-WAIT"), 0, MaxOpen + 1);
            collections++;
        }
        await engine;
        Assert.True(collections > 0);
        reader.Collect();
        Assert.Equal(0, reader.Value("tunstack.tcp.connections") - reader.Value("tunstack.tcp.connections", "state", "TIME-WAIT"));
    }
}
