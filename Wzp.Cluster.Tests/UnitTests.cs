using System.Collections.Immutable;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Wzp.Grains;
using Wzp.Grains.Routing;
using Wzp.Silo;

namespace Wzp.Cluster.Tests;

public sealed class FingerprintTests
{
    [Fact]
    public void DisplayForm_RoundTrips()
    {
        const string Display = "518e:b935:62fa:9e34:e59c:28b6:7fc2:d384";
        Assert.True(Fingerprint.TryParse(Display, out var fingerprint));
        Assert.Equal(Display, fingerprint.ToString());
        Assert.Equal(fingerprint, Fingerprint.FromBytes(fingerprint.ToArray()));
        Assert.True(Fingerprint.TryParse(Display.Replace(":", "", StringComparison.Ordinal), out var compact));
        Assert.Equal(fingerprint, compact);
        Assert.False(Fingerprint.TryParse("518e:b935", out _));
    }
}

public sealed class RoomRoutingTests
{
    private static readonly Guid Incarnation = Guid.NewGuid();

    [Fact]
    public void Apply_NextVersion_UpdatesMembersAndGroupsThemByGateway()
    {
        var data = new TestData(420);
        var a = new RoomMember(1, data.Fingerprint(), "a", "g1");
        var b = new RoomMember(2, data.Fingerprint(), "b", "g2");
        var c = new RoomMember(3, data.Fingerprint(), "c", "g1");
        var routing = RoomRouting.FromSnapshot(new RoomSnapshot("r", Incarnation, 10, 5, [a, b]));

        var next = routing.Apply(new RoomEvent("r", Incarnation, 11, 6, RoomChangeReason.Joined, [c], [2]));

        Assert.Equal(new[] { a, c }, next.Members.AsEnumerable());
        Assert.Equal(new[] { a, c }, next.MembersOf("g1").AsEnumerable());
        Assert.Empty(next.MembersOf("g2"));
        Assert.Equal((11L, 6L), (next.Version, next.Epoch));
        Assert.Equal(new[] { a, b }, routing.Members.AsEnumerable());
    }

    [Fact]
    public void Apply_AfterAGap_IsRejected()
    {
        var routing = RoomRouting.FromSnapshot(new RoomSnapshot("r", Incarnation, 10, 5, []));
        Assert.Throws<ArgumentException>(() => routing.Apply(new RoomEvent("r", Incarnation, 12, 6, RoomChangeReason.Left, [], [])));
        Assert.Throws<ArgumentException>(() => routing.Apply(new RoomEvent("r", Guid.NewGuid(), 11, 6, RoomChangeReason.Left, [], [])));
    }
}

public sealed class OptionsTests
{
    [Fact]
    public void ControlPlaneDefaults_AreValid_AndAnExpiryShorterThanTwoHeartbeatsIsNot()
    {
        var validator = new ControlPlaneOptionsValidator();
        Assert.True(validator.Validate(null, new ControlPlaneOptions()).Succeeded);
        var bad = new ControlPlaneOptions { GatewayExpiry = TimeSpan.FromSeconds(1), GatewayHeartbeatPeriod = TimeSpan.FromSeconds(1), MembersPerRoom = 70000 };
        var result = validator.Validate(null, bad);
        Assert.True(result.Failed);
        Assert.Equal(2, result.Failures!.Count());
    }

    [Fact]
    public void RepositorySettings_BindToLocalhostClusteringAndTheDefaultLimit()
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build();
        var orleans = WzpOrleansOptions.Read(configuration);
        Assert.Equal(ClusteringMode.Localhost, orleans.Clustering.Mode);
        Assert.Equal(1000, configuration.GetSection("Cluster").Get<ControlPlaneOptions>()!.MembersPerRoom);
    }

    [Fact]
    public void RedisModeWithoutConnectionString_IsRejectedAtStartUp()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Orleans:Clustering:Mode"] = "Redis",
            ["Orleans:Clustering:RedisConnectionString"] = "",
        }).Build();
        Assert.Throws<OptionsValidationException>(() => WzpOrleansOptions.Read(configuration));
    }
}
