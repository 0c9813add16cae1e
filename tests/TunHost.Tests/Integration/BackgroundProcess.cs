using System.Diagnostics;

namespace TunStack.Host.Tests.Integration;

/// <summary>
/// A long-running command whose stdout and stderr lines are collected (thread-safe, with timestamps)
/// so a test can wait for a given line and show the whole log when something fails.
/// </summary>
public sealed class BackgroundProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _log = [];
    private readonly List<string> _stdoutLines = [];
    private readonly Lock _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TaskCompletionSource _changed = NewSignal();

    private BackgroundProcess(Process process) => _process = process;

    public string CommandLine { get; private init; } = "";

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    public Process Process => _process;

    /// <summary>Every stdout and stderr line so far, each prefixed with its time since start and stream.</summary>
    public string Log
    {
        get
        {
            lock (_gate)
                return string.Join('\n', _log);
        }
    }

    public static BackgroundProcess Start(ProcessStartInfo info)
    {
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var background = new BackgroundProcess(process) { CommandLine = ProcessRunner.CommandLine(info) };
        process.OutputDataReceived += (_, e) => background.OnLine("out", e.Data);
        process.ErrorDataReceived += (_, e) => background.OnLine("err", e.Data);
        process.Exited += (_, _) => background.Note($"process exited with code {SafeExitCode(process)}");
        process.Start();
        background.Note($"started pid {process.Id}: {background.CommandLine}");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        return background;
    }

    /// <summary>Adds a line of the test's own to the log (e.g. "sending SIGINT").</summary>
    public void Note(string text) => Append($"[{_clock.Elapsed.TotalSeconds,7:F3}] --- {text}", stdout: null);

    /// <summary>
    /// Waits until a stdout line satisfies <paramref name="predicate"/>; returns it, or null when the process
    /// exited first or <paramref name="timeout"/> passed.
    /// </summary>
    public async Task<string?> WaitForStdoutLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        int checkedCount = 0;
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                for (; checkedCount < _stdoutLines.Count; checkedCount++)
                {
                    if (predicate(_stdoutLines[checkedCount]))
                        return _stdoutLines[checkedCount];
                }
                changed = _changed.Task;
            }
            if (_process.HasExited)
            {
                // Let the last buffered lines arrive before giving up.
                await _process.WaitForExitAsync();
                lock (_gate)
                {
                    for (; checkedCount < _stdoutLines.Count; checkedCount++)
                    {
                        if (predicate(_stdoutLines[checkedCount]))
                            return _stdoutLines[checkedCount];
                    }
                }
                return null;
            }
            TimeSpan left = timeout - deadline.Elapsed;
            if (left <= TimeSpan.Zero)
                return null;
            // Woken by a new line or by exit; the bounded wait also covers an exit without a final line.
            await Task.WhenAny(changed, _process.WaitForExitAsync(), Task.Delay(left));
        }
    }

    /// <summary>Sends SIGINT (as Ctrl-C would).</summary>
    public void Interrupt()
    {
        if (_process.HasExited)
            return;
        Note("sending SIGINT");
        if (TestNative.Kill(_process.Id, TestNative.SIGINT) != 0)
            Note($"kill -INT failed: {TestNative.LastError()}");
    }

    /// <summary>Waits for exit; true when it exited in time.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>SIGINT, up to <paramref name="grace"/> to exit, then kill the whole tree. Returns true if it exited on its own.</summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
            return true;
        Interrupt();
        if (await WaitForExitAsync(grace))
            return true;
        Note($"still running {grace.TotalSeconds:F0} s after SIGINT: killing it");
        ProcessRunner.KillQuietly(_process);
        await WaitForExitAsync(TimeSpan.FromSeconds(5));
        return false;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }

    private void OnLine(string stream, string? line)
    {
        if (line is null)
            return;
        Append($"[{_clock.Elapsed.TotalSeconds,7:F3}] {stream}: {line}", stream == "out" ? line : null);
    }

    private void Append(string logLine, string? stdout)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _log.Add(logLine);
            if (stdout is not null)
                _stdoutLines.Add(stdout);
            changed = _changed;
            _changed = NewSignal();
        }
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static string SafeExitCode(Process process)
    {
        try
        {
            return process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }
}
