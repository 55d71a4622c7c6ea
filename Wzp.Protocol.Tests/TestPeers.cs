using Microsoft.Extensions.Time.Testing;

namespace Wzp.Protocol.Tests;

/// <summary>A cluster, a gateway and fresh clients with random keys, for tests that are not vectors.</summary>
internal sealed class TestPeers : IDisposable
{
    public FakeTimeProvider Clock { get; } = new(DateTimeOffset.UtcNow);

    public Identity Cluster { get; } = Identity.Generate();

    public Identity Gateway { get; } = Identity.Generate();

    public GatewayCredential Credential { get; }

    public TestPeers()
    {
        Credential = GatewayCredential.Issue(Cluster, "gw-test", Gateway.PublicKey, Clock.GetUtcNow().AddHours(-1), Clock.GetUtcNow().AddDays(1));
    }

    public ClientHandshake Client(Identity? identity = null, string room = "room", byte[]? pin = null) =>
        new(identity ?? Identity.Generate(), room, "alias", "", pin ?? Cluster.PublicKey, Clock);

    public GatewayHandshake GatewaySide() => new(Gateway, Credential, null, Clock);

    /// <summary>A complete handshake: both established sessions.</summary>
    public (ClientSession Client, GatewaySession Gateway) Connect()
    {
        using var client = Client();
        using var gateway = GatewaySide();
        var welcome = gateway.OnHello(client.Hello);
        var clientSession = client.OnWelcome(welcome.Value!).Value!;
        var gatewaySession = gateway.OnConfirm(clientSession.Confirm).Value!;
        return (clientSession, gatewaySession);
    }

    /// <summary>Runs one full rekey; returns the epoch reached.</summary>
    public static uint Rekey(ClientSession client, GatewaySession gateway)
    {
        var rekey = gateway.Rekeys.Request() ?? throw new InvalidOperationException("rekey already in progress");
        var ack = client.Rekeys.OnRekey(rekey);
        Assert.True(ack.Succeeded, ack.Failure?.Message);
        var done = gateway.Rekeys.OnAck(ack.Value!);
        Assert.True(done.Succeeded, done.Failure?.Message);
        Assert.Null(client.Rekeys.OnRekeyDone(done.Value!.Done));
        return done.Value.Done.Epoch;
    }

    public void Dispose()
    {
        Cluster.Dispose();
        Gateway.Dispose();
    }
}
