namespace TunStack.Host;

/// <summary>What the command line chose.</summary>
public sealed record HostOptions(
    string TunName,
    string Address,
    int Mtu,
    bool Trace,
    int MslMilliseconds,
    int FinTimeoutMilliseconds = 60_000);
