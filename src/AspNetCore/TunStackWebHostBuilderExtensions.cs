using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TunStack.AspNetCore;

/// <summary>Hooks TunStack into Kestrel.</summary>
public static class TunStackWebHostBuilderExtensions
{
    /// <summary>
    /// Lets Kestrel serve the stack's endpoints: every endpoint whose address is one of <paramref name="host"/>'s
    /// (e.g. <c>options.Listen(IPAddress.Parse("198.18.0.2"), 80)</c>) is bound on the stack; all others keep Kestrel's
    /// socket transport. The host is not disposed with the web host; dispose it after the application stops.
    /// </summary>
    public static IWebHostBuilder UseTunStack(this IWebHostBuilder builder, TunStackHost host)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(host);
        return builder.ConfigureServices(services =>
        {
            services.AddSingleton(host);
            // Added after Kestrel's socket transport: Kestrel asks the last registered factory first, and ours only
            // accepts the stack's addresses.
            services.AddSingleton<IConnectionListenerFactory>(provider =>
                new TunStackConnectionListenerFactory(host, provider.GetService<ILoggerFactory>()));
        });
    }
}
