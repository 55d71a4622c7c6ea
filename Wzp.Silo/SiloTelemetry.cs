using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;
using Wzp.Gateway;
using Wzp.Grains;

namespace Wzp.Silo;

/// <summary>Metrics and <c>/healthz</c> of a silo process (and of its gateway in all-in-one mode).</summary>
public static class SiloTelemetry
{
    /// <summary>Where a silo serves metrics and health unless <c>Telemetry:PrometheusEndpoint</c> says otherwise.</summary>
    public const string DefaultTelemetryEndpoint = "http://127.0.0.1:9464/";

    /// <summary>
    /// Exports the <c>Wzp.Silo</c> meter (and <c>Wzp.Gateway</c> when <paramref name="hostsGateway"/>) and serves
    /// <c>/healthz</c>: the silo is active in the cluster (and, all-in-one, its gateway is registered).
    /// Not part of <see cref="SiloHostBuilderExtensions.AddWzpSilo"/>: test hosts run several silos in one
    /// process, and they must not compete for one HTTP port.
    /// </summary>
    public static IHostApplicationBuilder AddWzpSiloTelemetry(this IHostApplicationBuilder builder, bool hostsGateway)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton<IHealthProbe, SiloHealthProbe>();
        // The room gauges exist from the first scrape on (0), not only once a room has activated.
        SiloMetrics.EnsureCreated();
        RoomEventMetrics.EnsureCreated();
        if (hostsGateway)
        {
            builder.Services.AddWzpGatewayHealth();
            builder.Services.AddWzpTelemetry(builder.Configuration, "wzp-silo", DefaultTelemetryEndpoint, SiloMetrics.MeterName, GatewayCounters.MeterName);
        }
        else
        {
            builder.Services.AddWzpTelemetry(builder.Configuration, "wzp-silo", DefaultTelemetryEndpoint, SiloMetrics.MeterName);
        }

        return builder;
    }

    /// <summary>Healthy while this silo is an active member of the cluster.</summary>
    private sealed class SiloHealthProbe(ISiloStatusOracle oracle) : IHealthProbe
    {
        public string Name => "silo";

        public Task<HealthResult> CheckAsync(CancellationToken cancellationToken)
        {
            var status = oracle.CurrentStatus;
            var active = oracle.GetApproximateSiloStatuses(onlyActive: true).Count;
            return Task.FromResult(new HealthResult(
                status == SiloStatus.Active,
                $"{status}; {active} active silos in the cluster"));
        }
    }
}
