using System.Globalization;
using System.Text.Json;

namespace TunStack.Host.Tests.Integration.Load;

/// <summary>Resident memory of the tunstack process, as the kernel counts it (VmRSS, VmHWM in /proc/PID/status).</summary>
public readonly record struct HostMemory(long ResidentBytes, long PeakResidentBytes)
{
    public double ResidentMegabytes => ResidentBytes / 1048576.0;

    public double PeakMegabytes => PeakResidentBytes / 1048576.0;

    /// <summary>
    /// Reads the memory of <paramref name="host"/>'s process. <c>ip netns exec</c> executes tunstack in its own process,
    /// so the PID is tunstack's; the process name is checked to be sure.
    /// </summary>
    public static HostMemory Of(StackHost host)
    {
        int pid = host.Process.Pid;
        string name = File.ReadAllText($"/proc/{pid}/comm").Trim();
        host.Check(name == "tunstack", $"pid {pid} is '{name}', not tunstack: the measurement would be of something else");
        string status = File.ReadAllText($"/proc/{pid}/status");
        host.Check(ProcessMemory.TryParseStatus(status, out long resident, out long peak), $"no VmRSS/VmHWM in /proc/{pid}/status");
        return new HostMemory(resident, peak);
    }

    /// <summary>
    /// Polls until resident memory has settled: no change of 256 KiB or more for <paramref name="quiet"/> (3 s by
    /// default). After a burst the host is still collecting, and once it has been quiet for a second or two it gives
    /// memory back (<see cref="QuietTimeTrimmer"/>); what is left then is what the host holds. Returns the last reading,
    /// settled or not by <paramref name="deadline"/>.
    /// </summary>
    public static async Task<HostMemory> SettledAsync(StackHost host, TimeSpan deadline, TimeSpan? quiet = null)
    {
        var stable = quiet ?? TimeSpan.FromSeconds(3);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var reference = Of(host);
        var since = clock.Elapsed;
        while (true)
        {
            await Task.Delay(250);
            var current = Of(host);
            if (Math.Abs(current.ResidentBytes - reference.ResidentBytes) >= 256 * 1024)
            {
                reference = current;
                since = clock.Elapsed;
            }
            else if (clock.Elapsed - since >= stable || clock.Elapsed > deadline)
            {
                return current;
            }
        }
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"VmRSS {ResidentMegabytes:F1} MB, VmHWM {PeakMegabytes:F1} MB");
}

/// <summary>GET /stats from inside the namespace.</summary>
public static class HostStats
{
    public static async Task<JsonDocument> GetAsync(NetNamespace ns, StackHost host)
    {
        var r = await ns.RunAsync(TimeSpan.FromSeconds(15), "curl", "-sS", "-m", "10", $"http://{StackHost.StackAddress}/stats");
        host.Check(r.Succeeded, $"GET /stats failed: {r}");
        return JsonDocument.Parse(r.Stdout);
    }

    public static long Counter(this JsonDocument stats, string name) =>
        stats.RootElement.GetProperty("counters").GetProperty(name).GetInt64();

    public static long Drop(this JsonDocument stats, string reason) =>
        stats.RootElement.GetProperty("drops").TryGetProperty(reason, out var count) ? count.GetInt64() : 0;

    public static int State(this JsonDocument stats, string state) =>
        stats.RootElement.GetProperty("connectionStates").TryGetProperty(state, out var count) ? count.GetInt32() : 0;

    /// <summary>Fails unless the stack counted no internal error of any kind.</summary>
    public static void CheckNoInternalError(this JsonDocument stats, StackHost host)
    {
        host.Check(stats.Counter("internalErrors") == 0, $"internalErrors = {stats.Counter("internalErrors")}");
        host.Check(stats.Drop("InternalError") == 0, $"InternalError drops = {stats.Drop("InternalError")}");
    }
}
