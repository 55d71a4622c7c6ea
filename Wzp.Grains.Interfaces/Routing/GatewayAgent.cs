using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Wzp.Grains.Routing;

/// <summary>What a gateway registers under.</summary>
/// <param name="GatewayId">Stable, cluster-unique name.</param>
/// <param name="LinkEndpoint">UDP <c>host:port</c> for link datagrams from other gateways.</param>
/// <param name="Credential">Canonical credential bytes (PROTOCOL.md §2; public, signed by the cluster key).</param>
/// <param name="ClusterKey">Fingerprint of the cluster key that signed the credential (empty without one).</param>
public sealed record GatewayIdentity(string GatewayId, string LinkEndpoint, ImmutableArray<byte> Credential, string ClusterKey = "");

/// <summary>
/// The gateway's end of the control plane: registers with the directory, heartbeats and re-registers in a
/// background loop (a directory that re-activated forgot everyone), keeps the push observer alive, feeds pushed
/// room events into <see cref="Rooms"/>, and polls the stamps of its rooms on every heartbeat.
/// </summary>
/// <remarks>
/// Host it in the gateway process (an Orleans client, or the silo itself in all-in-one mode) and call
/// <see cref="StartAsync"/> only once the Orleans client is connected (after <c>ApplicationStarted</c>).
/// The data plane subscribes to <see cref="RoomRoutingTable.Changed"/>, joins and leaves through
/// <see cref="Rooms"/>, and reports finished rekeys with <see cref="RoomRoutingTable.ReportRekeyCompleteAsync"/>.
/// </remarks>
public sealed partial class GatewayAgent : IAsyncDisposable
{
    private readonly IGrainFactory _grainFactory;
    private volatile GatewayIdentity _identity;
    private readonly ControlPlaneOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Observer _observer;
    private readonly Guid _instanceId = Guid.NewGuid();
    private IGatewayObserver? _observerReference;
    private CancellationTokenSource? _stopping;
    private Task? _loop;

    /// <summary>Creates the agent; nothing happens until <see cref="StartAsync"/>.</summary>
    public GatewayAgent(
        IGrainFactory grainFactory,
        GatewayIdentity identity,
        IOptions<ControlPlaneOptions> options,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(grainFactory);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(options);
        _grainFactory = grainFactory;
        _identity = identity;
        _options = options.Value;
        _timeProvider = timeProvider ?? TimeProvider.System;
        loggerFactory ??= NullLoggerFactory.Instance;
        _logger = loggerFactory.CreateLogger<GatewayAgent>();
        Rooms = new RoomRoutingTable(grainFactory, identity.GatewayId, loggerFactory.CreateLogger<RoomRoutingTable>(), _instanceId)
        {
            Observer = () => _observerReference,
            Reregister = () => _observerReference is null ? Task.CompletedTask : RegisterAsync(),
            PollTimeout = CallTimeout,
            // Every live gateway polls its rooms within a heartbeat, and a re-activated room holds newcomers for
            // its restore window: by then the members of the other gateways are back.
            CarryWindow = options.Value.GatewayHeartbeatPeriod * 2 + options.Value.RestoreWindow,
        };
        // The runtime only holds observers weakly: this field is what keeps the push target alive.
        _observer = new Observer(this);
    }

    /// <summary>This gateway's id.</summary>
    public string GatewayId => _identity.GatewayId;

    /// <summary>This gateway's rooms.</summary>
    public RoomRoutingTable Rooms { get; }

    /// <summary>
    /// How long ago the cluster last vouched for this gateway, or null before the first time: the directory
    /// confirmed it (a registration, or a heartbeat it knew), or the directory did not answer while the rest of
    /// the cluster did (a directory whose silo is stuck expires no one for its own stall). What health checks
    /// read: a directory that just re-activated after its silo died has forgotten the gateway for one heartbeat,
    /// and a stuck one hears no gateway at all; neither is a reason to take this gateway out of a load balancer.
    /// </summary>
    public TimeSpan? SinceConfirmed => Volatile.Read(ref _confirmedAt) is var at and not 0 ? _timeProvider.GetElapsedTime(at) : null;

    private long _confirmedAt;
    private int _probes;

    /// <summary>Reports the current load in every heartbeat; 0 when unset.</summary>
    public Func<int>? LoadProvider { get; set; }

    /// <summary>Raised for every pushed room event, before it is applied (diagnostics, metrics).</summary>
    public event Action<RoomEvent>? RoomEventReceived;

    /// <summary>Raised for every link message another gateway sent to this one.</summary>
    public event Action<LinkMessage>? LinkMessageReceived;

    /// <summary>Registers with the directory and starts the heartbeat loop.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_loop is not null)
        {
            throw new InvalidOperationException("The gateway agent is already started.");
        }

