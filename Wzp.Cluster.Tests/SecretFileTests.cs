using Microsoft.Extensions.Logging;
using Wzp.Client;
using Wzp.Gateway;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Cluster.Tests;

/// <summary>
/// Issue 12 defect 8: files holding secrets and trust records are written through unique owner-only temporary
/// files and renamed into place, and a seed that others can read is warned about.
/// </summary>
public sealed class SecretFileTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("wzp-secrets-");

    public void Dispose() => _directory.Delete(recursive: true);

    private string PathOf(string name) => Path.Combine(_directory.FullName, name);

    [Fact]
    public void WriteAtomically_CreatesAnOwnerOnlyFile_AndLeavesNoTemporaryBehind()
    {
        if (OperatingSystem.IsWindows()) return; // Unix permissions and links
        var path = PathOf("secret");
        PrivateFile.WriteAtomically(path, "one");
        PrivateFile.WriteAtomically(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal([path], Directory.GetFiles(_directory.FullName));
    }

    [Fact]
    public void TryCreateAtomically_ManyWritersAtOnce_ExactlyOneWins_AndEveryoneReadsItsFile()
    {
        // Silos started together with one shared operator key path: all must end up holding the same key.
        if (OperatingSystem.IsWindows()) return;
        // A race shows only now and then, so race many times (check-then-rename let two win about once in 50).
        for (var round = 0; round < 100; round++)
        {
            var path = PathOf($"admin-{round}.key");
            var winners = new bool[16];
            Parallel.For(0, winners.Length, i => winners[i] = PrivateFile.TryCreateAtomically(path, $"key-{i}"));
            var won = Assert.Single(Enumerable.Range(0, winners.Length), i => winners[i]);
            Assert.Equal($"key-{won}", File.ReadAllText(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            Assert.False(PrivateFile.TryCreateAtomically(path, "later"));
            Assert.Equal($"key-{won}", File.ReadAllText(path));
        }
        Assert.Equal(100, Directory.GetFiles(_directory.FullName).Length); // no temporary file left behind
    }

    [Fact]
    public void TlsKey_IsNeverWrittenThroughAFileAnotherUserPlantedAtTheOldFixedName()
    {
        if (OperatingSystem.IsWindows()) return; // Unix permissions and links
        var key = PathOf("tls-key.pem");
        var stolen = PathOf("readable-by-mallory");
        File.WriteAllText(stolen, "");
        File.SetUnixFileMode(stolen, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        // The name the key used to be written through, planted as a link to a file others can read.
        File.CreateSymbolicLink(key + ".tmp-" + Environment.ProcessId, stolen);
        File.CreateSymbolicLink(key + ".tmp", stolen);

        Assert.True(QuicCertificate.EnsureSelfSigned(PathOf("tls-cert.pem"), key));

        Assert.Equal("", File.ReadAllText(stolen));
        Assert.Contains("PRIVATE KEY", File.ReadAllText(key), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
    }

    [Fact]
    public void KnownClusters_IsOwnerOnly_AndNotWrittenThroughAPlantedTemporaryFile()
    {
        if (OperatingSystem.IsWindows()) return; // Unix permissions and links
        var path = PathOf("known_clusters");
        var planted = PathOf("planted");
        File.WriteAllText(planted, "");
        File.CreateSymbolicLink(path + ".tmp", planted);
        using var cluster = Identity.Generate();
        var known = new KnownClusters(path);
        Assert.Equal(TrustDecision.FirstUse, known.Check("gw.example:4433", Fingerprint.Of(cluster.PublicKey), allowChange: false));

        Assert.Equal("", File.ReadAllText(planted));
        Assert.Contains(Fingerprint.Of(cluster.PublicKey).ToString(), File.ReadAllText(path), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void SeedFileOthersCanRead_IsWarnedAbout_AndAPrivateOneIsNot()
    {
        if (OperatingSystem.IsWindows()) return; // Unix permissions and links
        var options = new GatewayOptions { DataDirectory = _directory.FullName, SelfIssueCredential = true };
        var logs = new CapturingLoggerProvider();
        using (GatewayKeys.Load(options, TimeProvider.System, logs.CreateLogger("keys")))
        {
        }
        Assert.False(logs.Has(LogLevel.Warning, "can be read or written by users other than its owner"));

        File.SetUnixFileMode(options.ResolvedIdentityFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        using (GatewayKeys.Load(options, TimeProvider.System, logs.CreateLogger("keys")))
        {
        }
        Assert.True(logs.Has(LogLevel.Warning, $"'{options.ResolvedIdentityFile}' can be read or written by users other than its owner"));
        Assert.True(PrivateFile.IsExposed(options.ResolvedIdentityFile));
        Assert.False(PrivateFile.IsExposed(options.ResolvedClusterKeyFile));
    }
}

public sealed class TokenGuardTests
{
    [Theory]
    [InlineData("open-sesame", true)]
    [InlineData("open-sesam", false)]
    [InlineData("open-sesame!", false)]
    [InlineData("", false)]
    [InlineData("Open-sesame", false)]
    public void Matches_OnlyTheExactToken(string presented, bool matches)
    {
        using var counters = new GatewayCounters("gw");
        var guard = new TokenGuard("open-sesame", 3, TimeSpan.FromMinutes(1), TimeProvider.System, counters);
        Assert.Equal(matches, guard.Matches(presented));
    }

    [Fact]
    public void WrongTokens_LockOutTheAddressForTheWindow_OnlyThatAddress_AndIPv6ByItsSlash64()
    {
        using var counters = new GatewayCounters("gw");
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var guard = new TokenGuard("t", 3, TimeSpan.FromMinutes(1), clock, counters);
        var mallory = System.Net.IPAddress.Parse("2001:db8:1:2::1");
        var sameHost = System.Net.IPAddress.Parse("2001:db8:1:2:ffff::9");
        var other = System.Net.IPAddress.Parse("192.0.2.7");
        for (var i = 0; i < 3; i++)
        {
            Assert.True(guard.Admits(mallory));
            guard.OnWrongToken(mallory);
        }
        Assert.False(guard.Admits(mallory));
        Assert.False(guard.Admits(sameHost));
        Assert.True(guard.Admits(other));
        Assert.Equal(3, counters.TokenRefusals(TokenRefusal.WrongToken));
        Assert.Equal(2, counters.TokenRefusals(TokenRefusal.RateLimited));
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True(guard.Admits(mallory));
    }

    [Fact]
    public void ManyAddresses_DoNotGrowTheTableWithoutBound()
    {
        using var counters = new GatewayCounters("gw");
        var guard = new TokenGuard("t", 3, TimeSpan.FromMinutes(1), new Microsoft.Extensions.Time.Testing.FakeTimeProvider(), counters);
        for (var i = 0; i < TokenGuard.MaxTracked + 1_000; i++)
            guard.OnWrongToken(new System.Net.IPAddress(BitConverter.GetBytes(i)));
        Assert.Equal(TokenGuard.MaxTracked, guard.Tracked);
    }
}

[Collection(ClusterFixture.Collection)]
public sealed class TokenRateLimitTests(ClusterFixture fixture)
{
    [Fact]
    public async Task WrongTokensFromOneAddress_AreLimited_EvenTheRightTokenIsRefusedThen_AndBothAreCounted()
    {
        await using var harness = new GatewayHarness(fixture);
        var gateway = await harness.StartGatewayAsync(configure: o =>
        {
            o.Token = "open-sesame";
            o.MaxTokenFailuresPerAddress = 3;
        });
        var room = $"room-{Guid.NewGuid():N}";
        for (var i = 0; i < 3; i++)
        {
            var wrong = await Assert.ThrowsAsync<GatewayErrorException>(() => harness.JoinAsync(gateway, room, "mallory", token: $"guess-{i}"));
            Assert.Equal(ErrorCodes.Unauthorized, wrong.Code);
        }
        var locked = await Assert.ThrowsAsync<GatewayErrorException>(() => harness.JoinAsync(gateway, room, "alice", token: "open-sesame"));
        Assert.Equal(ErrorCodes.Unauthorized, locked.Code);
        Assert.Contains("too many wrong tokens", locked.Message, StringComparison.Ordinal);
        Assert.Equal(3, gateway.Counters.TokenRefusals(TokenRefusal.WrongToken));
        Assert.Equal(1, gateway.Counters.TokenRefusals(TokenRefusal.RateLimited));
    }
}
