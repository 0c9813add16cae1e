using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using Xunit.Abstractions;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// A network namespace of the test's own (named <c>ts-&lt;8 hex&gt;</c>) with loopback up. Commands run inside
/// it with <c>ip netns exec</c>; every process started through it is killed on dispose, and then the
/// namespace is deleted, which also removes any TUN device left in it.
/// </summary>
/// <example>
/// <code>
/// await using var ns = new NetNamespace(output);
/// await ns.IpAsync("tuntap", "add", "dev", "tun0", "mode", "tun");
/// var r = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-s", "http://198.18.0.2/");
/// </code>
/// </example>
public sealed class NetNamespace : IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan IpTimeout = TimeSpan.FromSeconds(15);

    private readonly ITestOutputHelper? _output;
    private readonly ConcurrentDictionary<int, Process> _processes = new();
    private int _disposed;

    public NetNamespace(ITestOutputHelper? output = null)
    {
        IntegrationEnvironment.ThrowIfNotRunnable();
        _output = output;
        Name = "ts-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

        RunHostIp(throwOnError: true, "netns", "add", Name);
        try
        {
            RunHostIp(throwOnError: true, "-n", Name, "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
        Log($"created network namespace {Name}");
    }

    public string Name { get; }

    /// <summary>Runs <c>ip -n NAME args...</c> and throws if it fails.</summary>
    public async Task<ProcessResult> IpAsync(params string[] args)
    {
        var info = ProcessRunner.StartInfo("ip", ["-n", Name, .. args]);
        var result = await ProcessRunner.RunAsync(info, IpTimeout, onStarted: Track);
        Log(result.ToString());
        return result.EnsureSuccess();
    }

    /// <summary>Runs <paramref name="command"/> inside the namespace; never throws for a non-zero exit or a timeout.</summary>
    public Task<ProcessResult> RunAsync(TimeSpan timeout, params string[] command) => RunAsync(command, timeout, stdin: null);

    /// <summary>Runs <paramref name="command"/> inside the namespace, feeding it <paramref name="stdin"/>.</summary>
    public async Task<ProcessResult> RunAsync(IReadOnlyList<string> command, TimeSpan timeout, byte[]? stdin)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var info = ProcessRunner.StartInfo("ip", ["netns", "exec", Name, .. command]);
        var result = await ProcessRunner.RunAsync(info, timeout, stdin, Track);
        Log(result.ToString());
        return result;
    }

    /// <summary>
    /// Starts a long-running command inside the namespace; it is killed on dispose at the latest. It starts with SIGINT
    /// at its default disposition, as a command typed at a terminal does: the tests stop it with SIGINT as Ctrl-C would,
    /// and a test run started in the background of a non-interactive shell (as CI may do) inherits SIGINT ignored,
    /// which a program keeps ignored (POSIX shells rely on that; the .NET runtime honours it).
    /// </summary>
    public BackgroundProcess Start(params string[] command)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var background = BackgroundProcess.Start(
            ProcessRunner.StartInfo("ip", ["netns", "exec", Name, "env", "--default-signal=INT", .. command]));
        Track(background.Process);
        return background;
    }

    /// <summary>
    /// Starts <paramref name="command"/> inside the namespace with stdin, stdout and stderr redirected as raw streams
    /// for the caller to feed and drain (large binary transfers); it is killed on dispose at the latest.
    /// </summary>
    public Process StartStreaming(params string[] command)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var process = new Process { StartInfo = ProcessRunner.StartInfo("ip", ["netns", "exec", Name, .. command]) };
        process.Start();
        Track(process);
        Log($"started pid {process.Id}: {ProcessRunner.CommandLine(process.StartInfo)}");
        return process;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a thread that has joined this namespace (setns), so sockets and TUN
    /// devices it opens belong to the namespace and keep belonging to it afterwards.
    /// </summary>
    public T InNamespace<T>(Func<T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = RunInNamespace(action);
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        })
        { IsBackground = true, Name = $"netns {Name}" };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }

    private T RunInNamespace<T>(Func<T> action)
    {
        int original = OpenNamespace("/proc/thread-self/ns/net");
        try
        {
            int target = OpenNamespace($"/run/netns/{Name}");
            try
            {
                if (TestNative.SetNs(target, TestNative.CLONE_NEWNET) != 0)
                    throw new InvalidOperationException($"setns into {Name} failed: {TestNative.LastError()}");
            }
            finally
            {
                TestNative.Close(target);
            }
            try
            {
                return action();
            }
            finally
            {
                // The thread ends right after, but leave it where it came from anyway.
                TestNative.SetNs(original, TestNative.CLONE_NEWNET);
            }
        }
        finally
        {
            TestNative.Close(original);
        }
    }

    private static int OpenNamespace(string path)
    {
        int fd = TestNative.Open(path, TestNative.O_RDONLY | TestNative.O_CLOEXEC, 0);
        if (fd < 0)
            throw new InvalidOperationException($"cannot open {path}: {TestNative.LastError()}");
        return fd;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;

        foreach (var process in _processes.Values)
        {
            try
            {
                if (!process.HasExited)
                {
                    Log($"killing pid {process.Id} (still running at cleanup)");
                    ProcessRunner.KillQuietly(process);
                    process.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
            }
        }

        // Anything still inside the namespace was started by us (directly or by our children): stop it,
        // or it would keep the namespace, and the devices in it, alive after the delete.
        try
        {
            var pids = RunHostIp(throwOnError: false, "netns", "pids", Name);
            foreach (string line in pids.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (int.TryParse(line, out int pid) && pid != Environment.ProcessId)
                {
                    Log($"killing pid {pid} left in namespace {Name}");
                    TestNative.Kill(pid, 9);
                }
            }
        }
        catch (Exception e)
        {
            Log($"listing processes in {Name} failed: {e.Message}");
        }

        try
        {
            RunHostIp(throwOnError: true, "netns", "del", Name);
            Log($"deleted network namespace {Name}");
        }
        catch (Exception e)
        {
            Log($"deleting namespace {Name} failed: {e.Message}");
        }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private void Track(Process process) => _processes[process.Id] = process;

    private static ProcessResult RunHostIp(bool throwOnError, params string[] args)
    {
        var info = ProcessRunner.StartInfo("ip", args);
        // Runs on the caller's thread (constructor and Dispose are synchronous); ip itself takes milliseconds.
        var result = Task.Run(() => ProcessRunner.RunAsync(info, IpTimeout)).GetAwaiter().GetResult();
        if (throwOnError)
            result.EnsureSuccess();
        return result;
    }

    private void Log(string text)
    {
        try
        {
            _output?.WriteLine($"[{Name}] {text}");
        }
        catch (InvalidOperationException)
        {
            // The test already finished (e.g. cleanup from a finalizer path); nothing to show it to.
        }
    }
}
