using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Wzp.Gateway;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Cluster.Tests;

/// <summary>
/// Issue 12 defect 7: a credential is not only checked at start. Renewed on disk, it is served without a restart;
/// near its end it is warned about; a link peer whose credential expired is dropped.
/// </summary>
[Collection(ClusterFixture.Collection)]
public sealed class CredentialLifetimeTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <summary>Gives the gateway an identity and a credential from the harness's cluster key, valid for <paramref name="validity"/>.</summary>
    private static void Provision(GatewayHarness harness, GatewayOptions options, TimeSpan validity)
    {
        options.SelfIssueCredential = false;
        options.CredentialReloadPeriod = TimeSpan.FromSeconds(1);
        using var identity = SeedFile.LoadOrCreate(options.ResolvedIdentityFile, out _);
        Issue(harness, options, identity.PublicKey, validity);
    }

    private static GatewayCredential Issue(GatewayHarness harness, GatewayOptions options, ReadOnlySpan<byte> gatewayKey, TimeSpan validity)
    {
        using var cluster = SeedFile.LoadOrCreate(harness.ClusterKeyFile, out _);
        var now = DateTimeOffset.UtcNow;
        var credential = GatewayCredential.Issue(cluster, options.GatewayId, gatewayKey, now.AddMinutes(-1), now + validity);
        PrivateFile.WriteAtomically(options.ResolvedCredentialFile, credential.ToJson(), ownerOnly: false);
        return credential;
    }

    /// <summary>The credential a new client is shown, from a bare handshake up to the welcome.</summary>
    private static async Task<GatewayCredential> PresentedAsync(GatewayServer gateway)
    {
        await using var connection = await QuicClient.ConnectAsync("127.0.0.1", gateway.ClientEndPoint.Port, new QuicClientOptions());
        using var identity = Identity.Generate();
        using var handshake = new ClientHandshake(identity, $"room-{Guid.NewGuid():N}", "probe", "", gateway.Keys.Credential.ClusterKey);
        var framing = new Framing(connection);
        await framing.SendAsync(handshake.Hello);
        return Assert.IsType<Welcome>(await framing.ReadAsync()).Credential;
    }

    [Fact]
    public async Task CredentialRenewedOnDisk_IsServedToNewClientsWithoutARestart_AndNearExpiryIsWarned()
    {
        await using var harness = new GatewayHarness(fixture);
        var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));
        GatewayOptions? options = null;
        var gateway = await harness.StartGatewayAsync(configure: o =>
        {
            Provision(harness, o, TimeSpan.FromDays(2)); // inside the default 7-day warning
            options = o;
        }, loggerFactory: loggers);
        var first = await PresentedAsync(gateway);
        await Eventually.True(() => Task.FromResult(logs.Has(LogLevel.Warning, "expires at")), Patience, "a near-expiry warning");
        Assert.InRange(gateway.Counters.CredentialExpirySeconds, 1, TimeSpan.FromDays(2).TotalSeconds);

        // A broken file (a copy in progress, a wrong one) changes nothing.
        await File.WriteAllTextAsync(options!.ResolvedCredentialFile, "{\"gatewayId\":");
        await Eventually.True(() => Task.FromResult(logs.Has(LogLevel.Warning, "not used; keeping the current credential")), Patience, "the broken file is refused");
        Assert.Equal(first, await PresentedAsync(gateway));

        var renewed = Issue(harness, options, gateway.Keys.Identity.PublicKey, TimeSpan.FromDays(90));
        await Eventually.True(() => Task.FromResult(gateway.Keys.Credential.Equals(renewed)), Patience, "the renewal is picked up");
        Assert.Equal(renewed, await PresentedAsync(gateway));
        await Eventually.True(() => Task.FromResult(gateway.Counters.CredentialExpirySeconds > TimeSpan.FromDays(89).TotalSeconds), Patience, "the gauge follows");
        // A client that pins the cluster still joins.
        var alice = await harness.JoinAsync(gateway, $"room-{Guid.NewGuid():N}", "alice");
        Assert.Equal(Wzp.Client.ClientState.Joined, alice.State);
    }

    [Fact]
    public void SelfIssuedCredentialNearItsEnd_IsReissued()
    {
        var directory = Directory.CreateTempSubdirectory("wzp-selfissue-");
        try
        {
            var options = new GatewayOptions
            {
                DataDirectory = directory.FullName,
                SelfIssueCredential = true,
                SelfIssuedValidity = TimeSpan.FromDays(3),
            };
            using var keys = GatewayKeys.Load(options, TimeProvider.System);
            var old = keys.Credential;
            var logger = new CapturingLoggerProvider().CreateLogger("keys");
            Assert.True(keys.WarnIfExpiring(TimeProvider.System, logger));
            // As if the 3-day credential had been issued under settings since changed to the valid kind.
            options.SelfIssuedValidity = TimeSpan.FromDays(30);
            Assert.Equal(CredentialReload.Renewed, keys.ReloadCredential(TimeProvider.System, logger));
            Assert.NotEqual(old, keys.Credential);
            Assert.Equal(old.ClusterKey, keys.Credential.ClusterKey);
            Assert.False(keys.WarnIfExpiring(TimeProvider.System, logger));
            Assert.Equal(CredentialReload.Unchanged, keys.ReloadCredential(TimeProvider.System, logger));
            Assert.Equal(keys.Credential, GatewayCredential.FromJson(File.ReadAllText(options.ResolvedCredentialFile)));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void RenewalSignedByAnotherClusterKey_IsRefused_AndTheCurrentCredentialStays()
    {
        var directory = Directory.CreateTempSubdirectory("wzp-foreign-");
        try
        {
            var options = new GatewayOptions { DataDirectory = directory.FullName, SelfIssueCredential = true };
            using var keys = GatewayKeys.Load(options, TimeProvider.System);
            var current = keys.Credential;
            using var other = Identity.Generate();
            var now = DateTimeOffset.UtcNow;
            PrivateFile.WriteAtomically(options.ResolvedCredentialFile,
                GatewayCredential.Issue(other, options.GatewayId, keys.Identity.PublicKey, now.AddMinutes(-1), now.AddDays(30)).ToJson());
            var logs = new CapturingLoggerProvider();
            Assert.Equal(CredentialReload.Refused, keys.ReloadCredential(TimeProvider.System, logs.CreateLogger("keys")));
            Assert.Equal(current, keys.Credential);
            Assert.True(logs.Has(LogLevel.Warning, "another cluster key"));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task LinkPeerWhoseCredentialExpired_IsDropped_AndComesBackRenewed()
    {
        await using var harness = new GatewayHarness(fixture);
        var g1 = await harness.StartGatewayAsync();
        GatewayOptions? g2Options = null;
        // Valid for a few seconds: long enough to start and link, then it runs out while the gateway runs.
        var g2 = await harness.StartGatewayAsync(configure: o =>
        {
            Provision(harness, o, TimeSpan.FromSeconds(12));
            g2Options = o;
        });
        var room = $"room-{Guid.NewGuid():N}";
        var alice = await harness.JoinAsync(g1, room, "alice");
        var bob = await harness.JoinAsync(g2, room, "bob");
        await Eventually.True(() => Task.FromResult(g1.HasLinkTo(g2.Options.GatewayId) && g2.HasLinkTo(g1.Options.GatewayId)), Patience, "linked");

        await Eventually.True(() => Task.FromResult(g1.Counters.ExpiredLinks > 0 && !g1.HasLinkTo(g2.Options.GatewayId)), Patience,
            "g1 drops the link to the expired peer");

        Issue(harness, g2Options!, g2.Keys.Identity.PublicKey, TimeSpan.FromDays(30));
        await Eventually.True(() => Task.FromResult(g1.Links.Get(g2.Options.GatewayId) is { } link && link.Session.Peer.NotAfter == g2.Keys.Credential.NotAfter &&
            g2.Keys.Credential.NotAfter > (ulong)DateTimeOffset.UtcNow.AddDays(29).ToUnixTimeSeconds()), Patience, "the link is back with the renewed credential");
        GC.KeepAlive(alice);
        GC.KeepAlive(bob);
    }
}

/// <summary>Keeps every log line, for tests that assert a warning was given.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _lines = new();

    public bool Has(LogLevel level, string fragment) => _lines.Any(l => l.Level == level && l.Message.Contains(fragment, StringComparison.Ordinal));

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider provider) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            provider._lines.Enqueue((logLevel, formatter(state, exception)));
    }
}
