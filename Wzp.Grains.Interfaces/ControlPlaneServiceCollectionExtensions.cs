using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>Registers the control plane's options; silos and gateway hosts both call it.</summary>
public static class ControlPlaneServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="ControlPlaneOptions"/> from the <c>Cluster</c> section of <paramref name="configuration"/>,
    /// validated at start-up, and provides <see cref="TimeProvider.System"/> unless a clock is already registered.
    /// </summary>
    public static IServiceCollection AddWzpControlPlaneOptions(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<ControlPlaneOptions>()
            .Bind(configuration.GetSection(ControlPlaneOptions.SectionName))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ControlPlaneOptions>, ControlPlaneOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        return services;
    }
}
