using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.Extensions.Options;
using Wzp.Grains;
using Wzp.Grains.Routing;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A gateway stand-in built on the real <see cref="GatewayAgent"/>: it records every push and, like a data
/// plane whose members rekey instantly, reports every new epoch of its rooms unless told not to.
/// </summary>
public sealed class TestGateway : IAsyncDisposable
{
    private readonly ConcurrentQueue<RoomEvent> _events = new();
    private readonly ConcurrentQueue<LinkMessage> _linkMessages = new();

    private TestGateway(GatewayAgent agent)
    {
        Agent = agent;
        agent.RoomEventReceived += _events.Enqueue;
        agent.LinkMessageReceived += _linkMessages.Enqueue;
        agent.Rooms.Changed += OnChanged;
    }

    public GatewayAgent Agent { get; }

    public string Id => Agent.GatewayId;

    public RoomRoutingTable Rooms => Agent.Rooms;

    /// <summary>When false, the gateway never reports a finished rekey (a stuck data plane).</summary>
    public bool ReportsRekeys { get; set; } = true;

    public IReadOnlyCollection<RoomEvent> Events => _events;

    public IReadOnlyCollection<LinkMessage> LinkMessages => _linkMessages;

    public IEnumerable<RoomEvent> EventsOf(string room) => _events.Where(e => e.Room == room).OrderBy(e => e.Version);

    public static Task<TestGateway> StartAsync(ClusterFixture fixture, string gatewayId) =>
        StartAsync(fixture.Client, fixture.Options, gatewayId);

    public static async Task<TestGateway> StartAsync(IClusterClient client, ControlPlaneOptions options, string gatewayId)
    {
        var agent = new GatewayAgent(
            client,
            new GatewayIdentity(gatewayId, "127.0.0.1:0", ImmutableArray.Create<byte>(1, 2, 3)),
            Options.Create(options));
        var gateway = new TestGateway(agent);
        await agent.StartAsync(CancellationToken.None);
        return gateway;
    }

    public Task<JoinResult> JoinAsync(string room, (Fingerprint Fingerprint, string Alias) member) =>
        Rooms.JoinAsync(room, member.Fingerprint, member.Alias);

    public async ValueTask DisposeAsync() => await Agent.DisposeAsync();

    private void OnChanged(RoomRoutingChange change)
    {
        if (ReportsRekeys && change.Current is { } current && current.Epoch > (change.Previous?.Epoch ?? long.MinValue))
        {
            // Not awaited: the handler runs under the room's gate and must stay short.
            _ = ReportAsync(change.Room, current.Epoch);
        }
    }

    private async Task ReportAsync(string room, long epoch)
    {
        try
        {
            await Rooms.ReportRekeyCompleteAsync(room, epoch);
        }
        catch (Exception)
        {
            // The room may be moving between silos; the next epoch's report covers this one.
        }
    }
}

/// <summary>
/// A gateway wired by hand from the public pieces (directory registration, observer, routing table), for the
/// faults the agent never commits: it drops pushes on purpose and it heartbeats only when told to.
/// </summary>
public sealed class ManualGateway : IGatewayObserver
{
    private readonly IClusterClient _client;
    private readonly Guid _instanceId = Guid.NewGuid();
    private IGatewayObserver? _reference;
    private int _dropped;

    public ManualGateway(IClusterClient client, string gatewayId)
    {
        _client = client;
        Id = gatewayId;
        Rooms = new RoomRoutingTable(client, gatewayId, instanceId: _instanceId);
        Rooms.Changed += change =>
        {
            if (change.Current is { } current && current.Epoch > (change.Previous?.Epoch ?? long.MinValue))
            {
                _ = ReportQuietlyAsync(change.Room, current.Epoch);
            }
        };
    }

    public string Id { get; }

    /// <summary>This "process" (a new <see cref="ManualGateway"/> with the same id is the gateway restarted).</summary>
    public Guid InstanceId => _instanceId;

    public RoomRoutingTable Rooms { get; }

    /// <summary>Decides, per push, whether to drop it.</summary>
    public Func<RoomEvent, bool> Drop { get; set; } = _ => false;

    public int Dropped => Volatile.Read(ref _dropped);

    public async Task RegisterAsync()
    {
        _reference = _client.CreateObjectReference<IGatewayObserver>(this);
        Assert.Equal(RegisterStatus.Registered, await _client.GetGatewayDirectory().Register(
            new GatewayRegistration(Id, _instanceId, "127.0.0.1:0", [], 0, _reference), [.. Rooms.Rooms]));
    }

    public Task<bool> HeartbeatAsync() => _client.GetGatewayDirectory().Heartbeat(new GatewayHeartbeat(Id, _instanceId, 0));

    /// <summary>Heartbeats in the background until the returned handle is disposed.</summary>
    public IAsyncDisposable StartHeartbeats(TimeSpan period)
    {
        var stop = new CancellationTokenSource();
        var loop = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(period);
            while (await timer.WaitForNextTickAsync(stop.Token))
            {
                await HeartbeatAsync();
            }
        });
        return new Heartbeats(stop, loop);
    }

    public Task OnRoomEvent(RoomEvent roomEvent)
    {
        if (Drop(roomEvent))
        {
            Interlocked.Increment(ref _dropped);
            return Task.CompletedTask;
        }

        return Rooms.ApplyAsync(roomEvent);
    }

    /// <summary>When set, restore invitations from re-activated rooms go unanswered (a slow or partitioned gateway).</summary>
    public bool IgnoresRestoreInvitations { get; set; }

    public Task OnRestoreRequested(RestoreInvitation invitation) =>
        IgnoresRestoreInvitations ? Task.CompletedTask : Rooms.RestoreAsync(invitation);

    public Task OnLinkMessage(LinkMessage message) => Task.CompletedTask;

    private sealed class Heartbeats(CancellationTokenSource stop, Task loop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            try
            {
                await loop;
            }
            catch (OperationCanceledException)
            {
                // Stopped on purpose.
            }

            stop.Dispose();
        }
    }

    private async Task ReportQuietlyAsync(string room, long epoch)
    {
        try
        {
            await Rooms.ReportRekeyCompleteAsync(room, epoch);
        }
        catch (Exception)
        {
            // Only the eviction tests care, and they check the outcome.
        }
    }
}
