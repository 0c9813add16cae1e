using TunStack.Host.Tests.Integration;

namespace TunStack.Host.Tests;

/// <summary>
/// The command-line contract of the real program (README, "The command line"): usage errors of every subcommand exit
/// with 2 and say why on standard error; help goes to standard output; the kernel reference stays out of the help.
/// Nothing here opens a device, so it runs without root.
/// </summary>
public class CommandLineTests
{
    private static async Task<ProcessResult> Run(params string[] args)
    {
        if (!File.Exists(Integration.StackHost.HostDll))
            Assert.Fail($"{Integration.StackHost.HostDll} not found: build the solution first");
        var info = ProcessRunner.StartInfo(Integration.StackHost.DotnetPath, [Integration.StackHost.HostDll, .. args]);
        return await ProcessRunner.RunAsync(info, TimeSpan.FromSeconds(30));
    }

    [Theory]
    [InlineData(new[] { "--no-such-option" }, "Unrecognized command or argument '--no-such-option'")]
    [InlineData(new[] { "--mtu", "many" }, "many")]
    [InlineData(new[] { "--tun", "averyveryverylongname0" }, "--tun: Interface name \"averyveryverylongname0\" is 22 bytes long")]
    [InlineData(new[] { "fetch", "--tun", "tun/0", "http://198.18.0.1/" }, "--tun: Interface name \"tun/0\" contains '/'")]
    [InlineData(new[] { "fetch" }, "Required argument missing")]
    [InlineData(new[] { "fetch", "--no-such-option", "http://198.18.0.1/" }, "Unrecognized")]
    [InlineData(new[] { "fetch", "ftp://198.18.0.1/" }, "is not an http:// URL")]
    [InlineData(new[] { "fetch", "http://example.org/" }, "must be an IPv4 address")]
    [InlineData(new[] { "fetch", "--address", "2001:2::2", "http://198.18.0.1/" }, "--address must be an IPv4 address")]
    [InlineData(new[] { "fetch", "--timeout", "0", "http://198.18.0.1/" }, "--timeout must be positive")]
    [InlineData(new[] { "fetch", "--mtu", "100", "http://198.18.0.1/" }, "--mtu must be between 576 and 65535")]
    [InlineData(new[] { "kernel-reference", "--address", "nonsense" }, "--address must be an IPv4 address")]
    [InlineData(new[] { "kernel-reference", "--no-such-option" }, "Unrecognized")]
    public async Task A_usage_error_exits_with_2_and_says_why_on_standard_error(string[] args, string expected)
    {
        var r = await Run(args);
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}; stderr: {r.Stderr}");
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_goes_to_standard_output_with_the_exit_statuses_and_hides_the_kernel_reference()
    {
        var root = await Run("--help");
        Assert.Equal(0, root.ExitCode);
        Assert.Contains("fetch <url>", root.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("kernel-reference", root.Stdout, StringComparison.Ordinal);
        Assert.Empty(root.Stderr);

        var fetch = await Run("fetch", "--help");
        Assert.Equal(0, fetch.ExitCode);
        Assert.Contains("Exit status: 0 success (2xx), 1 failure (device, reset), 2 usage, 3 connection refused, 4 timed out,",
            fetch.Stdout, StringComparison.Ordinal);
        Assert.Contains("-o, --output <file>", fetch.Stdout, StringComparison.Ordinal);
    }
}
