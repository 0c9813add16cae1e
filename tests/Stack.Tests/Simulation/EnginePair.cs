using System.Security.Cryptography;
using TunStack.Diagnostics;
using TunStack.Tcp;
using TunStack.Tests.Tcp;
using TunStack.Wire;

namespace TunStack.Tests.Simulation;

/// <summary>
/// Two engines — a client and a server — over a lossless in-memory link with a fixed one-way delay, and time moved
/// explicitly from one event (a delivery or a timer deadline) to the next. Unlike <see cref="TransferSimulation"/>, the
/// test plays the applications itself, one call at a time (send, close, abort), so a scenario reads as the protocol
/// trace it produces. Every segment on the wire and every state each side passes through is recorded.
/// </summary>
internal sealed class EnginePair
{
    public static readonly IpAddress ClientAddress = IpAddress.Parse("198.18.0.1");
    public static readonly IpAddress ServerAddress = IpAddress.Parse("198.18.0.2");
    public const ushort ServerPort = 80;

    private readonly SimulatedLink _up;   // client -> server
    private readonly SimulatedLink _down; // server -> client
    private readonly StringWriter _trace = new();

    public EnginePair(long oneWayDelayMicros = 5_000, long mslMicros = 1_000_000)
    {
        var link = new LinkProfile { DelayMicros = oneWayDelayMicros, MaxQueueMicros = long.MaxValue };
        _up = new SimulatedLink(link, new Random(1));
        _down = new SimulatedLink(link, new Random(2));
        Client = new Side("client", new NetStack(Options(ClientAddress, mslMicros)), this);
        Server = new Side("server", new NetStack(Options(ServerAddress, mslMicros)), this);
        Server.Stack.Listen(ServerPort);
    }

    public static NetStackOptions Options(IpAddress address, long mslMicros) => new()
    {
        Address = address,
        MslMicros = mslMicros,
        ReceiveBufferSize = 64 * 1024,
        SendBufferSize = 64 * 1024,
        IsnSecret = SHA256.HashData(address.ToString().Select(c => (byte)c).ToArray())[..16],
    };

    public long Now { get; private set; } = 1_000_000;
    public Side Client { get; }
    public Side Server { get; }

    /// <summary>Both sides' --trace lines, interleaved in time order, each prefixed with its side.</summary>
    public string Trace => _trace.ToString();

    /// <summary>Every segment on the wire, in the order it was sent: "client S", "server S.", ...</summary>
    public List<(long Time, string From, Seg Segment)> Wire { get; } = new();

    /// <summary>The flags of each segment on the wire, as "client S" / "server S." (tcpdump's letters).</summary>
    public IEnumerable<string> WireFlags => Wire.Select(w => $"{w.From} {w.Segment.Flags.ToShortString()}");

    /// <summary>The client opens the connection (active OPEN) and the handshake runs to ESTABLISHED on both sides.</summary>
    public void Connect()
    {
        Client.Stack.Poll(Now);
        Client.Connection = Client.Stack.Connect(ServerAddress, ServerPort, nowMicros: Now);
        RunUntil(() => Client.State == TcpState.Established && Server.State == TcpState.Established, "the handshake");
    }

    /// <summary>Advances time by <paramref name="micros"/>, delivering packets and firing timers on the way.</summary>
    public void RunFor(long micros)
    {
        long end = Now + micros;
        for (int steps = 0; ; steps++)
        {
            long next = Step();
            if (next > end)
            {
                Now = end;
                Step();
                return;
            }
            Assert.True(steps < 1_000_000, $"no progress\n{Trace}");
            Now = Math.Max(next, Now);
        }
    }

    /// <summary>Runs until <paramref name="condition"/> holds, failing with the trace if it does not within a minute.</summary>
    public void RunUntil(Func<bool> condition, string what)
    {
        long end = Now + 60_000_000;
        for (int steps = 0; ; steps++)
        {
            long next = Step();
            if (condition())
                return;
            if (next > end)
                Assert.Fail($"not reached: {what} (t = {Now}); client {Client.State.ToRfcName()}, server {Server.State.ToRfcName()}\n{Trace}");
            Assert.True(steps < 1_000_000, $"no progress towards {what}\n{Trace}");
            Now = Math.Max(next, Now);
        }
    }

    /// <summary>Delivers what is due, lets both applications act, polls both stacks; returns the next event time.</summary>
    private long Step()
    {
        while (_up.TryReceive(Now, out var packet)) Server.Stack.Receive(packet, Now);
        while (_down.TryReceive(Now, out var packet)) Client.Stack.Receive(packet, Now);
        Client.Application();
        Server.Application();
        long next = Math.Min(Client.Stack.Poll(Now), Server.Stack.Poll(Now));
        Collect(Client, _up);
        Collect(Server, _down);
        return Math.Min(next, Math.Min(_up.NextDelivery, _down.NextDelivery));
    }

