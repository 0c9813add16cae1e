using TunStack.Runtime;

namespace TunStack.Host;

/// <summary>What the command line chose.</summary>
/// <param name="Impairment">Fault injection between the TUN device and the engine (<c>--impair</c>), or null.</param>
public sealed record HostOptions(
    string TunName,
    string Address,
    int Mtu,
    bool Trace,
    int MslMilliseconds,
    ImpairmentOptions? Impairment = null);
