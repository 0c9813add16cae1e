using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace TunStack.Host.Tests.Integration;

public enum TransferDirection
{
    /// <summary><c>curl http://198.18.0.2/bytes/N</c>: the stack sends, the kernel receives.</summary>
    Download,

    /// <summary><c>curl -X POST -T - http://198.18.0.2/sha256</c> (chunked): the kernel sends, the stack receives.</summary>
    Upload,
}

/// <summary>
/// Upload content: 8-byte blocks, block i being SplitMix64's output for seed + i·γ. It has no period short of 2^64
/// blocks, so a misplaced, lost or duplicated segment of any size changes the SHA-256. Generated as it is sent.
/// </summary>
public static class UploadContent
{
    /// <summary>Fills <paramref name="destination"/> with the content from byte <paramref name="offset"/> (a multiple of 8).</summary>
    public static void Fill(Span<byte> destination, long offset, ulong seed)
    {
        if (offset % 8 != 0)
            throw new ArgumentOutOfRangeException(nameof(offset), "offset must be a multiple of 8");
        ulong block = (ulong)offset / 8;
        int i = 0;
        for (; i + 8 <= destination.Length; i += 8, block++)
            BinaryPrimitives.WriteUInt64LittleEndian(destination[i..], Mix(seed + (block * 0x9E3779B97F4A7C15UL)));
        if (i < destination.Length)
        {
            Span<byte> last = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(last, Mix(seed + (block * 0x9E3779B97F4A7C15UL)));
            last[..(destination.Length - i)].CopyTo(destination[i..]);
        }
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// One large transfer with curl inside the namespace, streamed through this process (never held in memory) and
/// hashed on the way: a download of <c>/bytes/N</c> checked against <see cref="ExpectedBytes"/>, or an upload of
/// <see cref="UploadContent"/> whose SHA-256 the stack's <c>POST /sha256</c> answers. While it runs, <c>ss -tin</c> is
/// sampled every second (the kernel's view, kept for the report) and a transfer that makes no progress for
/// <see cref="StallLimit"/> is stopped. The kernel's TCP counters are read before and after.
/// </summary>
public sealed class BulkTransfer
{
    private const int ChunkSize = 1 << 20;
    private const int WritePiece = 64 << 10;

    public required TransferDirection Direction { get; init; }

    public required long Length { get; init; }

    /// <summary>curl's <c>-m</c>: the whole transfer must finish within this.</summary>
    public required TimeSpan TimeLimit { get; init; }

    /// <summary>Stop early when no byte has moved for this long.</summary>
    public TimeSpan StallLimit { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Seed of the upload content.</summary>
    public ulong Seed { get; init; } = 20240501;

    /// <summary>Words for the report: MTU, impairment.</summary>
    public string Context { get; init; } = "";

    /// <summary>Transfer over IPv6, to <see cref="StackHost.StackAddress6"/> (<c>curl -6</c>), instead of IPv4.</summary>
    public bool Ipv6 { get; init; }

    public async Task<TransferReport> RunAsync(NetNamespace ns)
    {
        var before = await KernelTcpView.ReadCountersAsync(ns);
        string url = "http://" + StackHost.StackAddress;
        string dataUrl = Ipv6 ? $"http://[{StackHost.StackAddress6}]" : url;
        string family = Ipv6 ? "-6" : "-4";
        string stackAddress = Ipv6 ? StackHost.StackAddress6 : StackHost.StackAddress;
        string limit = ((int)Math.Ceiling(TimeLimit.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        const string writeOut = "%{stderr}curl: http %{http_code}, uploaded %{size_upload} B, downloaded %{size_download} B in %{time_total} s\n";
        string[] command = Direction == TransferDirection.Download
            ? ["curl", family, "-g", "-sS", "-f", "-m", limit, "-w", writeOut, $"{dataUrl}/bytes/{Length}"]
            : ["curl", family, "-g", "-sS", "-f", "-m", limit, "-X", "POST", "-T", "-", "-H", "Content-Type: application/octet-stream", "-w", writeOut, $"{dataUrl}/sha256"];

        var progress = new Progress();
        var clock = Stopwatch.StartNew();
        using var process = ns.StartStreaming(command);
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Task<string> stdout;
        Task<(string? Sha256, long? FirstWrongByte)> pump;
        if (Direction == TransferDirection.Download)
        {
            process.StandardInput.Close();
            stdout = Task.FromResult(string.Empty);
            pump = ReadDownloadAsync(process.StandardOutput.BaseStream, progress);
        }
        else
        {
            stdout = process.StandardOutput.ReadToEndAsync();
            pump = WriteUploadAsync(process.StandardInput.BaseStream, progress);
        }

        string sockets = "";
        TimeSpan socketsAt = TimeSpan.Zero;
        string? stopped = null;
        long lastProgress = 0;
        TimeSpan lastProgressAt = TimeSpan.Zero;
        Task exited = process.WaitForExitAsync();
        while (!exited.IsCompleted)
        {
            await Task.WhenAny(exited, Task.Delay(TimeSpan.FromSeconds(1)));
            if (exited.IsCompleted)
                break;
            string sample = await KernelTcpView.SocketsAsync(ns, stackAddress);
            if (sample.Length > 0)
            {
                sockets = sample;
                socketsAt = clock.Elapsed;
            }

            // Progress is bytes through curl, or (uploads) bytes the kernel saw acknowledged while curl's buffers are full.
            long moved = progress.Bytes;
            long measure = moved + (KernelTcpView.Field(sample, "bytes_acked") ?? 0);
            if (measure != lastProgress)
            {
                lastProgress = measure;
                lastProgressAt = clock.Elapsed;
            }
            else if (clock.Elapsed - lastProgressAt > StallLimit)
            {
                stopped = $"stopped after {StallLimit.TotalSeconds:F0} s without progress, stuck at {moved} bytes";
            }
            else if (clock.Elapsed > TimeLimit + TimeSpan.FromSeconds(15))
            {
                stopped = $"curl was still running {clock.Elapsed.TotalSeconds:F0} s after its {limit} s limit";
            }

            if (stopped is not null)
            {
                ProcessRunner.KillQuietly(process);
                break;
            }
        }

        await process.WaitForExitAsync();
        TimeSpan elapsed = clock.Elapsed;
        (string? actual, long? firstWrong) = await pump;
        string curlSays = (await stderr).Trim().ReplaceLineEndings(" | ");
        string answer = (await stdout).Trim();
        string? expected = null;
        if (Direction == TransferDirection.Download)
        {
            expected = ExpectedBytes.Sha256(Length);
        }
        else
        {
            expected = actual; // what was sent; null when not all of it could be
            actual = answer.Length > 0 ? answer : null;
        }

        var after = await KernelTcpView.ReadCountersAsync(ns);
        var stats = await ns.RunAsync(TimeSpan.FromSeconds(15), "curl", "-sS", "-m", "5", url + "/stats");
        var link = await ns.RunAsync(TimeSpan.FromSeconds(15), "ip", "-s", "link", "show", "dev", StackHost.Device);
        return new TransferReport
        {
            Direction = Direction,
            Length = Length,
            Context = Context,
            Elapsed = elapsed,
            BytesMoved = progress.Bytes,
            CurlExitCode = process.ExitCode,
            CurlSays = curlSays,
            StopReason = stopped,
            ExpectedSha256 = expected,
            ActualSha256 = actual,
            FirstWrongByte = firstWrong,
            CountersBefore = before,
            CountersAfter = after,
            LastSockets = sockets,
            LastSocketsAt = socketsAt,
            StackStats = stats.Succeeded ? stats.Stdout : $"(unavailable: {stats})",
            LinkStatistics = link.Succeeded ? link.Stdout.TrimEnd() : $"(unavailable: {link})",
        };
    }

    /// <summary>Hashes the body as it comes and notes the first byte that is not the pattern's.</summary>
    private async Task<(string?, long?)> ReadDownloadAsync(Stream body, Progress progress)
    {
        byte[] pattern = new byte[ChunkSize + ExpectedBytes.Pattern.Length];
        for (int i = 0; i < pattern.Length; i++)
            pattern[i] = (byte)ExpectedBytes.Pattern[i % ExpectedBytes.Pattern.Length];
        byte[] buffer = new byte[ChunkSize];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long offset = 0;
        long? firstWrong = null;
        while (true)
        {
            int n = await body.ReadAsync(buffer);
            if (n == 0)
                break;
            ReadOnlySpan<byte> data = buffer.AsSpan(0, n);
            hash.AppendData(data);
            if (firstWrong is null)
            {
                ReadOnlySpan<byte> expected = pattern.AsSpan((int)(offset % ExpectedBytes.Pattern.Length), n);
                int same = data.CommonPrefixLength(expected);
                if (same < n)
                    firstWrong = offset + same;
            }
            offset += n;
            progress.Add(n);
        }
        return (Convert.ToHexStringLower(hash.GetHashAndReset()), firstWrong ?? (offset > Length ? Length : (long?)null));
    }

    /// <summary>Generates and sends the content; returns its SHA-256, or null when curl stopped taking it.</summary>
    private async Task<(string?, long?)> WriteUploadAsync(Stream stdin, Progress progress)
    {
        byte[] buffer = new byte[ChunkSize];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            for (long offset = 0; offset < Length; offset += ChunkSize)
            {
                int n = (int)Math.Min(ChunkSize, Length - offset);
                UploadContent.Fill(buffer.AsSpan(0, n), offset, Seed);
                hash.AppendData(buffer, 0, n);
                // In pieces, so that progress is seen while curl's pipe and socket buffers fill.
                for (int at = 0; at < n; at += WritePiece)
                {
                    int piece = Math.Min(WritePiece, n - at);
                    await stdin.WriteAsync(buffer.AsMemory(at, piece));
                    progress.Add(piece);
                }
            }
            await stdin.FlushAsync();
            stdin.Close();
            return (Convert.ToHexStringLower(hash.GetHashAndReset()), null);
        }
        catch (IOException)
        {
            return (null, null); // curl is gone; its exit code and message say why
        }
    }

    private sealed class Progress
    {
        private long _bytes;

        public long Bytes => Interlocked.Read(ref _bytes);

        public void Add(long n) => Interlocked.Add(ref _bytes, n);
    }
}

/// <summary>What happened in a <see cref="BulkTransfer"/>, with everything a failure message needs.</summary>
public sealed record TransferReport
{
    public required TransferDirection Direction { get; init; }
    public required long Length { get; init; }
    public required string Context { get; init; }
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Bytes read from curl (download) or written to curl (upload).</summary>
    public required long BytesMoved { get; init; }
    public required int CurlExitCode { get; init; }
    public required string CurlSays { get; init; }
    public required string? StopReason { get; init; }
    public required string? ExpectedSha256 { get; init; }
    public required string? ActualSha256 { get; init; }

    /// <summary>Download: offset of the first byte that differs from the pattern (or the length, when too many came).</summary>
    public required long? FirstWrongByte { get; init; }
    public required IReadOnlyDictionary<string, long> CountersBefore { get; init; }
    public required IReadOnlyDictionary<string, long> CountersAfter { get; init; }
    public required string LastSockets { get; init; }
    public required TimeSpan LastSocketsAt { get; init; }
    public required string StackStats { get; init; }

    /// <summary><c>ip -s link show tun0</c> after the transfer: TX dropped counts packets the stack did not read in time.</summary>
    public required string LinkStatistics { get; init; }

    public bool HashMatches => ExpectedSha256 is not null && ExpectedSha256 == ActualSha256;

    public bool Succeeded =>
        CurlExitCode == 0 && StopReason is null && HashMatches && FirstWrongByte is null &&
        (Direction == TransferDirection.Upload || BytesMoved == Length);

    /// <summary>The kernel's TCPTimeouts during the transfer (retransmission timer expiries of its sockets).</summary>
    public long KernelTimeouts => Delta("TcpExt.TCPTimeouts");

    public long Delta(string counter) => KernelTcpView.Delta(CountersBefore, CountersAfter, counter);

    /// <summary>A number from the stack's /stats JSON, e.g. ("impairment", "outbound", "dropped"); null when absent.</summary>
    public long? Stat(params string[] path)
    {
        try
        {
            using var doc = JsonDocument.Parse(StackStats);
            JsonElement e = doc.RootElement;
            foreach (string name in path)
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out e))
                    return null;
            }
            return e.ValueKind == JsonValueKind.Number ? e.GetInt64() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public string Describe()
    {
        var text = new StringBuilder();
        string what = Direction == TransferDirection.Download ? "download" : "upload";
        text.Append(CultureInfo.InvariantCulture, $"{what} of {Length} bytes ({Length / (1024.0 * 1024):F0} MiB) {Context}: ");
        text.Append(Succeeded ? "complete and intact" : string.Join("; ", Problems()));
        double rate = Elapsed.TotalSeconds > 0 ? BytesMoved / Elapsed.TotalSeconds / 1e6 : 0;
        text.Append(CultureInfo.InvariantCulture,
            $"\n  after {Elapsed.TotalSeconds:F1} s: {BytesMoved} bytes {(Direction == TransferDirection.Download ? "received from" : "given to")} curl ({100.0 * BytesMoved / Length:F1}%, {rate:F1} MB/s)");
        if (Direction == TransferDirection.Upload && KernelTcpView.Field(LastSockets, "bytes_acked") is { } acked)
            text.Append(CultureInfo.InvariantCulture, $"; the kernel saw {acked} bytes acknowledged by the stack at {LastSocketsAt.TotalSeconds:F0} s");
        text.Append("\n  curl: exit ").Append(CurlExitCode).Append(CurlExitMeaning(CurlExitCode)).Append(": ").Append(CurlSays.Length > 0 ? CurlSays : "(nothing on stderr)");
        text.Append("\n  SHA-256 expected ").Append(ExpectedSha256 ?? "(unknown: not all content was sent)")
            .Append(", ").Append(Direction == TransferDirection.Download ? "received " : "the stack answered ").Append(ActualSha256 ?? "(none)");
        if (FirstWrongByte is { } wrong)
            text.Append(CultureInfo.InvariantCulture, $"; first byte differing from the pattern at offset {wrong}");
        text.Append("\n  kernel TCP counters during the transfer: ").Append(KernelTcpView.DescribeDeltas(CountersBefore, CountersAfter));
        text.Append("\n  tunstack counters: ").Append(StatsSummary());
        text.Append(CultureInfo.InvariantCulture, $"\n  kernel sockets (ss -tin, last sample with a connection, at {LastSocketsAt.TotalSeconds:F0} s):\n");
        text.Append(LastSockets.Length > 0 ? Indent(LastSockets) : "    (no connection seen)");
        text.Append("\n  kernel side of the link (ip -s link; TX is towards the stack):\n").Append(Indent(LinkStatistics));
        return text.ToString();
    }

    private IEnumerable<string> Problems()
    {
        if (StopReason is not null)
            yield return StopReason;
        if (CurlExitCode != 0)
            yield return $"curl exited {CurlExitCode}{CurlExitMeaning(CurlExitCode)}";
        if (Direction == TransferDirection.Download && BytesMoved != Length)
            yield return $"received {BytesMoved} of {Length} bytes";
        if (FirstWrongByte is not null)
            yield return $"wrong byte at offset {FirstWrongByte}";
        if (ActualSha256 is null)
            yield return Direction == TransferDirection.Upload ? "no SHA-256 from the stack" : "nothing received";
        else if (!HashMatches)
            yield return "SHA-256 differs";
    }

    private string StatsSummary()
    {
        try
        {
            using var doc = JsonDocument.Parse(StackStats);
            var parts = new List<string>();
            foreach (string section in new[] { "connections", "counters", "drops", "impairment" })
            {
                if (doc.RootElement.TryGetProperty(section, out JsonElement e))
                    parts.Add($"{section} {JsonSerializer.Serialize(e)}");
            }
            return string.Join("; ", parts);
        }
        catch (JsonException)
        {
            return StackStats.Trim();
        }
    }

    private static string CurlExitMeaning(int code) => code switch
    {
        0 => "",
        7 => " (could not connect)",
        18 => " (transfer closed with data outstanding)",
        22 => " (HTTP error status)",
        28 => " (operation timed out)",
        52 => " (empty reply)",
        55 => " (send failure)",
        56 => " (receive failure)",
        137 or -1 => " (killed)",
        _ => "",
    };

    private static string Indent(string text) =>
        string.Join('\n', text.Split('\n').Select(line => "    " + line.TrimEnd()));
}
