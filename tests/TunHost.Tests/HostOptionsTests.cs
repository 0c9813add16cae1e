using TunStack.Host.Tests.Integration;

namespace TunStack.Host.Tests;

public class HostOptionsTests
{
    private static HostOptions Options(int mtu = 1500, string? pcap = null, int pcapLimit = 100, params string[] addresses) =>
        new("tun0", addresses.Length > 0 ? addresses : ["198.18.0.2", "2001:2::2"], mtu, false, 30_000, PcapFile: pcap, PcapLimitMegabytes: pcapLimit);

    [Fact]
    public void The_defaults_are_fine()
    {
        Assert.Null(HostOptionsCheck.Problem(Options()));
        Assert.Null(HostOptionsCheck.Problem(Options(mtu: 1280)));
        Assert.Null(HostOptionsCheck.Problem(Options(mtu: 576, addresses: "198.18.0.2")));
        Assert.Null(HostOptionsCheck.Problem(Options(addresses: "2001:2::2")));
        Assert.Null(HostOptionsCheck.Problem(Options(pcap: "/tmp/x.pcap", pcapLimit: 1)));
    }

    [Theory]
    [InlineData(1279, "2001:2::2", "1280")]
    [InlineData(575, "198.18.0.2", "between 576 and 65535")]
    [InlineData(1500, "198.18.0.256", "IPv4 or IPv6")]
    [InlineData(1500, "tun0", "IPv4 or IPv6")]
    [InlineData(1500, "::ffff:198.18.0.2", "IPv4-mapped")]
    public void Bad_combinations_are_explained(int mtu, string address, string expected)
    {
        string? problem = HostOptionsCheck.Problem(Options(mtu, null, 100, "198.18.0.2", address));
        Assert.NotNull(problem);
        Assert.Contains(expected, problem);
    }

    [Fact]
    public void The_idle_timeout_is_zero_for_never_or_positive()
    {
        Assert.Equal(120_000, Options().IdleTimeoutMilliseconds);
        Assert.Null(HostOptionsCheck.Problem(Options() with { IdleTimeoutMilliseconds = 0 }));
        Assert.Null(HostOptionsCheck.Problem(Options() with { IdleTimeoutMilliseconds = 500 }));
        Assert.Contains("--idle-timeout", HostOptionsCheck.Problem(Options() with { IdleTimeoutMilliseconds = -1 }));
    }

    [Fact]
    public void A_pcap_limit_below_one_megabyte_is_refused()
    {
        Assert.Contains("--pcap-limit", HostOptionsCheck.Problem(Options(pcap: "/tmp/x.pcap", pcapLimit: 0)));
    }

    /// <summary>The real program refuses before it opens anything, so this runs without root.</summary>
    [Theory]
    [InlineData(new[] { "--address", "2001:2::2", "--mtu", "1000" }, "IPv6 needs --mtu 1280")]
    [InlineData(new[] { "--mtu", "1000" }, "IPv6 needs --mtu 1280")] // the default includes 2001:2::2
    [InlineData(new[] { "--address", "198.18.0.2", "--address", "nonsense" }, "got 'nonsense'")]
    [InlineData(new[] { "--pcap", "/tmp/x.pcap", "--pcap-limit", "0" }, "--pcap-limit")]
    public async Task The_program_exits_with_2_and_says_why(string[] args, string expected)
    {
        if (!File.Exists(Integration.StackHost.HostDll))
            Assert.Fail($"{Integration.StackHost.HostDll} not found: build the solution first");
        var info = ProcessRunner.StartInfo(Integration.StackHost.DotnetPath, [Integration.StackHost.HostDll, "--tun", "tsnever0", .. args]);
        var r = await ProcessRunner.RunAsync(info, TimeSpan.FromSeconds(30));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }

    [Fact]
    public async Task Help_shows_the_repeatable_address_and_the_capture_options()
    {
        var info = ProcessRunner.StartInfo(Integration.StackHost.DotnetPath, [Integration.StackHost.HostDll, "--help"]);
        var r = await ProcessRunner.RunAsync(info, TimeSpan.FromSeconds(30));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--address <ip>", r.Stdout);
        Assert.Contains("2001:2::2", r.Stdout);
        Assert.Contains("--pcap <file>", r.Stdout);
        Assert.Contains("--pcap-limit <MB>", r.Stdout);
    }
}
