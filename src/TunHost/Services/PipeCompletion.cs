using System.IO.Pipelines;

namespace TunStack.Host.Services;

/// <summary>Completes pipe ends without letting a failure escape (the connection may already be gone).</summary>
internal static class PipeCompletion
{
    public static async ValueTask CompleteQuietlyAsync(PipeReader reader)
    {
        try
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The transport is already torn down; nothing useful to report.
        }
    }

    /// <param name="error">Completes with an error: on a stack connection, a reset rather than a FIN.</param>
    public static async ValueTask CompleteQuietlyAsync(PipeWriter writer, Exception? error = null)
    {
        try
        {
            await writer.CompleteAsync(error).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // As above.
        }
    }
}