        _observerReference ??= _grainFactory.CreateObjectReference<IGatewayObserver>(_observer);
        // A refusal means another process holds this id. It may be this gateway's own previous process that
        // just died: that one stops heartbeating, so the directory lets go of it within two heartbeat periods.
        var started = _timeProvider.GetTimestamp();
        RegisterStatus status;
        while ((status = await RegisterAsync().WaitAsync(cancellationToken).ConfigureAwait(false)) != RegisterStatus.Registered)
        {
            if (status == RegisterStatus.ForeignClusterKey)
            {
                throw new ForeignClusterKeyException(GatewayId, _identity.ClusterKey);
            }

            if (_timeProvider.GetElapsedTime(started) > _options.GatewayHeartbeatPeriod * 3)
            {
                throw new GatewayIdInUseException(GatewayId);
            }

            Log.IdInUseWaiting(_logger, GatewayId);
            await Task.Delay(_options.GatewayHeartbeatPeriod / 2, _timeProvider, cancellationToken).ConfigureAwait(false);
        }

        Volatile.Write(ref _confirmedAt, _timeProvider.GetTimestamp());

        _stopping = new CancellationTokenSource();
        _loop = RunAsync(_stopping.Token);
    }

    /// <summary>Stops the loop and unregisters (the cluster then evicts this gateway's members).</summary>
    public Task StopAsync(CancellationToken cancellationToken) => StopAsync(unregister: true, cancellationToken);

    /// <summary>
    /// Stops the loop without unregistering: to the cluster this gateway simply falls silent, as a crashed one
    /// does, and the directory's expiry removes it.
    /// </summary>
    public Task AbandonAsync() => StopAsync(unregister: false, CancellationToken.None);

    private async Task StopAsync(bool unregister, CancellationToken cancellationToken)
    {
        if (_loop is null || _stopping is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        _loop = null;
        try
        {
            if (unregister) await _grainFactory.GetGatewayDirectory().Unregister(GatewayId).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // Expiry removes it anyway.
            Log.UnregisterFailed(_logger, GatewayId, exception);
        }

        if (_observerReference is not null)
        {
            _grainFactory.DeleteObjectReference<IGatewayObserver>(_observerReference);
            _observerReference = null;
        }
    }

    /// <summary>
    /// Puts a renewed credential in this gateway's registration and registers again at once, so the directory
    /// (and gateways that read it from there) never hold one that expires before the gateway's own.
    /// </summary>
    public async Task UpdateCredentialAsync(ImmutableArray<byte> credential)
    {
        _identity = _identity with { Credential = credential };
        if (_observerReference is null) return; // not started: the first registration carries it
        try
        {
            if (await RegisterAsync().WaitAsync(CallTimeout).ConfigureAwait(false) is not RegisterStatus.Registered and var status)
                Log.RegistrationRefused(_logger, GatewayId, status);
        }
        catch (Exception e)
        {
            // The heartbeat loop registers again whenever the directory has forgotten this gateway.
            Log.CredentialUpdateFailed(_logger, GatewayId, e);
        }
    }

    /// <summary>Sends a link negotiation message to another gateway through the directory.</summary>
    public Task<LinkDelivery> SendLinkMessageAsync(string toGatewayId, LinkMessageKind kind, ImmutableArray<byte> payload) =>
        _grainFactory.GetGatewayDirectory().RelayLinkMessage(new LinkMessage(GatewayId, toGatewayId, kind, payload));

    /// <summary>Stops the agent.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping?.Dispose();
    }

    private Task<RegisterStatus> RegisterAsync()
    {
        var registration = new GatewayRegistration(
            GatewayId, _instanceId, _identity.LinkEndpoint, _identity.Credential, LoadProvider?.Invoke() ?? 0,
            _observerReference ?? throw new InvalidOperationException("The agent is not started."), _identity.ClusterKey);
        // The rooms where it serves members: a directory that re-activated learns whom to tell if it expires.
        return _grainFactory.GetGatewayDirectory().Register(registration, [.. Rooms.Rooms]);
    }

    // A heartbeat or a poll that has not been answered in this time is abandoned until the next round, so a call
    // stuck on a dead silo (answered only after the grain-call timeout) never lets this gateway expire.
    private TimeSpan CallTimeout => _options.GatewayExpiry / 3;

    // Heartbeats and room polling run as two loops: polling a room whose silo just died can wait for the
    // response timeout, and that must never delay the heartbeat that keeps this gateway's members alive.
    private Task RunAsync(CancellationToken cancellationToken) =>
        Task.WhenAll(HeartbeatLoopAsync(cancellationToken), RefreshLoopAsync(cancellationToken));

    private async Task HeartbeatLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.GatewayHeartbeatPeriod, _timeProvider);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                var known = await _grainFactory.GetGatewayDirectory()
                    .Heartbeat(new GatewayHeartbeat(GatewayId, _instanceId, LoadProvider?.Invoke() ?? 0))
                    .WaitAsync(CallTimeout, cancellationToken)
                    .ConfigureAwait(false);
                if (known)
                {
                    Volatile.Write(ref _confirmedAt, _timeProvider.GetTimestamp());
                }
                else
                {
                    Log.Reregistering(_logger, GatewayId);
                    if (await RegisterAsync().WaitAsync(CallTimeout, cancellationToken).ConfigureAwait(false) is var status and not RegisterStatus.Registered)
                    {
                        Log.RegistrationRefused(_logger, GatewayId, status);
                    }
                    else
                    {
                        Volatile.Write(ref _confirmedAt, _timeProvider.GetTimestamp());
                    }
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                Log.HeartbeatFailed(_logger, GatewayId, exception);
                await ProbeClusterAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // The directory did not answer. If the cluster does, the directory's silo is stuck or moving: it cannot
    // expire anyone meanwhile (it discounts its own stall), so this gateway is as live as before.
    private async Task ProbeClusterAsync(CancellationToken cancellationToken)
    {
        if (_confirmedAt == 0)
        {
            return;
        }

        try
        {
            // A different key each time spreads the probes over the client's connections to the silos.
            await _grainFactory.GetGrain<IClusterProbeGrain>(Interlocked.Increment(ref _probes)).Ping()
                .WaitAsync(CallTimeout, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _confirmedAt, _timeProvider.GetTimestamp());
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            Log.ClusterUnreachable(_logger, GatewayId);
        }
    }

    private async Task RefreshLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.GatewayHeartbeatPeriod, _timeProvider);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            // Not awaited: a room still being polled is skipped by the next tick, the others are polled on time.
            _ = Rooms.RefreshAsync(cancellationToken);
        }
    }

    private async Task ApplyAsync(Func<Task> apply, string room)
    {
        try
        {
            await apply().ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            // The next push or the next poll repairs the room.
            Log.ApplyFailed(_logger, room, exception);
        }
    }

    private sealed class Observer(GatewayAgent agent) : IGatewayObserver
    {
        // Not awaited: observer calls to one client object may be delivered one at a time, and a room whose
        // update needs a snapshot from an unreachable silo must not hold up the pushes of every other room.
        public Task OnRoomEvent(RoomEvent roomEvent)
        {
            agent.RoomEventReceived?.Invoke(roomEvent);
            _ = agent.ApplyAsync(() => agent.Rooms.ApplyAsync(roomEvent), roomEvent.Room);
            return Task.CompletedTask;
        }

        public Task OnRestoreRequested(RestoreInvitation invitation)
        {
            _ = agent.ApplyAsync(() => agent.Rooms.RestoreAsync(invitation), invitation.Room);
            return Task.CompletedTask;
        }

        public Task OnLinkMessage(LinkMessage message)
        {
            agent.LinkMessageReceived?.Invoke(message);
            return Task.CompletedTask;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1210, Level = LogLevel.Warning, Message = "Gateway id {GatewayId} is still held by a live process; waiting for it to expire")]
        public static partial void IdInUseWaiting(ILogger logger, string gatewayId);

        [LoggerMessage(EventId = 1211, Level = LogLevel.Critical,
            Message = "Gateway {GatewayId}: the directory refused to register it again ({Status}): another process took its id, or the cluster key changed")]
        public static partial void RegistrationRefused(ILogger logger, string gatewayId, RegisterStatus status);

        [LoggerMessage(EventId = 1212, Level = LogLevel.Warning, Message = "Gateway {GatewayId}: registering its renewed credential failed; the next registration carries it")]
        public static partial void CredentialUpdateFailed(ILogger logger, string gatewayId, Exception exception);

        [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Gateway {GatewayId} is unknown to the directory; registering again")]
        public static partial void Reregistering(ILogger logger, string gatewayId);

        [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "Gateway {GatewayId}: heartbeat failed")]
        public static partial void HeartbeatFailed(ILogger logger, string gatewayId, Exception exception);

        [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "Gateway {GatewayId}: neither the directory nor any silo answered")]
        public static partial void ClusterUnreachable(ILogger logger, string gatewayId);

        [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "Gateway {GatewayId}: unregistering failed")]
        public static partial void UnregisterFailed(ILogger logger, string gatewayId, Exception exception);

        [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Room {Room}: applying a push failed")]
        public static partial void ApplyFailed(ILogger logger, string room, Exception exception);
    }
}

/// <summary>The directory refused this gateway: it must not run as configured.</summary>
public abstract class GatewayRefusedException(string message) : Exception(message);

/// <summary>Another live gateway process is registered under this gateway's id.</summary>
public sealed class GatewayIdInUseException(string gatewayId)
    : GatewayRefusedException($"gateway id '{gatewayId}' is in use by another running gateway (give each gateway its own Gateway:GatewayId)")
{
    /// <summary>The id in use.</summary>
    public string GatewayId { get; } = gatewayId;
}

/// <summary>The gateway's credential is signed by another cluster key than the cluster's.</summary>
public sealed class ForeignClusterKeyException(string gatewayId, string clusterKey)
    : GatewayRefusedException($"gateway '{gatewayId}' has a credential signed by cluster key {clusterKey}, which is not this cluster's key " +
        "(Cluster:KeyFingerprint, or the key of the gateways already registered): issue its credential with this cluster's key (wzp cluster issue)")
{
    /// <summary>The gateway's cluster key fingerprint.</summary>
    public string ClusterKey { get; } = clusterKey;
}
