using System.Security.Cryptography.X509Certificates;
using Wzp.Gateway;
using Xunit.Abstractions;

namespace Wzp.ScaleOut.Tests;

/// <summary>Orleans traffic of the scale-out mode runs over mutual TLS with the cluster's certificate (issue 13, item 4).</summary>
public sealed class ControlPlaneTlsTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public void OnlyTheClustersCertificate_OrOneAcceptedForARotation_IsAccepted()
    {
        var directory = Directory.CreateTempSubdirectory("wzp-tls-").FullName;
        try
        {
            var ours = Path.Combine(directory, "ours.pem");
            var next = Path.Combine(directory, "next.pem");
            var stranger = Path.Combine(directory, "stranger.pem");
            ControlPlaneTls.Create(ours, 1);
            ControlPlaneTls.Create(next, 1);
            ControlPlaneTls.Create(stranger, 1);
            using var nextCertificate = X509Certificate2.CreateFromPemFile(next);
            using var strangerCertificate = X509Certificate2.CreateFromPemFile(stranger);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ours));

            var plain = ControlPlaneTls.Load(new ControlPlaneTlsSettings { CertificateFile = ours });
            Assert.True(plain.Accepts(plain.Certificate));
            Assert.False(plain.Accepts(nextCertificate));
            Assert.False(plain.Accepts(strangerCertificate));
            Assert.False(plain.Accepts(null));

            var rotating = ControlPlaneTls.Load(new ControlPlaneTlsSettings { CertificateFile = ours, AcceptedCertificateFiles = [next] });
            Assert.True(rotating.Accepts(nextCertificate));
            Assert.False(rotating.Accepts(strangerCertificate));

            File.WriteAllText(Path.Combine(directory, "garbage.pem"), "not a certificate");
            var error = Assert.Throws<InvalidOperationException>(() => ControlPlaneTls.Load(new ControlPlaneTlsSettings { CertificateFile = Path.Combine(directory, "garbage.pem") }));
            Assert.Contains("wzp cluster tls", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ScaleOutSiloAndGateway_WithoutACertificate_RefuseToStart_SayingHowToMakeOne()
    {
        if (RedisServer.Executable is null) Assert.Fail("redis-server is not installed (apt-get install redis-server, or scripts/install-deps.sh)");
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var silo = cluster.StartSilo(tlsCertificateFile: "");
        Assert.Equal(2, await silo.Process.WaitForExitAsync(Timeout));
        Assert.Contains("wzp cluster tls", silo.Process.Output, StringComparison.Ordinal);

        cluster.PrepareGateway("gw1");
        var gateway = cluster.StartGateway("gw1", tlsCertificateFile: "");
        Assert.Equal(2, await gateway.Process.WaitForExitAsync(Timeout));
        Assert.Contains("wzp cluster tls", gateway.Process.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SiloAndGateway_WithAnotherCertificate_CannotJoin_AndTheClusterCarriesOn()
    {
        if (RedisServer.Executable is null) Assert.Fail("redis-server is not installed (apt-get install redis-server, or scripts/install-deps.sh)");
        using var cluster = await ScaleOutCluster.StartRedisAsync();
        var silo = cluster.StartSilo();
        await ScaleOutCluster.WaitHealthyAsync(silo, Timeout);
        cluster.PrepareGateway("gw1");
        var member = cluster.StartGateway("gw1");
        await ScaleOutCluster.WaitHealthyAsync(member, Timeout);

        var stranger = Path.Combine(cluster.Directory, "stranger.pem");
        ControlPlaneTls.Create(stranger, 1);
        // A silo with the wrong certificate cannot reach the cluster's silo and gives up joining.
        var intruder = cluster.StartSilo(tlsCertificateFile: stranger);
        var exit = await intruder.Process.WaitForExitAsync(TimeSpan.FromMinutes(3));
        output.WriteLine(intruder.Process.Output);
        Assert.NotEqual(0, exit);

        // A gateway with the wrong certificate never gets an Orleans connection: the silo refuses it.
        cluster.PrepareGateway("gw2");
        var outsider = cluster.StartGateway("gw2", tlsCertificateFile: stranger);
        await Eventually.True(() => Task.FromResult(outsider.Process.Output.Contains("Authentication", StringComparison.OrdinalIgnoreCase)
            || outsider.Process.Output.Contains("TLS", StringComparison.Ordinal)), Timeout, "the outsider's connection attempts fail in TLS");
        output.WriteLine(outsider.Process.Output);
        Assert.NotEqual(200, (await outsider.HealthAsync()).Status);

        // The cluster's own silo and gateway are unaffected.
        Assert.Equal(200, (await silo.HealthAsync()).Status);
        Assert.Equal(200, (await member.HealthAsync()).Status);
    }
}