    private void Collect(Side side, SimulatedLink link)
    {
        while (side.Stack.Transmit.TryDequeue(out var packet))
        {
            Wire.Add((Now, side.Name, ScriptedPeer.Parse(packet.Span)));
            link.Send(packet.Span, Now);
            side.Stack.Transmit.Return(packet);
        }
    }

    /// <summary>One engine and the application on it: reads everything that arrives, sends what it is given.</summary>
    public sealed class Side : IStackTracer
    {
        private readonly EnginePair _pair;
        private readonly byte[] _scratch = new byte[16384];
        private byte[] _toSend = [];
        private int _offered;
        private bool _closeWhenSent;
        private long _origin;

        internal Side(string name, NetStack stack, EnginePair pair)
        {
            Name = name;
            Stack = stack;
            _pair = pair;
            _origin = pair.Now; // one clock for both sides' trace lines
            stack.Tracer = this;
        }

        public string Name { get; }
        public NetStack Stack { get; }
        /// <summary>This side's connection: the client's from Connect, the server's from its Established event.</summary>
        public Tcb? Connection { get; internal set; }
        public MemoryStream Received { get; } = new();
        /// <summary>The peer's FIN arrived and every byte before it has been read.</summary>
        public bool ReceiveFinished => Connection?.ReceiveFinished ?? false;
        public ConnectionEvents EventsSeen { get; private set; }

        /// <summary>The states this side's connection went through, from the first (CLOSED or LISTEN) on.</summary>
        public List<TcpState> States { get; } = new();

        /// <summary>When this side's connection last entered <paramref name="state"/>.</summary>
        public long EnteredAt(TcpState state) => _entered.TryGetValue(state, out long t) ? t
            : throw new InvalidOperationException($"{Name} never entered {state.ToRfcName()}");

        private readonly Dictionary<TcpState, long> _entered = new();

        /// <summary>The connection's state; TIME-WAIT while its record lasts, CLOSED after.</summary>
        public TcpState State => Connection is null ? TcpState.Closed
            : Connection.State == TcpState.TimeWait && !Stack.IsInTimeWait(Connection.Tuple) ? TcpState.Closed
            : Connection.State;

        public bool InTimeWait => Connection is not null && Stack.IsInTimeWait(Connection.Tuple);

        /// <summary>SEND: queue <paramref name="data"/>, as much as the buffer takes now and the rest as it drains; CLOSE after it if asked.</summary>
        public void Write(byte[] data, bool thenClose = false)
        {
            _toSend = data;
            _offered = 0;
            _closeWhenSent = thenClose;
            Application();
        }

        /// <summary>Everything written has been handed to the engine.</summary>
        public bool AllWritten => _offered == _toSend.Length;

        internal void Application()
        {
            while (Stack.TryTakeEvents(out var tcb, out var events))
            {
                EventsSeen |= events;
                if ((events & ConnectionEvents.Established) != 0 && Connection is null)
                {
                    Connection = tcb;
                    Stack.Accepted(tcb);
                }
            }
            if (Connection is null) return;
            int n;
            while ((n = Connection.Receive(_scratch)) > 0)
                Received.Write(_scratch, 0, n);
            if (_offered < _toSend.Length)
                _offered += Connection.Send(_toSend.AsSpan(_offered));
            if (_closeWhenSent && _offered == _toSend.Length)
            {
                _closeWhenSent = false;
                Connection.Close();
            }
        }

        private void Record(TcpState from, TcpState to, long time)
        {
            if (from == to) return;
            if (States.Count == 0) States.Add(from);
            if (States[^1] != to) States.Add(to);
            _entered[to] = time;
        }

        void IStackTracer.OnSegment(in SegmentTraceRecord record)
        {
            if (record.Direction == TraceDirection.In)
                Record(record.Before, record.After, record.TimeMicros);
            _pair._trace.WriteLine($"{Name} {TextTracer.Format(record, ref _origin)}");
        }

        void IStackTracer.OnStateChange(long timeMicros, in FourTuple tuple, TcpState from, TcpState to, string cause)
        {
            Record(from, to, timeMicros);
            _pair._trace.WriteLine($"{Name} {(timeMicros - _origin) / 1e6,11:0.000000} --  {cause}  {from.ToRfcName()} -> {to.ToRfcName()}");
        }

        void IStackTracer.OnPacketDropped(long timeMicros, DropReason reason) =>
            _pair._trace.WriteLine($"{Name} packet dropped: {reason}");

        /// <summary>The states as the RFC spells them, joined with arrows.</summary>
        public string Path => string.Join(" → ", States.Select(s => s.ToRfcName()));
    }
}
