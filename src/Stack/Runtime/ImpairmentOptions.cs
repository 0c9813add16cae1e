using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace TunStack.Runtime;

/// <summary>
/// What an <see cref="ImpairedDevice"/> does to packets, in the syntax of <c>tunstack --impair</c>:
/// <c>loss=1%,reorder=2%,dup=0.5%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=N</c>, any subset of the keys, each at
/// most once. Percentages are 0% to 100% and need their % sign; durations are a number with <c>us</c>, <c>ms</c>
/// or <c>s</c> (or a bare 0), at most 10 s; the seed is an unsigned 64-bit integer.
/// </summary>
public sealed record ImpairmentOptions
{
    /// <summary>Longest <see cref="Delay"/> or <see cref="Jitter"/> accepted.</summary>
    public static readonly TimeSpan MaxDuration = TimeSpan.FromSeconds(10);

    /// <summary>The keys of the syntax, in the order <see cref="ToString"/> writes them.</summary>
    public static readonly IReadOnlyList<string> Keys = ["loss", "reorder", "dup", "corrupt", "delay", "jitter", "seed"];

    /// <summary>Chance, in percent, that a packet is dropped.</summary>
    public double LossPercent { get; init; }

    /// <summary>Chance, in percent, that a packet is held back and delivered after the next 1 to <see cref="MaxReorderDistance"/> packets.</summary>
    public double ReorderPercent { get; init; }

    /// <summary>Chance, in percent, that a packet is delivered twice.</summary>
    public double DuplicatePercent { get; init; }

    /// <summary>Chance, in percent, that one random bit of a packet is flipped.</summary>
    public double CorruptPercent { get; init; }

    /// <summary>How long every packet is held before it is delivered.</summary>
    public TimeSpan Delay { get; init; }

    /// <summary>Each packet's delay is <see cref="Delay"/> plus a uniform draw from [-Jitter, +Jitter] (never below zero).</summary>
    public TimeSpan Jitter { get; init; }

    /// <summary>Seed of the generators; null lets the device pick one (it reports which).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Most packets that may overtake a packet held back by reordering.</summary>
    public int MaxReorderDistance { get; init; } = 3;

    /// <summary>Longest a packet held back by reordering waits for others to overtake it; then it goes anyway.</summary>
    public TimeSpan ReorderHoldLimit { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Whether any impairment is switched on.</summary>
    public bool IsActive =>
        LossPercent > 0 || ReorderPercent > 0 || DuplicatePercent > 0 || CorruptPercent > 0 || Delay > TimeSpan.Zero || Jitter > TimeSpan.Zero;

    /// <summary>Parses the <c>--impair</c> syntax; throws <see cref="FormatException"/> with a message saying what is wrong.</summary>
    public static ImpairmentOptions Parse(string text) =>
        TryParse(text, out ImpairmentOptions? options, out string? error) ? options : throw new FormatException(error);

    /// <summary>Parses the <c>--impair</c> syntax; on failure <paramref name="error"/> says what is wrong and how to write it.</summary>
    public static bool TryParse(
        string? text,
        [NotNullWhen(true)] out ImpairmentOptions? options,
        [NotNullWhen(false)] out string? error)
    {
        options = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"expected key=value pairs separated by commas, e.g. loss=1%,delay=2ms (keys: {string.Join(", ", Keys)})";
            return false;
        }

        var result = new ImpairmentOptions();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string rawItem in text.Split(','))
        {
            string item = rawItem.Trim();
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                error = item.Length == 0
                    ? $"empty item in '{text}': items are key=value separated by single commas"
                    : $"'{item}' is not key=value (keys: {string.Join(", ", Keys)})";
                return false;
            }

            string key = item[..eq].Trim();
            string value = item[(eq + 1)..].Trim();
            if (!Keys.Contains(key))
            {
                error = $"unknown key '{key}' (keys: {string.Join(", ", Keys)})";
                return false;
            }

            if (!seen.Add(key))
            {
                error = $"'{key}' is given twice";
                return false;
            }

