using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Wzp.Grains;

namespace Wzp.Gateway;

/// <summary>
/// The scale-out gateway process: an Orleans client (no grains) that runs one <see cref="GatewayServer"/>, with
/// Prometheus metrics and <c>/healthz</c>.
/// </summary>
public static partial class GatewayProcess
{
    /// <summary>Where a gateway process serves metrics and health unless <c>Telemetry:PrometheusEndpoint</c> says otherwise.</summary>
    public const string DefaultTelemetryEndpoint = "http://127.0.0.1:9465/";

    /// <summary>Exit code of a gateway that refused to start (bad credential, unusable settings, port taken).</summary>
    public const int StartupFailureExitCode = 2;

    /// <summary>
    /// Adds the Orleans client (localhost or Redis clustering, from the <c>Orleans</c> section), the gateway
    /// (<c>Gateway</c> and <c>Cluster</c> sections), its health probe, and telemetry (<c>Telemetry</c> section).
    /// </summary>
    public static IHostApplicationBuilder AddWzpGatewayProcess(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var cluster = GatewayClusterSettings.Read(builder.Configuration);
        var redis = cluster.Mode == GatewayClusterSettings.Redis;
        var tlsSettings = ControlPlaneTlsSettings.Read(builder.Configuration, redis);
        var tls = tlsSettings.IsOn(redis) ? ControlPlaneTls.Load(tlsSettings) : null;
        // Telemetry first: hosted services start in order, and /healthz must answer (unhealthy) while the
        // Orleans client is still waiting for a silo.
        builder.Services.AddWzpTelemetry(builder.Configuration, "wzp-gateway", DefaultTelemetryEndpoint, GatewayCounters.MeterName);
        builder.Services.AddWzpGatewayHealth();
        // Services.AddOrleansClient rather than UseOrleansClient, for the reason given in the silo's
        // AddWzpSilo: Orleans would otherwise read our Orleans:Clustering section as its own provider syntax.
        builder.Services.AddOrleansClient(client =>
        {
            client.Configure<ClusterOptions>(options =>
            {
                options.ClusterId = cluster.ClusterId;
                options.ServiceId = cluster.ServiceId;
            });
            if (cluster.Mode == GatewayClusterSettings.Redis)
                client.UseRedisClustering(cluster.RedisConnectionString);
            else
                client.UseLocalhostClustering(cluster.GatewayPort, cluster.ServiceId, cluster.ClusterId);
            // Grain call timeout (Orleans:Messaging:ResponseTimeout, Orleans' default 30 s): a call sent through a
            // silo that just died waits this long, holding up that room's updates on this gateway meanwhile.
            client.Configure<ClientMessagingOptions>(builder.Configuration.GetSection("Orleans:Messaging"));
            // Gateways may start before any silo: keep trying rather than exit, so start order never matters.
            client.UseConnectionRetryFilter<RetryUntilStopped>();
            if (tls is not null) client.UseTls(tls.Certificate, tls.Configure);
        });
        builder.Services.AddWzpGateway(builder.Configuration, allInOne: false);
        return builder;
    }

    /// <summary>Adds the <c>/healthz</c> probe of a hosted gateway: Orleans reachable and this gateway in the directory.</summary>
    public static IServiceCollection AddWzpGatewayHealth(this IServiceCollection services)
    {
        services.AddSingleton<IHealthProbe, GatewayHealthProbe>();
        return services;
    }

    /// <summary>
    /// Loads the identity and credential as the gateway will, before anything connects: a gateway with a missing,
    /// expired or foreign credential then fails at once with the reason, instead of after joining the cluster.
    /// </summary>
    /// <returns>Null when the credential is usable, otherwise the operator-facing reason.</returns>
    public static string? CheckCredential(IConfiguration configuration, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new GatewayOptions();
        configuration.GetSection(GatewayOptions.SectionName).Bind(options);
        var validation = new GatewayOptionsValidator().Validate(null, options);
        if (validation.Failed) return validation.FailureMessage;
        try
        {
            using var keys = GatewayKeys.Load(options, time);
            return null;
        }
        catch (GatewayStartupException e)
        {
            return e.Message;
        }
    }

    /// <summary>Logs, at Critical, why the gateway refuses to start (what <see cref="CheckCredential"/> returned).</summary>
    public static void LogRefusal(ILogger logger, string reason) => Log.CannotStart(logger, reason);

