namespace TunStack.Host.Tests.Integration;

/// <summary>
/// Whether tests that need a real TUN device and network namespaces can run here. Outside CI they are
/// skipped with the reason; with CI=true they run anyway and fail with the reason, so a CI machine that
/// cannot run them never reports green.
/// </summary>
public static class IntegrationEnvironment
{
    private static readonly Lazy<string?> Reason = new(FindReason);

    public static bool IsCi =>
        string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why integration tests cannot run here, or null when they can.</summary>
    public static string? WhyNotRunnable => Reason.Value;

    /// <summary>The skip text for the attributes: null when the test should run (runnable, or CI).</summary>
    public static string? SkipReason =>
        !IsCi && WhyNotRunnable is { } why ? $"integration test skipped: {why}" : null;

    public static void ThrowIfNotRunnable()
    {
        if (WhyNotRunnable is { } why)
        {
            throw new InvalidOperationException(
                $"Integration test cannot run: {why}" +
                (IsCi ? " (CI=true, so this is a failure rather than a skip)" : ""));
        }
    }

    /// <summary>Full path of <paramref name="program"/> found on PATH, or null.</summary>
    public static string? FindOnPath(string program)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, program);
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    private static string? FindReason()
    {
        if (!OperatingSystem.IsLinux())
            return "needs Linux (TUN devices and network namespaces)";
        if (!Environment.IsPrivilegedProcess)
            return "needs root for network namespaces and TUN devices (run: sudo ./run-linux.sh test)";
        if (!File.Exists("/dev/net/tun"))
            return "/dev/net/tun not found: load the tun module (modprobe tun)";
        if (FindOnPath("ip") is null)
            return "the 'ip' command (iproute2) is not on PATH";
        return null;
    }
}

/// <summary>A fact that needs root, /dev/net/tun and iproute2; see <see cref="IntegrationEnvironment"/>.</summary>
public sealed class IntegrationFactAttribute : Xunit.FactAttribute
{
    public IntegrationFactAttribute()
    {
        if (IntegrationEnvironment.SkipReason is { } reason)
            Skip = reason;
    }
}

/// <summary>A theory that needs root, /dev/net/tun and iproute2; see <see cref="IntegrationEnvironment"/>.</summary>
public sealed class IntegrationTheoryAttribute : Xunit.TheoryAttribute
{
    public IntegrationTheoryAttribute()
    {
        if (IntegrationEnvironment.SkipReason is { } reason)
            Skip = reason;
    }
}

/// <summary>
/// Integration tests run one at a time: each starts a namespace and a host process, and on two cores
/// parallel hosts and 10 MB transfers make timing-sensitive assertions flaky.
/// </summary>
[Xunit.CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IntegrationCollection
{
    public const string Name = "Integration";
}