            switch (key)
            {
                case "loss" or "reorder" or "dup" or "corrupt":
                    if (!TryParsePercent(key, value, out double percent, out error))
                    {
                        return false;
                    }

                    result = key switch
                    {
                        "loss" => result with { LossPercent = percent },
                        "reorder" => result with { ReorderPercent = percent },
                        "dup" => result with { DuplicatePercent = percent },
                        _ => result with { CorruptPercent = percent },
                    };
                    break;

                case "delay" or "jitter":
                    if (!TryParseDuration(key, value, out TimeSpan duration, out error))
                    {
                        return false;
                    }

                    result = key == "delay" ? result with { Delay = duration } : result with { Jitter = duration };
                    break;

                default:
                    if (!ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out ulong seed))
                    {
                        error = $"seed={value}: expected an unsigned integer below 2^64, e.g. seed=42";
                        return false;
                    }

                    result = result with { Seed = seed };
                    break;
            }
        }

        options = result;
        error = null;
        return true;
    }

    /// <summary>The options in the <c>--impair</c> syntax, only the keys that are set; parses back to equal options.</summary>
    public override string ToString()
    {
        var b = new StringBuilder();
        void Add(string item) => b.Append(b.Length == 0 ? string.Empty : ",").Append(item);
        if (LossPercent > 0)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"loss={LossPercent:R}%"));
        }

        if (ReorderPercent > 0)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"reorder={ReorderPercent:R}%"));
        }

        if (DuplicatePercent > 0)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"dup={DuplicatePercent:R}%"));
        }

        if (CorruptPercent > 0)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"corrupt={CorruptPercent:R}%"));
        }

        if (Delay > TimeSpan.Zero)
        {
            Add("delay=" + FormatDuration(Delay));
        }

        if (Jitter > TimeSpan.Zero)
        {
            Add("jitter=" + FormatDuration(Jitter));
        }

        if (Seed is { } seed)
        {
            Add(string.Create(CultureInfo.InvariantCulture, $"seed={seed}"));
        }

        return b.Length == 0 ? "none" : b.ToString();
    }

    private static bool TryParsePercent(string key, string value, out double percent, [NotNullWhen(false)] out string? error)
    {
        percent = 0;
        if (!value.EndsWith('%'))
        {
            error = $"{key}={value}: expected a percentage with its % sign, e.g. {key}=1% or {key}=0.5%";
            return false;
        }

        if (!double.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out percent)
            || !double.IsFinite(percent) || percent is < 0 or > 100)
        {
            error = $"{key}={value}: expected a percentage from 0% to 100%, e.g. {key}=1% or {key}=0.5%";
            return false;
        }

        error = null;
        return true;
    }

    private static bool TryParseDuration(string key, string value, out TimeSpan duration, [NotNullWhen(false)] out string? error)
    {
        duration = TimeSpan.Zero;
        (string unit, double microsPerUnit) = value.EndsWith("us", StringComparison.Ordinal) ? ("us", 1.0)
            : value.EndsWith("ms", StringComparison.Ordinal) ? ("ms", 1_000.0)
            : value.EndsWith('s') ? ("s", 1_000_000.0)
            : (string.Empty, 0.0);
        string number = value[..^unit.Length];
        if (!double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount)
            || !double.IsFinite(amount) || amount < 0 || (unit.Length == 0 && amount != 0))
        {
            error = $"{key}={value}: expected a duration such as {key}=2ms, {key}=500us or {key}=0.1s";
            return false;
        }

        double micros = Math.Round(amount * microsPerUnit);
        if (micros > MaxDuration.TotalMicroseconds)
        {
            error = $"{key}={value}: at most {MaxDuration.TotalSeconds:0} s";
            return false;
        }

        duration = TimeSpan.FromMicroseconds(micros);
        error = null;
        return true;
    }

    private static string FormatDuration(TimeSpan duration)
    {
        long micros = (long)duration.TotalMicroseconds;
        return micros % 1000 == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{micros / 1000}ms")
            : string.Create(CultureInfo.InvariantCulture, $"{micros}us");
    }
}
