using Wzp.Protocol;

namespace Wzp.ScaleOut.Tests;

/// <summary>A gateway process refuses to start, before it connects to anything, without a usable credential.</summary>
public sealed class CredentialTests
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("missing", "no gateway credential")]
    [InlineData("expired", "has expired")]
    [InlineData("foreign", "issued for another gateway key")]
    public async Task Gateway_WithUnusableCredential_ExitsNonZeroWithReason(string kind, string reason)
    {
        // No Redis needed: the check runs before the Orleans client starts, and a cluster that is not there proves it.
        var directory = Path.Combine(Path.GetTempPath(), "wzp-credential-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        try
        {
            var dataDirectory = Path.Combine(directory, "gw");
            Directory.CreateDirectory(dataDirectory);
            using var cluster = Identity.Generate();
            using (var identity = SeedFile.LoadOrCreate(Path.Combine(dataDirectory, "gateway.seed"), out _))
            {
                var now = DateTimeOffset.UtcNow;
                using var other = Identity.Generate();
                var credential = kind switch
                {
                    "expired" => GatewayCredential.Issue(cluster, "gw", identity.PublicKey, now.AddDays(-2), now.AddDays(-1)),
                    "foreign" => GatewayCredential.Issue(cluster, "gw", other.PublicKey, now.AddMinutes(-5), now.AddDays(1)),
                    _ => null,
                };
                if (credential is not null) File.WriteAllText(Path.Combine(dataDirectory, "gateway.credential.json"), credential.ToJson());
            }

            using var gateway = ChildProcess.StartDotnet("gateway-" + kind, Builds.GatewayDll, new Dictionary<string, string>
            {
                ["Gateway__GatewayId"] = "gw",
                ["Gateway__DataDirectory"] = dataDirectory,
                ["Gateway__ListenAddress"] = $"127.0.0.1:{Ports.FreeUdp()}",
                ["Telemetry__PrometheusEndpoint"] = $"http://127.0.0.1:{Ports.FreeTcp()}/",
                ["Orleans__Clustering__Mode"] = "Redis",
                ["Orleans__Clustering__RedisConnectionString"] = $"127.0.0.1:{Ports.FreeTcp()}",
            }, directory, directory);
            var exitCode = await gateway.WaitForExitAsync(ExitTimeout);
            Assert.True(exitCode != 0, $"the gateway exited with 0:\n{gateway.Output}");
            Assert.Equal(2, exitCode);
            Assert.Contains("The gateway cannot start", gateway.Output, StringComparison.Ordinal);
            Assert.Contains(reason, gateway.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>A gateway whose credential another cluster key signed is refused by the cluster it tries to join.</summary>
public sealed class ForeignClusterTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Gateway_WithACredentialOfAnotherClusterKey_IsRefusedAndExitsWithTheReason()
    {
        if (RedisServer.Executable is null) Assert.Fail("redis-server is not installed (apt-get install redis-server, or scripts/install-deps.sh)");
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var silo = cluster.StartSilo();
        await ScaleOutCluster.WaitHealthyAsync(silo, Timeout);
        cluster.PrepareGateway("gw1");
        var member = cluster.StartGateway("gw1");
        await ScaleOutCluster.WaitHealthyAsync(member, Timeout);

        using var otherCluster = Identity.Generate();
        cluster.PrepareGateway("gw2", issuer: otherCluster);
        var stranger = cluster.StartGateway("gw2");
        var exitCode = await stranger.Process.WaitForExitAsync(Timeout);

        Assert.Equal(2, exitCode);
        Assert.Contains("The gateway cannot start", stranger.Process.Output, StringComparison.Ordinal);
        Assert.Contains($"signed by cluster key {otherCluster.Fingerprint}", stranger.Process.Output, StringComparison.Ordinal);
        Assert.Contains("wzp cluster issue", stranger.Process.Output, StringComparison.Ordinal);
        // The cluster's own gateway is unaffected.
        Assert.Equal(200, (await member.HealthAsync()).Status);
    }
}
