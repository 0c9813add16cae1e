using System.Runtime.InteropServices;

namespace TunStack.Host.Tests.Integration;

internal static partial class TestNative
{
    public const int SIGINT = 2;
    public const int CLONE_NEWNET = 0x40000000;
    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int namespaceType);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "gettid")]
    public static partial int GetThreadId();

    public static string LastError() => Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());

    /// <summary>
    /// Waits until thread <paramref name="threadId"/> of this process sleeps in poll() (its /proc wchan), or
    /// <paramref name="timeout"/> has passed; true in the first case.
    /// </summary>
    public static async Task<bool> WaitUntilBlockedInPollAsync(int threadId, TimeSpan timeout)
    {
        string wchan = $"/proc/self/task/{threadId}/wchan";
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(wchan) && (await File.ReadAllTextAsync(wchan)).Contains("poll", StringComparison.Ordinal))
                return true;
            await Task.Delay(1);
        }
        return false;
    }
}
