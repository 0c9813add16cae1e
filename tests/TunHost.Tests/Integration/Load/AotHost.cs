using System.Runtime.InteropServices;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>
/// The NativeAOT build of tunstack (<c>./run-linux.sh publish</c>), which the load tests measure: its resident memory
/// is the host's own, without the JIT, its compiled code and its tiering on top. <c>./run-linux.sh
/// test</c> publishes it first and names it in <see cref="EnvironmentVariable"/>; without the variable the first test
/// that needs it publishes it (<c>dotnet publish src/TunHost -r linux-x64</c>, into artifacts/aot; incremental).
/// </summary>
public static class AotHost
{
    public const string EnvironmentVariable = "TUNSTACK_AOT_HOST";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static string? _published;

    /// <summary>The path of the native tunstack, publishing it when needed.</summary>
    public static async Task<string> GetAsync(ITestOutputHelper? output)
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } given)
        {
            if (!File.Exists(given))
                throw new InvalidOperationException($"{EnvironmentVariable}={given}: no such file (./run-linux.sh test publishes it)");
            return given;
        }

        await Gate.WaitAsync();
        try
        {
            if (_published is not null)
                return _published;
            string root = RepositoryRoot();
            string rid = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
            string outputDirectory = Path.Combine(root, "artifacts", "aot");
            var info = ProcessRunner.StartInfo(StackHost.DotnetPath,
                ["publish", Path.Combine(root, "src", "TunHost"), "-c", "Release", "-r", rid, "-o", outputDirectory, "--nologo"]);
            output?.WriteLine($"publishing the NativeAOT tunstack: {ProcessRunner.CommandLine(info)}");
            var result = await ProcessRunner.RunAsync(info, TimeSpan.FromMinutes(10));
            string path = Path.Combine(outputDirectory, "tunstack");
            if (!result.Succeeded || !File.Exists(path))
            {
                throw new InvalidOperationException(
                    $"publishing the NativeAOT tunstack failed (it needs clang and zlib1g-dev; ./run-linux.sh test installs them): {result}");
            }
            output?.WriteLine($"published {path} in {result.Elapsed.TotalSeconds:F0} s");
            return _published = path;
        }
        finally
        {
            Gate.Release();
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TunStack.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"TunStack.sln not found above {AppContext.BaseDirectory}");
    }
}
