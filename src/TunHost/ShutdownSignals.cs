using System.Runtime.InteropServices;

namespace TunStack.Host;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM stop every command cleanly: the first one cancels <see cref="Token"/>, which the command
/// sees as its cancellation token, and the command resets its connections, closes the device and returns. A command
/// still running <see cref="Grace"/> later, or a second signal, ends the process at once with 128 + the signal's
/// number (130 or 143), as a shell reports a process the signal killed.
/// </summary>
/// <remarks>
/// Registered first thing in <c>Main</c>, before any command starts, so that a signal can never arrive between a
/// command's "ready" and its handler: System.CommandLine's own handler is installed only after the command's action has
/// begun (it needs the action's task), and a signal in that gap took the runtime's default path (exit 143 without the
/// clean stop). A signal that the process inherited as ignored (a background job of a non-interactive shell ignores
/// SIGINT) stays ignored, as the runtime decides.
/// </remarks>
internal sealed class ShutdownSignals : IDisposable
{
    /// <summary>How long a command has, after the first signal, to finish on its own.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly CancellationTokenSource _stop = new();
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;
    private int _signals;

    public ShutdownSignals()
    {
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    /// <summary>Cancelled by the first SIGINT or SIGTERM.</summary>
    public CancellationToken Token => _stop.Token;

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the runtime's default would end the process before the command can clean up
        var signal = context.Signal;
        int exitCode = 128 + (signal == PosixSignal.SIGINT ? 2 : 15);
        if (Interlocked.Increment(ref _signals) > 1)
            Environment.Exit(exitCode);
        _stop.Cancel();
        // The signal's thread is the runtime's, not the command's: the watchdog waits on a thread of its own.
        new Thread(() =>
        {
            Thread.Sleep(Grace);
            Console.Error.WriteLine($"tunstack: still running {Grace.TotalSeconds:F0} s after {signal}; exiting");
            Environment.Exit(exitCode);
        }) { IsBackground = true, Name = "tunstack-shutdown-watchdog" }.Start();
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
    }
}
