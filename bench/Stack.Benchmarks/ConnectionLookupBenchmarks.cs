using BenchmarkDotNet.Attributes;
using TunStack.Tcp;
using TunStack.Wire;

namespace TunStack.Benchmarks;

/// <summary>
/// Finding a segment's connection by its 4-tuple (<see cref="NetStack.FindConnection"/>, the dictionary the segment
/// path uses) with 1, 10,000 or 100,000 connections in the table. The tuples are looked up in a shuffled order, one
/// after another, so with many connections the table's entries are mostly not in the CPU caches — as for a server
/// whose segments come from many clients. Must not allocate.
/// </summary>
[MemoryDiagnoser]
public class ConnectionLookupBenchmarks
{
    [Params(1, 10_000, 100_000)]
    public int Connections { get; set; }

    private NetStack _stack = null!;
    private FourTuple[] _order = [];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var local = IpAddress.Parse("198.18.0.2");
        _stack = new NetStack(new NetStackOptions { Address = local, IsnSecret = new byte[16], MaxConnections = 2 * Connections });
        // Clients from 198.19.0.0/16, 500 ports each, all to our port 18080. Connect only creates the TCBs (in SYN-SENT;
        // nothing is sent without a Poll): the table is what is measured, not the states.
        _order = new FourTuple[Connections];
        for (int i = 0; i < Connections; i++)
        {
            var remote = IpAddress.FromV4(0xC613_0000u | (uint)(i / 500));
            var remotePort = (ushort)(10_000 + i % 500);
            var tcb = _stack.Connect(remote, remotePort, 18080);
            _order[i] = tcb.Tuple;
        }
        new Random(42).Shuffle(_order);
        foreach (var tuple in _order)
            if (_stack.FindConnection(tuple) is null)
                throw new InvalidOperationException("A connection is missing from the table.");
        if (_stack.Connections.Count != Connections)
            throw new InvalidOperationException($"{_stack.Connections.Count} connections, not {Connections}.");
    }

    [Benchmark(Description = "FindConnection(4-tuple)")]
    public object Lookup()
    {
        var tuple = _order[_next];
        _next = _next + 1 == _order.Length ? 0 : _next + 1;
        return _stack.FindConnection(tuple) ?? throw new InvalidOperationException("Not found: " + tuple);
    }
}
