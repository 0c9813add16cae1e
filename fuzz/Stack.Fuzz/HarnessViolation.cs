namespace TunStack.Fuzz;

/// <summary>
/// Thrown by a harness when the stack broke a rule it checks (an internal error was counted, an invariant failed,
/// the stack sent a malformed packet). Under AFL an exception that escapes the harness is a crash.
/// </summary>
internal sealed class HarnessViolation : Exception
{
    public HarnessViolation(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>Throws a <see cref="HarnessViolation"/> with <paramref name="message"/> unless <paramref name="condition"/> holds.</summary>
    public static void Check(bool condition, string message)
    {
        if (!condition) throw new HarnessViolation(message);
    }
}
