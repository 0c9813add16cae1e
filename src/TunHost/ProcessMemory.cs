namespace TunStack.Host;

/// <summary>The process's resident memory as Linux counts it (<c>/proc/self/status</c>).</summary>
public static class ProcessMemory
{
    /// <summary>
    /// Reads VmRSS (resident now) and VmHWM (the most ever resident) in bytes. False where /proc is not available.
    /// </summary>
    public static bool TryRead(out long residentBytes, out long peakResidentBytes) =>
        TryParseStatus(ReadStatus(), out residentBytes, out peakResidentBytes);

    private static string? ReadStatus()
    {
        try
        {
            return File.ReadAllText("/proc/self/status");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Parses the <c>VmRSS:</c> and <c>VmHWM:</c> lines ("VmRSS:    40504 kB") of a status file.</summary>
    public static bool TryParseStatus(string? status, out long residentBytes, out long peakResidentBytes)
    {
        residentBytes = peakResidentBytes = -1;
        if (status is null)
            return false;
        foreach (var line in status.AsSpan().EnumerateLines())
        {
            if (line.StartsWith("VmRSS:"))
                residentBytes = Kilobytes(line["VmRSS:".Length..]);
            else if (line.StartsWith("VmHWM:"))
                peakResidentBytes = Kilobytes(line["VmHWM:".Length..]);
        }
        return residentBytes >= 0 && peakResidentBytes >= 0;
    }

    private static long Kilobytes(ReadOnlySpan<char> value)
    {
        value = value.Trim();
        if (!value.EndsWith(" kB"))
            return -1;
        return long.TryParse(value[..^3].Trim(), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : -1;
    }
}
