using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>How the host gets its TUN device.</summary>
public enum DeviceMode
{
    /// <summary>The test makes a persistent tun0 (ip tuntap add), configures it, then starts the host, which attaches.</summary>
    Attach,

    /// <summary>The host creates tun0 itself; the test configures it after the host reports ready.</summary>
    Create,
}

/// <summary>How to start a <see cref="StackHost"/>.</summary>
public sealed record StackHostOptions
{
    /// <summary>Whether the test or the host makes tun0.</summary>
    public DeviceMode Mode { get; init; } = DeviceMode.Attach;

    /// <summary>The MTU of both sides: tunstack's <c>--mtu</c> and the kernel's <c>ip link set tun0 mtu N</c>.</summary>
    public int Mtu { get; init; } = StackHost.DefaultMtu;

    /// <summary>More tunstack arguments, e.g. <c>--impair loss=1%,seed=1</c>.</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>
    /// A native tunstack to run (the NativeAOT publish, see <c>AotHost</c>) instead of <c>dotnet tunstack.dll</c>, the
    /// JIT build next to the tests.
    /// </summary>
    public string? Executable { get; init; }

    /// <summary>tunstack's <c>--msl</c> in milliseconds (TIME-WAIT is twice this).</summary>
    public int MslMilliseconds { get; init; } = 200;
}

/// <summary>
/// The <c>tunstack</c> program running in a namespace:
/// <c>ip netns exec NS dotnet tunstack.dll --tun tun0 --address 198.18.0.2 --address 2001:2::2 --msl 200 --mtu N [extra]</c>.
/// Start returns once the host printed a line beginning with <c>tunstack ready</c> and the kernel side of
/// tun0 is configured (198.18.0.1/24 and 2001:2::1/64 without duplicate address detection, the same MTU, up). Dispose
/// sends SIGINT, waits up to 5 s, then kills; it asserts nothing, and writes the captured log to the test output.
/// </summary>
public sealed class StackHost : IAsyncDisposable
{
    public const string Device = "tun0";
    public const string PeerAddress = "198.18.0.1";
    public const string StackAddress = "198.18.0.2";
    public const string PeerAddress6 = "2001:2::1";
    public const string StackAddress6 = "2001:2::2";
    public const string ReadyPrefix = "tunstack ready";
    public const int DefaultMtu = 1500;

    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    private readonly ITestOutputHelper? _output;
    private int _disposed;

    private StackHost(NetNamespace ns, BackgroundProcess process, DeviceMode mode, ITestOutputHelper? output)
    {
        Namespace = ns;
        Process = process;
        Mode = mode;
        _output = output;
    }

    public NetNamespace Namespace { get; }

    public BackgroundProcess Process { get; }

    public DeviceMode Mode { get; }

    /// <summary>Everything the host printed so far, with the harness's own notes.</summary>
    public string Log => Process.Log;

    /// <summary>Path of the host program: tunstack.dll next to the test assembly.</summary>
    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "tunstack.dll");

    /// <summary>The dotnet executable: DOTNET_HOST_PATH when set (it is under dotnet test), else "dotnet" from PATH.</summary>
    public static string DotnetPath =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";

    public static Task<StackHost> StartAsync(
        NetNamespace ns, ITestOutputHelper? output, DeviceMode mode = DeviceMode.Attach, params string[] extraArgs) =>
        StartAsync(ns, output, new StackHostOptions { Mode = mode, ExtraArgs = extraArgs });

    public static async Task<StackHost> StartAsync(NetNamespace ns, ITestOutputHelper? output, StackHostOptions options)
    {
        if (options.Executable is null && !File.Exists(HostDll))
            throw new InvalidOperationException($"{HostDll} not found: build the solution first (dotnet build TunStack.sln -c Release)");

        DeviceMode mode = options.Mode;
        string mtu = options.Mtu.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (mode == DeviceMode.Attach)
        {
            await ns.IpAsync("tuntap", "add", "dev", Device, "mode", "tun");
            await ConfigureKernelSideAsync(ns, mtu);
        }

        string[] program = options.Executable is { } executable ? [executable] : [DotnetPath, HostDll];
        string[] command =
        [
            .. program, "--tun", Device, "--address", StackAddress, "--address", StackAddress6,
            "--msl", options.MslMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--mtu", mtu,
            .. options.ExtraArgs,
        ];
        var process = ns.Start(command);
        var host = new StackHost(ns, process, mode, output);
        try
        {
            string? ready = await process.WaitForStdoutLineAsync(line => line.StartsWith(ReadyPrefix, StringComparison.Ordinal), ReadyTimeout);
            if (ready is null)
            {
                string why = process.HasExited
                    ? $"exited with code {process.ExitCode} before printing '{ReadyPrefix}'"
                    : $"did not print '{ReadyPrefix}' within {ReadyTimeout.TotalSeconds:F0} s";
                throw new InvalidOperationException(host.Explain($"tunstack {why}"));
            }

            if (mode == DeviceMode.Create)
                await ConfigureKernelSideAsync(ns, mtu);
            process.Note($"kernel side of {Device} configured ({PeerAddress}/24, {PeerAddress6}/64, mtu {mtu}, up); {mode} mode");
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary><paramref name="message"/> followed by the host's log, for assertion messages.</summary>
    public string Explain(string message) =>
        $"{message}\n--- tunstack log ({Process.CommandLine}) ---\n{Log}\n--- end of tunstack log ---";

    /// <summary>Fails the test with <paramref name="message"/> and the host's log unless <paramref name="condition"/> holds.</summary>
    public void Check(bool condition, string message)
    {
        if (!condition)
            Xunit.Assert.Fail(Explain(message));
    }

    /// <summary>Sends SIGINT and waits up to 5 s; returns true when the host exited on its own.</summary>
    public Task<bool> StopAsync() => Process.StopAsync(StopGrace);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await Process.DisposeAsync();
        try
        {
            _output?.WriteLine(Explain("tunstack host finished"));
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static async Task ConfigureKernelSideAsync(NetNamespace ns, string mtu)
    {
        await ns.IpAsync("addr", "add", PeerAddress + "/24", "dev", Device);
        // nodad: usable at once (no tentative state); a point-to-point TUN link has no neighbour discovery.
        await ns.IpAsync("-6", "addr", "add", PeerAddress6 + "/64", "dev", Device, "nodad");
        await ns.IpAsync("link", "set", Device, "mtu", mtu);
        await ns.IpAsync("link", "set", Device, "up");
    }
}
