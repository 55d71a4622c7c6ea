using Wzp.Protocol;

namespace Wzp.Client.Tests;

public sealed class KnownClustersTests
{
    private static readonly Fingerprint First = Fingerprint.Parse("518e:b935:62fa:9e34:e59c:28b6:7fc2:d384");
    private static readonly Fingerprint Second = Fingerprint.Parse("00112233445566778899aabbccddeeff");

    [Fact]
    public void FirstUse_IsRecorded()
    {
        using var dir = new TempDirectory();
        var store = new KnownClusters(dir.File("sub/known_clusters"));
        Assert.Equal(TrustDecision.FirstUse, store.Check("127.0.0.1:4433", First, allowChange: false));
        Assert.Equal(First, store.Find("127.0.0.1:4433"));
        Assert.Contains("127.0.0.1:4433 518e:b935:62fa:9e34:e59c:28b6:7fc2:d384", File.ReadAllText(store.Path));
    }

    [Fact]
    public void SameKey_IsAccepted()
    {
        using var dir = new TempDirectory();
        var store = new KnownClusters(dir.File("known_clusters"));
        store.Check("gw:1", First, false);
        Assert.Equal(TrustDecision.Known, new KnownClusters(store.Path).Check("gw:1", First, false));
    }

    [Fact]
    public void ChangedKey_IsRefusedLoudlyAndNotRecorded()
    {
        using var dir = new TempDirectory();
        var store = new KnownClusters(dir.File("known_clusters"));
        store.Check("gw:1", First, false);
        var e = Assert.Throws<ClusterKeyChangedException>(() => store.Check("gw:1", Second, false));
        Assert.Contains("CHANGED", e.Message);
        Assert.Contains(First.ToString(), e.Message);
        Assert.Contains(Second.ToString(), e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(First, store.Find("gw:1"));
    }

    [Fact]
    public void ChangedKey_WithOverride_IsAcceptedAndReplacesTheRecord()
    {
        using var dir = new TempDirectory();
        var store = new KnownClusters(dir.File("known_clusters"));
        store.Check("gw:1", First, false);
        store.Check("other", First, false);
        Assert.Equal(TrustDecision.Replaced, store.Check("gw:1", Second, allowChange: true));
        Assert.Equal(Second, store.Find("gw:1"));
        Assert.Equal(First, store.Find("other"));
    }

    [Fact]
    public void MalformedFile_IsAnErrorNotSilentlyReplaced()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("known_clusters"), "# comment\ngw:1 not-a-fingerprint\n");
        var store = new KnownClusters(dir.File("known_clusters"));
        Assert.Contains("line 2", Assert.Throws<KnownClustersException>(() => store.Check("gw:1", First, false)).Message);
        Assert.Equal("# comment\ngw:1 not-a-fingerprint\n", File.ReadAllText(dir.File("known_clusters")));
    }

    [Theory]
    [InlineData("127.0.0.1:4433", "127.0.0.1", 4433)]
    [InlineData("relay.example", "relay.example", 4433)]
    [InlineData("[::1]:5000", "::1", 5000)]
    public void GatewayAddress_Parses(string text, string host, int port)
    {
        Assert.True(GatewayAddress.TryParse(text, out var address));
        Assert.Equal(new GatewayAddress(host, port), address);
    }

    [Theory]
    [InlineData("")]
    [InlineData("host:0")]
    [InlineData("host:70000")]
    [InlineData("::1")]
    [InlineData("host:port")]
    public void GatewayAddress_RefusesNonsense(string text) => Assert.False(GatewayAddress.TryParse(text, out _));
}
