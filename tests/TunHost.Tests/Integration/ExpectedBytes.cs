using System.Security.Cryptography;

namespace TunStack.Host.Tests.Integration;

/// <summary>The body of <c>GET /bytes/N</c>: byte i is <see cref="Pattern"/>[i % 64].</summary>
public static class ExpectedBytes
{
    public const string Pattern = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

    /// <summary>SHA-256 (lower-case hex) of the first <paramref name="length"/> bytes, computed in 64 KB chunks.</summary>
    public static string Sha256(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        // 64 KB is a whole number of patterns, so every chunk (and the last partial one) starts at P[0].
        byte[] chunk = new byte[64 * 1024];
        for (int i = 0; i < chunk.Length; i++)
            chunk[i] = (byte)Pattern[i % Pattern.Length];

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long left = length; left > 0; left -= chunk.Length)
            hash.AppendData(chunk, 0, (int)Math.Min(left, chunk.Length));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public static string Sha256Of(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
