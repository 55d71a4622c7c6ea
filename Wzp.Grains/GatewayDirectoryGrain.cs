using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>
/// The live gateways. Each registration is kept while its gateway heartbeats; a silent one expires and every
/// room that hosts its members is told to evict them. State is in memory: after a re-activation gateways
/// re-register on their next heartbeat (it answers false) with the rooms they serve, and rooms re-attach
/// through their periodic check; <see cref="Census"/> tells a re-activated room how far to trust the list.
/// </summary>
public sealed partial class GatewayDirectoryGrain : Grain, IGatewayDirectoryGrain
{
    private readonly ControlPlaneOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<GatewayDirectoryGrain> _logger;
    private readonly Dictionary<string, Entry> _gateways = new(StringComparer.Ordinal);
    // Rooms that attached a gateway this activation does not know yet (it re-activated and the gateway has not
    // re-registered): kept until the gateway registers, or evicted from those rooms once the directory is settled.
    private readonly Dictionary<string, (Guid InstanceId, HashSet<string> Rooms)> _unconfirmed = new(StringComparer.Ordinal);
    private long _activatedAt;
    private bool _recovering; // evidence that this activation lost the registrations of a previous one
    private StallWatch _stalls = null!;
    private TimeSpan _sweepPeriod;

    /// <summary>Created by Orleans.</summary>
    public GatewayDirectoryGrain(IOptions<ControlPlaneOptions> options, TimeProvider timeProvider, ILogger<GatewayDirectoryGrain> logger)
    {
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _activatedAt = _timeProvider.GetTimestamp();
        // A quarter of the expiry bounds how late an expiry is noticed; KeepAlive because the registrations
        // exist only in this activation's memory.
        var period = _sweepPeriod = _options.GatewayExpiry / 4;
        _stalls = new StallWatch(_timeProvider, period);
        _stalls.Expect(period);
        this.RegisterGrainTimer(ExpireSilentGateways, new GrainTimerCreationOptions { DueTime = period, Period = period, KeepAlive = true });
        Log.Activated(_logger);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<RegisterStatus> Register(GatewayRegistration registration, ImmutableArray<string> rooms)
    {
        ArgumentNullException.ThrowIfNull(registration);
        if (!RoomLimits.IsValidGatewayId(registration.GatewayId))
        {
            throw new ArgumentException("The gateway id must be 1 to 128 characters with no control characters.", nameof(registration));
        }

        if (registration.ClusterKey.Length > 0 && ExpectedClusterKey(registration.GatewayId) is { } expected
            && !string.Equals(expected, registration.ClusterKey, StringComparison.OrdinalIgnoreCase))
        {
            // A credential from another cluster: clients that pin this cluster would refuse the gateway, and its
            // links to the others would fail, while it reported healthy.
            Log.ForeignClusterKey(_logger, registration.GatewayId, registration.ClusterKey, expected);
            return Task.FromResult(RegisterStatus.ForeignClusterKey);
        }

        var now = _timeProvider.GetUtcNow();
        if (_gateways.TryGetValue(registration.GatewayId, out var entry))
        {
            if (entry.Registration.InstanceId != registration.InstanceId
                && _timeProvider.GetElapsedTime(entry.LastSeenTimestamp) < _options.GatewayHeartbeatPeriod * 2)
            {
                // Its current process still heartbeats: this is a second process with the same id, not a restart.
                Log.GatewayIdInUse(_logger, registration.GatewayId);
                return Task.FromResult(RegisterStatus.IdInUse);
            }

            if (entry.Registration.InstanceId != registration.InstanceId)
            {
                // The same gateway id from a new process: the old process and its sessions are gone.
                Log.GatewayRestarted(_logger, registration.GatewayId);
                EvictFromRooms(registration.GatewayId, entry);
                entry = new Entry(registration, now);
                _gateways[registration.GatewayId] = entry;
            }
            else
            {
                entry.Registration = registration;
            }
        }
        else
        {
            entry = new Entry(registration, now);
            _gateways.Add(registration.GatewayId, entry);
            Log.GatewayRegistered(_logger, registration.GatewayId, registration.LinkEndpoint);
        }

        entry.LastSeen = now;
        entry.LastSeenTimestamp = _timeProvider.GetTimestamp();
        if (_unconfirmed.Remove(registration.GatewayId, out var noted) && noted.InstanceId == registration.InstanceId)
        {
            entry.Rooms.UnionWith(noted.Rooms);
        }

        foreach (var room in rooms.IsDefault ? [] : rooms)
        {
            if (RoomLimits.IsValidRoomName(room))
            {
                entry.Rooms.Add(room);
                _recovering = true;
            }
        }

        return Task.FromResult(RegisterStatus.Registered);
    }

    // The configured key, or else the key of the other registered gateways (they all agree: each was checked).
    private string? ExpectedClusterKey(string gatewayId) =>
        _options.KeyFingerprint.Length > 0
            ? _options.KeyFingerprint
            : _gateways.Values.FirstOrDefault(e => e.Registration.ClusterKey.Length > 0 && e.Registration.GatewayId != gatewayId)?.Registration.ClusterKey;

    /// <inheritdoc/>
    public Task<bool> Heartbeat(GatewayHeartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(heartbeat);
        if (!_gateways.TryGetValue(heartbeat.GatewayId, out var entry) || entry.Registration.InstanceId != heartbeat.InstanceId)
        {
            // A gateway heartbeats only after it registered: this activation has forgotten it.
            _recovering |= entry is null;
            return Task.FromResult(false);
        }

        entry.Registration = entry.Registration with { Load = heartbeat.Load };
        entry.LastSeen = _timeProvider.GetUtcNow();
        entry.LastSeenTimestamp = _timeProvider.GetTimestamp();
        return Task.FromResult(true);
    }

    /// <inheritdoc/>
    public Task Unregister(string gatewayId)
    {
        if (_gateways.Remove(gatewayId, out var entry))
        {
            Log.GatewayUnregistered(_logger, gatewayId);
            EvictFromRooms(gatewayId, entry);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<ImmutableArray<string>> ListRooms() =>
        Task.FromResult(_gateways.Values.SelectMany(entry => entry.Rooms)
            .Concat(_unconfirmed.Values.SelectMany(noted => noted.Rooms))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToImmutableArray());

    /// <inheritdoc/>
    public Task<ImmutableArray<GatewayInfo>> List() =>
        Task.FromResult(_gateways.Values.Select(entry => entry.ToInfo()).ToImmutableArray());

    /// <inheritdoc/>
    public Task<GatewayInfo?> Get(string gatewayId) =>
        Task.FromResult(_gateways.TryGetValue(gatewayId, out var entry) ? entry.ToInfo() : null);

    /// <inheritdoc/>
    public Task<GatewayCensus> Census()
    {
        var completeIn = Settled ? TimeSpan.Zero : _options.GatewayExpiry - _timeProvider.GetElapsedTime(_activatedAt);
        return Task.FromResult(new GatewayCensus([.. _gateways.Values.Select(entry => entry.ToInfo())], completeIn, _recovering));
    }

    /// <inheritdoc/>
    public Task<GatewayRegistration?> AttachRoom(string gatewayId, string room)
    {
        if (!_gateways.TryGetValue(gatewayId, out var entry))
        {
            return Task.FromResult<GatewayRegistration?>(null);
        }

        entry.Rooms.Add(room);
        return Task.FromResult<GatewayRegistration?>(entry.Registration);
    }

    /// <inheritdoc/>
    public Task NoteRoom(string gatewayId, Guid instanceId, string room)
    {
        if (!RoomLimits.IsValidRoomName(room))
        {
            return Task.CompletedTask;
        }

        if (_gateways.TryGetValue(gatewayId, out var entry) && entry.Registration.InstanceId == instanceId)
        {
            entry.Rooms.Add(room);
        }
        else if (entry is not null || Settled)
        {
            // Replaced by a later process, or never registered: the room holds members nobody serves.
            EvictUnknown(gatewayId, instanceId, room);
        }
        else
        {
            if (!_unconfirmed.TryGetValue(gatewayId, out var noted) || noted.InstanceId != instanceId)
            {
                _unconfirmed[gatewayId] = noted = (instanceId, new HashSet<string>(StringComparer.Ordinal));
            }

            noted.Rooms.Add(room);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task DetachRoom(string gatewayId, string room)
    {
        if (_gateways.TryGetValue(gatewayId, out var entry))
        {
            entry.Rooms.Remove(room);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task<GatewayCheckResult> CheckGateways(string room, ImmutableArray<string> gatewayIds)
    {
        // Right after a re-activation this directory has forgotten everyone; a live gateway re-registers within
        // one expiry period, so only after that is an unknown id really gone.
        var gone = ImmutableArray.CreateBuilder<string>();
        var live = ImmutableArray.CreateBuilder<GatewayRegistration>();
        foreach (var gatewayId in gatewayIds)
        {
            if (_gateways.TryGetValue(gatewayId, out var entry))
            {
                entry.Rooms.Add(room);
                live.Add(entry.Registration);
            }
            else if (Settled)
            {
                gone.Add(gatewayId);
            }
        }

        return Task.FromResult(new GatewayCheckResult(gone.ToImmutable(), live.ToImmutable()));
    }

    /// <inheritdoc/>
    public Task<LinkDelivery> RelayLinkMessage(LinkMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!_gateways.ContainsKey(message.FromGatewayId))
        {
            return Task.FromResult(LinkDelivery.UnknownSender);
        }

        if (!_gateways.TryGetValue(message.ToGatewayId, out var target))
        {
            return Task.FromResult(LinkDelivery.UnknownTarget);
        }

        target.Registration.Observer.OnLinkMessage(message).Ignore();
        return Task.FromResult(LinkDelivery.Sent);
    }

    private bool Settled => _timeProvider.GetElapsedTime(_activatedAt) >= _options.GatewayExpiry;

    private Task ExpireSilentGateways(CancellationToken cancellationToken)
    {
        var stall = _stalls.Stalled();
        _stalls.Expect(_sweepPeriod);
        if (stall > TimeSpan.Zero)
        {
            // This directory could not run (its silo hung): heartbeats that queued up meanwhile are only now being
            // delivered. The stall does not count as the gateways' silence.
            Log.Stalled(_logger, stall);
            foreach (var entry in _gateways.Values)
            {
                entry.LastSeenTimestamp = _stalls.Shift(entry.LastSeenTimestamp, stall);
            }

            return Task.CompletedTask;
        }

        if (Settled)
        {
            // A gateway that a room attached while this directory was young and that never registered since.
            foreach (var (gatewayId, noted) in _unconfirmed)
            {
                foreach (var room in noted.Rooms)
                {
                    EvictUnknown(gatewayId, noted.InstanceId, room);
                }
            }

            _unconfirmed.Clear();
        }

        var silent = _gateways
            .Where(pair => _timeProvider.GetElapsedTime(pair.Value.LastSeenTimestamp) > _options.GatewayExpiry)
            .ToList();
        foreach (var (gatewayId, entry) in silent)
        {
            _gateways.Remove(gatewayId);
            Log.GatewayExpired(_logger, gatewayId, entry.LastSeen);
            EvictFromRooms(gatewayId, entry);
        }

        return Task.CompletedTask;
    }

    private void EvictUnknown(string gatewayId, Guid instanceId, string room)
    {
        Log.UnknownGatewayInRoom(_logger, gatewayId, room);
        GrainFactory.GetGrain<IRoomGrain>(room).EvictGateway(gatewayId, instanceId).Ignore();
    }

    private void EvictFromRooms(string gatewayId, Entry entry)
    {
        foreach (var room in entry.Rooms)
        {
            GrainFactory.GetGrain<IRoomGrain>(room).EvictGateway(gatewayId, entry.Registration.InstanceId).Ignore();
        }
    }

    private sealed class Entry(GatewayRegistration registration, DateTimeOffset registeredAt)
    {
        public GatewayRegistration Registration { get; set; } = registration;

        public DateTimeOffset RegisteredAt { get; } = registeredAt;

        public DateTimeOffset LastSeen { get; set; } = registeredAt;

        public long LastSeenTimestamp { get; set; }

        public HashSet<string> Rooms { get; } = new(StringComparer.Ordinal);

        public GatewayInfo ToInfo() => new(Registration, RegisteredAt, LastSeen);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2121, Level = LogLevel.Debug, Message = "Gateway directory activated")]
        public static partial void Activated(ILogger logger);

        [LoggerMessage(EventId = 2124, Level = LogLevel.Error,
            Message = "Gateway {GatewayId} refused: its credential is signed by cluster key {Key}, this cluster's is {Expected}")]
        public static partial void ForeignClusterKey(ILogger logger, string gatewayId, string key, string expected);

        [LoggerMessage(EventId = 2123, Level = LogLevel.Warning,
            Message = "Room {Room} attached gateway {GatewayId}, which is not registered as that process: the room evicts it")]
        public static partial void UnknownGatewayInRoom(ILogger logger, string gatewayId, string room);

        [LoggerMessage(EventId = 2122, Level = LogLevel.Warning,
            Message = "The gateway directory could not run for {Stall} (its silo stalled): no gateway expires for that silence")]
        public static partial void Stalled(ILogger logger, TimeSpan stall);

        [LoggerMessage(EventId = 2120, Level = LogLevel.Error,
            Message = "Gateway id {GatewayId} is registered by a process that is still alive: a second process with that id was refused")]
        public static partial void GatewayIdInUse(ILogger logger, string gatewayId);

        [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Gateway {GatewayId} registered (link endpoint {LinkEndpoint})")]
        public static partial void GatewayRegistered(ILogger logger, string gatewayId, string linkEndpoint);

        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Gateway {GatewayId} unregistered")]
        public static partial void GatewayUnregistered(ILogger logger, string gatewayId);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Gateway {GatewayId} expired (last seen {LastSeen:O})")]
        public static partial void GatewayExpired(ILogger logger, string gatewayId, DateTimeOffset lastSeen);

        [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Gateway {GatewayId} registered from a new process; the old one's members are evicted")]
        public static partial void GatewayRestarted(ILogger logger, string gatewayId);
    }
}
