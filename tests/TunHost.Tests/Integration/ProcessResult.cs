using System.Text;

namespace TunStack.Host.Tests.Integration;

/// <summary>What a finished (or timed-out and killed) command produced.</summary>
public sealed record ProcessResult(
    string CommandLine,
    int ExitCode,
    byte[] StdoutBytes,
    string Stderr,
    TimeSpan Elapsed,
    bool TimedOut)
{
    public string Stdout => Encoding.UTF8.GetString(StdoutBytes);

    public bool Succeeded => !TimedOut && ExitCode == 0;

    /// <summary>Throws with the command, exit code and output when the command failed or timed out.</summary>
    public ProcessResult EnsureSuccess()
    {
        if (!Succeeded)
            throw new InvalidOperationException($"command failed: {this}");
        return this;
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append('`').Append(CommandLine).Append('`');
        text.Append(TimedOut ? $" timed out after {Elapsed.TotalSeconds:F1} s and was killed" : $" exited {ExitCode} after {Elapsed.TotalSeconds:F2} s");
        if (Stderr.Length > 0)
            text.Append("\n  stderr: ").Append(Truncate(Stderr.TrimEnd(), 2000));
        if (StdoutBytes.Length > 0)
            text.Append("\n  stdout (").Append(StdoutBytes.Length).Append(" bytes): ").Append(Truncate(Stdout.TrimEnd(), 2000));
        return text.ToString();
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + " ...";
}
