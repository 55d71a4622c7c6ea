using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Wzp.Grains;

namespace Wzp.Gateway;

/// <summary>Runs a <see cref="GatewayServer"/> inside a generic host: a gateway process or an all-in-one silo.</summary>
public static partial class GatewayHosting
{
    /// <summary>
    /// Adds the gateway, configured from the <c>Gateway</c> and <c>Cluster</c> sections. It starts once the host has
    /// started (grain calls are safe from then on) and stops, leaving its rooms, with the host.
    /// </summary>
    /// <param name="services">The host's services; an <see cref="IGrainFactory"/> (silo or Orleans client) must be among them.</param>
    /// <param name="configuration">The host's configuration.</param>
    /// <param name="allInOne">
    /// All-in-one mode: on first start create the cluster key and issue this gateway's credential with it, unless
    /// <c>Gateway:SelfIssueCredential</c> says otherwise.
    /// </param>
    public static IServiceCollection AddWzpGateway(this IServiceCollection services, IConfiguration configuration, bool allInOne = false)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddWzpControlPlaneOptions(configuration);
        var section = configuration.GetSection(GatewayOptions.SectionName);
        services.AddOptions<GatewayOptions>()
            .Configure(options =>
            {
                options.SelfIssueCredential = allInOne;
                section.Bind(options);
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddSingleton<GatewayHost>();
        services.AddHostedService(provider => provider.GetRequiredService<GatewayHost>());
        return services;
    }
}

/// <summary>The hosted gateway; <see cref="Started"/> completes with the running server (or faults with why it could not start).</summary>
public sealed partial class GatewayHost(
    IOptions<GatewayOptions> options,
    IOptions<ControlPlaneOptions> controlPlane,
    IGrainFactory grainFactory,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory) : IHostedService
{
    private readonly TaskCompletionSource<GatewayServer> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger = loggerFactory.CreateLogger<GatewayHost>();
    private Task _starting = Task.CompletedTask;
    private GatewayServer? _server;

    public Task<GatewayServer> Started => _started.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _starting = StartServerAsync(_stopping.Token));
        return Task.CompletedTask;
    }

    private async Task StartServerAsync(CancellationToken stopping)
    {
        GatewayKeys keys;
        GatewayServer server;
        try
        {
            keys = GatewayKeys.Load(options.Value, TimeProvider.System, _logger);
            try
            {
                // Reads the grant key files: a missing one stops the start like a missing credential.
                server = new GatewayServer(options.Value, keys, grainFactory, controlPlane, loggerFactory);
            }
            catch
            {
                keys.Dispose();
                throw;
            }
        }
        catch (GatewayStartupException e)
        {
            Log.CannotStart(_logger, e.Message);
            _started.TrySetException(e);
            Environment.ExitCode = 2;
            lifetime.StopApplication();
            return;
        }
        using var retry = new PeriodicTimer(TimeSpan.FromSeconds(1));
        while (true)
        {
            try
            {
                await server.StartAsync(stopping).ConfigureAwait(false);
                _server = server;
                _started.TrySetResult(server);
                return;
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or Quic.QuicException or IOException)
            {
                Log.CannotStart(_logger, $"cannot listen on {options.Value.ListenAddress}: {e.Message}");
                _started.TrySetException(new GatewayStartupException($"cannot listen on {options.Value.ListenAddress}: {e.Message}", e));
                Environment.ExitCode = 2;
                lifetime.StopApplication();
                return;
            }
            catch (Grains.Routing.GatewayRefusedException e)
            {
                Log.CannotStart(_logger, e.Message);
                _started.TrySetException(new GatewayStartupException(e.Message, e));
                Environment.ExitCode = 2;
                lifetime.StopApplication();
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The directory may be unreachable while the cluster forms.
                Log.RetryingStart(_logger, e);
            }
            try
            {
                await retry.WaitForNextTickAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _started.TrySetCanceled(stopping);
                return;
            }
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _starting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
            _server.Keys.Dispose();
        }
        _stopping.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 10, Level = LogLevel.Critical, Message = "The gateway cannot start: {Reason}")]
        public static partial void CannotStart(ILogger logger, string reason);

        [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Gateway start failed; retrying while the cluster forms")]
        public static partial void RetryingStart(ILogger logger, Exception exception);
    }
}