    private sealed partial class RetryUntilStopped(ILogger<RetryUntilStopped> logger) : IClientConnectionRetryFilter
    {
        private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

        public async Task<bool> ShouldRetryConnectionAttempt(Exception exception, CancellationToken cancellationToken)
        {
            Log.ClusterUnreachable(logger, exception.Message);
            try
            {
                // Back-off between attempts, not a wait for a condition: the next attempt is the check.
                await Task.Delay(RetryDelay, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "No silo reachable yet ({Reason}); retrying")]
        public static partial void ClusterUnreachable(ILogger logger, string reason);

        [LoggerMessage(EventId = 31, Level = LogLevel.Critical, Message = "The gateway cannot start: {Reason}")]
        public static partial void CannotStart(ILogger logger, string reason);
    }
}

/// <summary>
/// The few <c>Orleans</c> settings an Orleans client needs. The silo's own reader lives in Wzp.Silo, which this
/// project cannot reference (the silo references the gateway); the keys and defaults are the same.
/// </summary>
internal sealed record GatewayClusterSettings(string ClusterId, string ServiceId, string Mode, string RedisConnectionString, int GatewayPort)
{
    public const string Localhost = "Localhost";
    public const string Redis = "Redis";

    public static GatewayClusterSettings Read(IConfiguration configuration)
    {
        var orleans = configuration.GetSection("Orleans");
        var clustering = orleans.GetSection("Clustering");
        var settings = new GatewayClusterSettings(
            orleans["ClusterId"] ?? "wzp",
            orleans["ServiceId"] ?? "wzp",
            clustering["Mode"] ?? Localhost,
            clustering["RedisConnectionString"] ?? "127.0.0.1:6379",
            clustering.GetValue("GatewayPort", 30000));
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(settings.ClusterId) || string.IsNullOrWhiteSpace(settings.ServiceId))
            failures.Add("Orleans:ClusterId and Orleans:ServiceId must not be empty.");
        if (!settings.Mode.Equals(Localhost, StringComparison.OrdinalIgnoreCase) && !settings.Mode.Equals(Redis, StringComparison.OrdinalIgnoreCase))
            failures.Add($"Orleans:Clustering:Mode must be Localhost or Redis, not '{settings.Mode}'.");
        if (settings.GatewayPort is < 1 or > 65535) failures.Add("Orleans:Clustering:GatewayPort must be between 1 and 65535.");
        if (failures.Count > 0) throw new OptionsValidationException("Orleans", typeof(GatewayClusterSettings), failures);
        return settings with { Mode = settings.Mode.Equals(Redis, StringComparison.OrdinalIgnoreCase) ? Redis : Localhost };
    }
}

/// <summary>
/// Healthy when the gateway is running and the cluster counts it as live: the directory confirmed it within the
/// expiry, or did not answer while the other silos did (see <see cref="Wzp.Grains.Routing.GatewayAgent.SinceConfirmed"/>).
/// </summary>
internal sealed class GatewayHealthProbe(GatewayHost host, IOptions<GatewayOptions> options, IOptions<ControlPlaneOptions> controlPlane) : IHealthProbe
{
    public string Name => "gateway";

    // Healthy while the directory confirmed this gateway within the expiry: the same rule the cluster applies to
    // it, read from its own heartbeats (no call to the directory per probe).
    public Task<HealthResult> CheckAsync(CancellationToken cancellationToken)
    {
        var started = host.Started;
        if (!started.IsCompleted) return Task.FromResult(new HealthResult(false, "starting: waiting for the cluster"));
        if (!started.IsCompletedSuccessfully) return Task.FromResult(new HealthResult(false, "failed to start"));
        var gatewayId = options.Value.GatewayId;
        var since = started.Result.Agent.SinceConfirmed;
        var expiry = controlPlane.Value.GatewayExpiry;
        return Task.FromResult(since is { } s && s < expiry
            ? new HealthResult(true, $"cluster reachable; '{gatewayId}' confirmed {s.TotalSeconds:0.0} s ago")
            : new HealthResult(false, $"'{gatewayId}' not confirmed by the directory, and the cluster unreachable, for {(since ?? expiry).TotalSeconds:0.0} s (expiry {expiry.TotalSeconds:0} s)"));
    }
}
