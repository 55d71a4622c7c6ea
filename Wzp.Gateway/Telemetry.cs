using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Wzp.Gateway;

/// <summary>The <c>Telemetry</c> section of appsettings.json, shared by the silo and the gateway process.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "Telemetry";

    /// <summary>Serve metrics and <c>/healthz</c>. Defaults to true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Base URL of the HTTP listener: Prometheus scrapes <c>{base}metrics</c>, probes ask <c>{base}healthz</c>.
    /// Defaults to empty, meaning the process's own default: <c>http://127.0.0.1:9464/</c> for a silo,
    /// <c>http://127.0.0.1:9465/</c> for a gateway process. Loopback by default because metrics describe the
    /// relay's load to whoever can read them; expose it only to the monitoring network. Several processes on one
    /// machine need distinct ports.
    /// </summary>
    public string PrometheusEndpoint { get; set; } = "";

    /// <summary>Longest time <c>/healthz</c> waits on the cluster before reporting it unreachable. Defaults to 2 seconds.</summary>
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The endpoint to serve: <see cref="PrometheusEndpoint"/> or, when empty, <paramref name="processDefault"/>.</summary>
    public Uri ResolveEndpoint(string processDefault) =>
        new(string.IsNullOrWhiteSpace(PrometheusEndpoint) ? processDefault : PrometheusEndpoint, UriKind.Absolute);
}

/// <summary>One part of a process's health, as <c>/healthz</c> reports it.</summary>
public interface IHealthProbe
{
    /// <summary>Short name of what is checked (<c>silo</c>, <c>gateway</c>, ...).</summary>
    string Name { get; }

    /// <summary>Checks once; must honour <paramref name="cancellationToken"/> (the health timeout).</summary>
    Task<HealthResult> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>A probe's verdict and a short detail for the operator (never a secret).</summary>
public readonly record struct HealthResult(bool Healthy, string Detail);

/// <summary>Prometheus metrics and the <c>/healthz</c> endpoint of a Wzp process.</summary>
public static class TelemetryHosting
{
    /// <summary>
    /// Exports <paramref name="meters"/> through OpenTelemetry to a Prometheus scrape endpoint and serves
    /// <c>/healthz</c> from the registered <see cref="IHealthProbe"/>s, both under <c>Telemetry:PrometheusEndpoint</c>
    /// (or <paramref name="processDefault"/>). Nothing is served when <c>Telemetry:Enabled</c> is false.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configuration">The host's configuration (section <c>Telemetry</c>).</param>
    /// <param name="serviceName">The <c>service_name</c> of <c>target_info</c>: <c>wzp-silo</c> or <c>wzp-gateway</c>.</param>
    /// <param name="processDefault">The endpoint when <c>Telemetry:PrometheusEndpoint</c> is empty.</param>
    /// <param name="meters">The meters to export.</param>
    public static IServiceCollection AddWzpTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName, string processDefault,
        params string[] meters)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(TelemetryOptions.SectionName).Get<TelemetryOptions>() ?? new TelemetryOptions();
        services.AddSingleton(Options.Create(options));
        if (!options.Enabled) return services;
        if (!Uri.TryCreate(string.IsNullOrWhiteSpace(options.PrometheusEndpoint) ? processDefault : options.PrometheusEndpoint, UriKind.Absolute, out var endpoint)
            || endpoint.Scheme != Uri.UriSchemeHttp || endpoint.AbsolutePath != "/")
        {
            throw new OptionsValidationException(TelemetryOptions.SectionName, typeof(TelemetryOptions),
                [$"Telemetry:PrometheusEndpoint '{options.PrometheusEndpoint}' must be an http://host:port/ base URL."]);
        }

        services.AddOpenTelemetry().ConfigureResource(resource => resource.AddService(serviceName)).WithMetrics(metrics =>
        {
            metrics.AddMeter(meters);
            metrics.AddPrometheusHttpListener(listener =>
            {
                listener.Host = endpoint.Host;
                listener.Port = endpoint.Port;
                listener.ScrapeEndpointPath = "/metrics";
                // A scrape should see the counters of that moment; the default 300 ms cache would hide a fresh change.
                listener.ScrapeResponseCacheDurationMilliseconds = 0;
            });
        });
        services.AddHostedService(provider => new HealthEndpoint(
            new Uri(endpoint, "healthz/"), options.HealthTimeout, provider.GetServices<IHealthProbe>(),
            provider.GetRequiredService<ILogger<HealthEndpoint>>()));
        return services;
    }
}

/// <summary>
/// Answers <c>GET /healthz</c>: 200 when every probe is healthy, 503 otherwise, with a small JSON body per probe.
/// Its own <see cref="HttpListener"/> on the metrics port: the managed listener shares one socket per port and
/// routes by the longest matching prefix, so it coexists with the Prometheus exporter's <c>/metrics/</c>.
/// </summary>
internal sealed partial class HealthEndpoint(Uri prefix, TimeSpan timeout, IEnumerable<IHealthProbe> probes, ILogger<HealthEndpoint> logger)
    : BackgroundService
{
    private readonly IHealthProbe[] _probes = [.. probes];
    private readonly HttpListener _listener = new();

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Started here rather than in ExecuteAsync so that a port conflict fails the host start loudly.
        _listener.Prefixes.Add(prefix.ToString());
        _listener.Start();
        Log.Listening(logger, prefix);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var registration = stoppingToken.Register(_listener.Stop);
        while (!stoppingToken.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = AnswerAsync(context, stoppingToken);
        }
    }

    private async Task AnswerAsync(HttpListenerContext context, CancellationToken stoppingToken)
    {
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            deadline.CancelAfter(timeout);
            var results = await Task.WhenAll(_probes.Select(probe => CheckAsync(probe, deadline.Token))).ConfigureAwait(false);
            var healthy = results.All(r => r.Result.Healthy);
            var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
            {
                ["status"] = healthy ? "healthy" : "unhealthy",
                ["checks"] = results.ToDictionary(r => r.Name, r => new Dictionary<string, object> { ["healthy"] = r.Result.Healthy, ["detail"] = r.Result.Detail }),
            });
            context.Response.StatusCode = healthy ? 200 : 503;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength64 = body.Length;
            await context.Response.OutputStream.WriteAsync(body, stoppingToken).ConfigureAwait(false);
            context.Response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or OperationCanceledException or IOException)
        {
            // The prober went away or the process is stopping.
            context.Response.Abort();
        }
    }

    private static async Task<(string Name, HealthResult Result)> CheckAsync(IHealthProbe probe, CancellationToken cancellationToken)
    {
        try
        {
            return (probe.Name, await probe.CheckAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            return (probe.Name, new HealthResult(false, "no answer within the health timeout"));
        }
        catch (Exception e)
        {
            return (probe.Name, new HealthResult(false, $"{e.GetType().Name}: {e.Message}"));
        }
    }

    public override void Dispose()
    {
        ((IDisposable)_listener).Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Health endpoint listening on {Prefix}")]
        public static partial void Listening(ILogger logger, Uri prefix);
    }
}
