using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Wzp.Grains.Routing;

/// <summary>Hosts a <see cref="GatewayAgent"/> in a generic host (a gateway process or an all-in-one silo).</summary>
public static partial class GatewayAgentServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="GatewayAgent"/> and a hosted service that starts it once the host has
    /// started (the Orleans client or silo is up by then) and stops it, unregistering, when the host stops.
    /// Call <see cref="ControlPlaneServiceCollectionExtensions.AddWzpControlPlaneOptions"/> too.
    /// </summary>
    public static IServiceCollection AddWzpGatewayAgent(this IServiceCollection services, Func<IServiceProvider, GatewayIdentity> identity)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(identity);
        services.AddSingleton(provider => new GatewayAgent(
            provider.GetRequiredService<IGrainFactory>(),
            identity(provider),
            provider.GetRequiredService<IOptions<ControlPlaneOptions>>(),
            provider.GetService<ILoggerFactory>(),
            provider.GetService<TimeProvider>()));
        services.AddHostedService<GatewayAgentService>();
        return services;
    }

    private sealed partial class GatewayAgentService(
        GatewayAgent agent,
        IHostApplicationLifetime lifetime,
        IOptions<ControlPlaneOptions> options,
        ILogger<GatewayAgentService> logger) : IHostedService
    {
        private readonly CancellationTokenSource _stopping = new();
        private Task _starting = Task.CompletedTask;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            // Grain calls are only safe once the host (and with it the Orleans client or silo) has started.
            lifetime.ApplicationStarted.Register(() => _starting = StartWithRetriesAsync(_stopping.Token));
            return Task.CompletedTask;
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            try
            {
                await _starting.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Stopped before the first registration succeeded.
            }

            await agent.StopAsync(cancellationToken).ConfigureAwait(false);
            _stopping.Dispose();
        }

        private async Task StartWithRetriesAsync(CancellationToken cancellationToken)
        {
            using var retry = new PeriodicTimer(options.Value.GatewayHeartbeatPeriod);
            while (true)
            {
                try
                {
                    await agent.StartAsync(cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The directory may be unreachable while the cluster forms; try again a heartbeat later.
                    Log.StartFailed(logger, agent.GatewayId, exception);
                }

                await retry.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        private static partial class Log
        {
            [LoggerMessage(EventId = 1010, Level = LogLevel.Warning, Message = "Gateway {GatewayId}: registering with the directory failed; retrying")]
            public static partial void StartFailed(ILogger logger, string gatewayId, Exception exception);
        }
    }
}
