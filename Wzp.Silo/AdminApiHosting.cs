using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Wzp.Gateway;

namespace Wzp.Silo;

/// <summary>Adds the room administration API (<see cref="AdminApi"/>) to a silo host.</summary>
public static class AdminApiHosting
{
    /// <summary>
    /// Serves the API from the <c>Admin</c> section, accepting admin grants of the issuers in <c>Gateway:Grants</c>.
    /// Not part of <see cref="SiloHostBuilderExtensions.AddWzpSilo"/>: test hosts run several silos in one process,
    /// and they must not compete for one port. Add it after the silo, so that the silo runs when the API starts.
    /// </summary>
    public static IHostApplicationBuilder AddWzpAdminApi(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<AdminApiOptions>().Bind(builder.Configuration.GetSection(AdminApiOptions.SectionName)).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<AdminApiOptions>, AdminApiOptionsValidator>();
        var grants = builder.Configuration.GetSection($"{GatewayOptions.SectionName}:Grants").Get<GatewayGrantOptions>() ?? new GatewayGrantOptions();
        builder.Services.AddSingleton(new AdminApiHost.Grants(grants));
        builder.Services.AddSingleton<AdminApiHost>();
        builder.Services.AddHostedService(services => services.GetRequiredService<AdminApiHost>());
        return builder;
    }
}

/// <summary>Runs the <see cref="AdminApi"/> for the life of the host.</summary>
public sealed class AdminApiHost(IGrainFactory grains, IOptions<AdminApiOptions> options, AdminApiHost.Grants grants, ILoggerFactory loggerFactory) : IHostedService
{
    private AdminApi? _api;

    /// <summary>The grant settings the API accepts admin grants by.</summary>
    public sealed record Grants(GatewayGrantOptions Options);

    /// <summary>Where the API listens, once started; null when disabled.</summary>
    public Uri? Address => _api?.Address;

    /// <inheritdoc/>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.Enabled) return;
        _api = await AdminApi.StartAsync(grains, options.Value, grants.Options, loggerFactory, TimeProvider.System, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_api is not null) await _api.DisposeAsync().ConfigureAwait(false);
        _api = null;
    }
}
