using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Wzp.Gateway;
using Wzp.Grains;

namespace Wzp.Silo;

/// <summary>
/// Composes a Wzp silo into any host. The all-in-one mode adds its gateway services to the same builder next to
/// <see cref="AddWzpSilo"/>; tests call <see cref="AddWzpControlPlane"/> on their own silos.
/// </summary>
public static class SiloHostBuilderExtensions
{
    /// <summary>
    /// Adds an Orleans silo configured from <paramref name="builder"/>'s configuration: the <c>Orleans</c> section
    /// (cluster ids, localhost or Redis clustering), the <c>Cluster</c> section (control plane limits and timings), and
    /// the <c>Events</c> and <c>Webhooks</c> sections (room events, <see cref="RoomEventsSiloBuilderExtensions.AddWzpRoomEvents"/>).
    /// </summary>
    /// <param name="builder">The host to add the silo to.</param>
    /// <param name="configureSilo">Further silo configuration, applied last.</param>
    public static IHostApplicationBuilder AddWzpSilo(this IHostApplicationBuilder builder, Action<ISiloBuilder>? configureSilo = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var orleans = WzpOrleansOptions.Read(builder.Configuration);
        var tlsSettings = ControlPlaneTlsSettings.Read(builder.Configuration, orleans.Clustering.Mode == ClusteringMode.Redis);
        var tls = tlsSettings.IsOn(orleans.Clustering.Mode == ClusteringMode.Redis) ? ControlPlaneTls.Load(tlsSettings) : null;

        // Services.AddOrleans rather than UseOrleans: UseOrleans hands the host configuration to Orleans, which
        // then reads our Orleans:Clustering section as its own provider syntax (Orleans:Clustering:ProviderType)
        // and fails. Our section is read above and applied in code instead.
        builder.Services.AddOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(options =>
            {
                options.ClusterId = orleans.ClusterId;
                options.ServiceId = orleans.ServiceId;
            });

            var clustering = orleans.Clustering;
            if (clustering.Mode == ClusteringMode.Redis)
            {
                silo.UseRedisClustering(clustering.RedisConnectionString);
                silo.ConfigureEndpoints(
                    IPAddress.Parse(clustering.AdvertisedAddress), clustering.SiloPort, clustering.GatewayPort, listenOnAnyHostAddress: false);
            }
            else
            {
                silo.UseLocalhostClustering(clustering.SiloPort, clustering.GatewayPort, serviceId: orleans.ServiceId, clusterId: orleans.ClusterId);
            }

            // Failure detection timings (ProbeTimeout, NumMissedProbesLimit, ...) stay Orleans' defaults unless the
            // operator sets them here; tests shorten them to see a killed silo declared dead quickly.
            silo.Configure<ClusterMembershipOptions>(builder.Configuration.GetSection("Orleans:Membership"));
            if (tls is not null) silo.UseTls(tls.Certificate, tls.Configure);
            silo.AddWzpControlPlane(builder.Configuration);
            silo.AddWzpRoomEvents(builder.Configuration);
            configureSilo?.Invoke(silo);
        });
        return builder;
    }

    /// <summary>Adds the control plane (rooms, gateway directory) and its <c>Cluster</c> options to a silo.</summary>
    public static ISiloBuilder AddWzpControlPlane(this ISiloBuilder silo, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(silo);
        silo.Services.AddWzpControlPlaneOptions(configuration);
        return silo;
    }
}
