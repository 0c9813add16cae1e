using System.Diagnostics;
using System.Text;

namespace TunStack.Host.Tests.Integration;

/// <summary>Runs a command to completion with a timeout, capturing stdout as bytes and stderr as text.</summary>
public static class ProcessRunner
{
    public static ProcessStartInfo StartInfo(string fileName, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
            info.ArgumentList.Add(argument);
        return info;
    }

    public static string CommandLine(ProcessStartInfo info) =>
        string.Join(' ', new[] { info.FileName }.Concat(info.ArgumentList).Select(Quote));

    /// <param name="onStarted">Called with the started process (e.g. to track it for cleanup).</param>
    public static async Task<ProcessResult> RunAsync(
        ProcessStartInfo info, TimeSpan timeout, byte[]? stdin = null, Action<Process>? onStarted = null)
    {
        string commandLine = CommandLine(info);
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = info };
        process.Start();
        onStarted?.Invoke(process);

        var stdout = new MemoryStream();
        Task readOut = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        Task<string> readErr = process.StandardError.ReadToEndAsync();
        Task writeIn = WriteInputAsync(process, stdin);

        bool timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                KillQuietly(process);
                await process.WaitForExitAsync();
            }
        }

        // Output pipes close when the process (and anything that inherited them) is gone.
        try
        {
            await Task.WhenAll(readOut, readErr, writeIn).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is TimeoutException or IOException)
        {
        }

        string stderr = readErr.IsCompletedSuccessfully ? readErr.Result : "";
        return new ProcessResult(commandLine, process.ExitCode, stdout.ToArray(), stderr, clock.Elapsed, timedOut);
    }

    public static void KillQuietly(Process process)
    {
        try
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    private static async Task WriteInputAsync(Process process, byte[]? stdin)
    {
        try
        {
            if (stdin is { Length: > 0 })
                await process.StandardInput.BaseStream.WriteAsync(stdin);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The command exited without reading all its input (broken pipe); its exit code tells the story.
        }
    }

    private static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./:=%@,+".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
