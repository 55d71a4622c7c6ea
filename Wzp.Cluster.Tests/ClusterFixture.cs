using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;
using Wzp.Grains;
using Wzp.Silo;

namespace Wzp.Cluster.Tests;

/// <summary>
/// One in-process cluster of two silos for every test of the collection. Periods are short so that expiry,
/// rekey deadlines and periodic epochs happen within a test; the members-per-room limit keeps its default.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const string Collection = "cluster";

    /// <summary>The <c>Cluster</c> section the silos and test gateways use.</summary>
    public static IConfiguration Configuration { get; } = new ConfigurationBuilder()
        .AddInMemoryCollection(new Dictionary<string, string?>
        {
            // Generous against a busy 2-core machine: a gateway must never miss these by accident, and the real
            // gateways of the end-to-end tests rekey their clients over QUIC (debounced by a second) before reporting.
            ["Cluster:RekeyTimeout"] = "00:00:05",
            ["Cluster:GatewayExpiry"] = "00:00:03",
            ["Cluster:GatewayHeartbeatPeriod"] = "00:00:00.250",
            ["Cluster:EpochPeriod"] = "00:00:06",
            ["Cluster:RoomGatewayCheckPeriod"] = "00:00:01",
        })
        .Build();

    private InProcessTestCluster? _cluster;

    public InProcessTestCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is not deployed.");

    public IClusterClient Client => Cluster.Client;

    public ControlPlaneOptions Options { get; } = Configuration.GetSection(ControlPlaneOptions.SectionName).Get<ControlPlaneOptions>()!;

    public async Task InitializeAsync()
    {
        _cluster = Build(Configuration, silo => silo.AddIncomingGrainCallFilter<SlowRoomFilter>());
        await _cluster.DeployAsync();
    }

    /// <summary>Two silos with the control plane on <paramref name="configuration"/>, quick death detection and
    /// 10 s grain calls; <paramref name="configure"/> adds what a fixture needs on top.</summary>
    internal static InProcessTestCluster Build(IConfiguration configuration, Action<ISiloBuilder> configure)
    {
        var builder = new InProcessTestClusterBuilder(2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddWzpControlPlane(configuration);
            // A killed silo must be declared dead within seconds, not the production default of tens of seconds.
            silo.Configure<ClusterMembershipOptions>(options =>
            {
                options.ProbeTimeout = TimeSpan.FromMilliseconds(500);
                options.NumMissedProbesLimit = 2;
                options.NumVotesForDeathDeclaration = 1;
            });
            silo.Configure<SiloMessagingOptions>(options => options.ResponseTimeout = TimeSpan.FromSeconds(10));
            configure(silo);
        });
        builder.ConfigureClient(client =>
            client.Configure<ClientMessagingOptions>(options => options.ResponseTimeout = TimeSpan.FromSeconds(10)));
        return builder.Build();
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.StopAllSilosAsync();
            await _cluster.DisposeAsync();
        }
    }
}

/// <summary>
/// A room whose silo is dying, on demand: stamp polls of rooms named <c>slow-*</c> take <see cref="Delay"/>
/// (far longer than a gateway waits for them), everything else is untouched.
/// </summary>
public sealed class SlowRoomFilter : IIncomingGrainCallFilter
{
    public static readonly TimeSpan Delay = TimeSpan.FromSeconds(8);

    public async Task Invoke(IIncomingGrainCallContext context)
    {
        if (context.Grain is IRoomGrain room && context.InterfaceMethod?.Name == nameof(IRoomGrain.GetStamp)
            && room.GetPrimaryKeyString().StartsWith("slow-", StringComparison.Ordinal))
        {
            await Task.Delay(Delay);
        }

        await context.Invoke();
    }
}

[CollectionDefinition(ClusterFixture.Collection)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>;
