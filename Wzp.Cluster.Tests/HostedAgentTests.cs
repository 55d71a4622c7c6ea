using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Wzp.Grains;
using Wzp.Grains.Routing;
using Wzp.Silo;

namespace Wzp.Cluster.Tests;

/// <summary>
/// The all-in-one wiring: <see cref="GatewayAgentServiceCollectionExtensions.AddWzpGatewayAgent"/> inside a
/// silo host registers the silo's own gateway once the host has started, and unregisters it at shutdown.
/// A cluster of its own, because stopping its silo is part of the test.
/// </summary>
public sealed class HostedAgentTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task AgentHostedInASilo_RegistersAfterStartUp_AndServesJoins()
    {
        var data = new TestData(419);
        var gatewayId = data.GatewayId();
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddWzpControlPlane(ClusterFixture.Configuration);
            // Inside the silo configuration, so the agent's hosted service starts after the silo and stops before it.
            silo.Services.AddWzpGatewayAgent(_ => new GatewayIdentity(gatewayId, "127.0.0.1:4433", []));
        });
        await using var cluster = builder.Build();
        await cluster.DeployAsync();
        try
        {
            var directory = cluster.Client.GetGatewayDirectory();
            await Eventually.True(
                async () => (await directory.List()).Any(g => g.GatewayId == gatewayId),
                Patience,
                "the silo's gateway registered");

            var agent = cluster.Silos[0].ServiceProvider.GetRequiredService<GatewayAgent>();
            var room = data.RoomName();
            var joined = await agent.Rooms.JoinAsync(room, data.Fingerprint(), data.Alias());
            Assert.Equal(JoinStatus.Joined, joined.Status);
            Assert.True(agent.Rooms.Get(room)?.BySlot.ContainsKey(joined.Slot));
        }
        finally
        {
            await cluster.StopAllSilosAsync();
        }
    }
}
