using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Wzp.Grains;

/// <summary>
/// A room: its members, its epoch and the rekey orchestration of its members' gateways. State lives in memory
/// only; after a silo failure the gateways restore it (see <see cref="IRoomGrain.RestoreMembers"/>).
/// </summary>
/// <remarks>
/// Not reentrant on purpose: every change runs alone, so slots, versions and epochs need no further locking.
/// The grain never awaits a gateway (pushes are one-way) nor a call that could wait on it, so it cannot deadlock.
/// </remarks>
public sealed partial class RoomGrain : Grain, IRoomGrain
{
    private readonly ControlPlaneOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<RoomGrain> _logger;
    private readonly Dictionary<ushort, RoomMember> _members = [];

    // Identities an admin removed, each until the grant it was kicked with expires (null: no grants, for as long as
    // this activation lives). A room that emptied and reopened, or re-activated after a silo death, forgets them;
    // grants are short, so this is a cooling-off, not a ban list. Muted identities stay muted when they rejoin.
    private readonly Dictionary<Fingerprint, DateTimeOffset?> _kicked = [];
    private readonly HashSet<Fingerprint> _muted = [];
    private const int MaxKicked = 4096;
    private DateTimeOffset _openedAt;
    private readonly Dictionary<string, HostingGateway> _gateways = new(StringComparer.Ordinal);
    private readonly Guid _incarnation = Guid.NewGuid();
    private long _version;
    private long _epoch;
    private ushort _nextSlot = 1;
    private RestorePhase _restore = null!;
    private StallWatch _stalls = null!;
    // A deadline timer later than this was not merely delayed by a busy machine: the room's silo stalled.
    private static readonly TimeSpan StallTolerance = TimeSpan.FromSeconds(1);
    private RoomSnapshot? _snapshot;
    private IGrainTimer? _epochTimer;
    private IGrainTimer? _gatewayCheckTimer;
    private IGrainTimer? _rekeyDeadlineTimer;
    private readonly SiloMetrics.RoomGauge _gauge = SiloMetrics.TrackRoom();
    private static readonly TimeSpan CensusRetryDelay = TimeSpan.FromMilliseconds(250);

    /// <summary>Created by Orleans.</summary>
    public RoomGrain(IOptions<ControlPlaneOptions> options, TimeProvider timeProvider, ILogger<RoomGrain> logger)
    {
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    private string RoomName => this.GetPrimaryKeyString();

    /// <inheritdoc/>
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Versions and epochs start from the clock (microsecond-ish units) rather than zero, so a room that
        // re-activates after losing its state still counts upwards: a previous activation would have needed
        // more than a thousand changes per millisecond of its life to get ahead, far beyond what one grain does.
        _openedAt = _timeProvider.GetUtcNow();
        _version = _epoch = _openedAt.ToUnixTimeMilliseconds() * 1000;
        _restore = new RestorePhase(_timeProvider, _options.RestoreWindow);
        _stalls = new StallWatch(_timeProvider, StallTolerance);

        // Maybe this room existed on a silo that died: invite every live gateway to restore its members. Done
        // from a timer so that activation does not wait on the directory (whose silo may be the dead one).
        InviteRestoreAfter(TimeSpan.Zero);
        Log.Activated(_logger, RoomName, _incarnation);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _gauge.Dispose();
        return base.OnDeactivateAsync(reason, cancellationToken);
    }

    /// <inheritdoc/>
    public async Task<JoinResult> Join(JoinRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!RoomLimits.IsValidRoomName(RoomName) || !RoomLimits.IsValidAlias(request.Alias)
            || !RoomLimits.IsValidGatewayId(request.GatewayId))
        {
            return JoinResult.Refused(JoinStatus.Invalid);
        }

        var restoreFirst = request.KnownIncarnation != Guid.Empty && request.KnownIncarnation != _incarnation;
        _restore.FirstCall(newcomer: request.KnownIncarnation == Guid.Empty);
        if (restoreFirst && !_restore.Answered(request.GatewayId))
        {
            // This gateway serves members of a previous activation: they keep their slots, so they come first.
            return JoinResult.Refused(JoinStatus.RestoreFirst);
        }

        if (IsKicked(request.Fingerprint))
        {
            return JoinResult.Refused(JoinStatus.Kicked);
        }

        if (_members.Count >= _options.MembersPerRoom)
        {
            Log.RoomFull(_logger, RoomName, _members.Count);
            return JoinResult.Refused(JoinStatus.RoomFull);
        }

        var (gateway, stale) = await AttachGatewayAsync(request.GatewayId, request.GatewayInstance, request.Observer);
        if (gateway is null)
        {
            return JoinResult.Refused(JoinStatus.GatewayNotRegistered);
        }

        if (_restore.HoldsJoins)
        {
            // A gateway that gives up waiting must not stay attached with no members (it would be owed rekeys).
            if (gateway.MemberCount == 0)
            {
                ForgetGateway(request.GatewayId);
            }

            if (!stale.IsEmpty)
            {
                Advance(RoomChangeReason.GatewayGone, [], stale, [], advanceEpoch: true);
            }

            return JoinResult.Refused(JoinStatus.Restoring);
        }

        // One identity is one member: a client that joins again (its flow moved to another gateway, or it
        // reconnected before its old connection timed out) replaces its former self, whose gateway cuts it off.
        ImmutableArray<ushort> replaced = [];
        ImmutableArray<HostingGateway> former = [];
        if (_members.Values.FirstOrDefault(m => m.Fingerprint == request.Fingerprint) is { } previous)
        {
            _members.Remove(previous.Slot);
            replaced = [previous.Slot];
            if (string.Equals(previous.GatewayId, request.GatewayId, StringComparison.Ordinal))
            {
                gateway.MemberCount--;
            }
            else
            {
                former = ReleaseGatewayMember(previous.GatewayId);
            }

            Log.MemberReplaced(_logger, RoomName, previous.Slot, previous.GatewayId);
            OnMemberGone(previous, ParticipantLeaveReason.Replaced);
        }

        var member = new RoomMember(AllocateSlot(), request.Fingerprint, request.Alias, request.GatewayId,
            Muted: _muted.Contains(request.Fingerprint), Listener: request.Listener, GrantExpires: request.GrantExpires);
        _members.Add(member.Slot, member);
        gateway.MemberCount++;
        OnMemberJoined(member);
        Advance(RoomChangeReason.Joined, [member], [.. replaced, .. stale], former, advanceEpoch: true);
        Log.MemberJoined(_logger, RoomName, member.Slot, member.GatewayId, _epoch);
        return new JoinResult(JoinStatus.Joined, member.Slot, _epoch, Snapshot());
    }

    /// <inheritdoc/>
    public Task<bool> Leave(LeaveRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        _restore.FirstCall(newcomer: false);
        if (!_members.TryGetValue(request.Slot, out var member)
            || !string.Equals(member.GatewayId, request.GatewayId, StringComparison.Ordinal)
            || !SameProcess(_gateways[member.GatewayId].InstanceId, request.GatewayInstance))
        {
            return Task.FromResult(false);
        }

        _members.Remove(member.Slot);
        OnMemberGone(member, ParticipantLeaveReason.Left);
        var former = ReleaseGatewayMember(member.GatewayId);
        Advance(RoomChangeReason.Left, [], [member.Slot], former, advanceEpoch: true);
        Log.MemberLeft(_logger, RoomName, member.Slot, member.GatewayId, _epoch);
        return Task.FromResult(true);
    }

    /// <inheritdoc/>
    public Task<bool> Kick(KickRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        _restore.FirstCall(newcomer: false);
        if (!IsMemberOf(request.BySlot, request.GatewayId, request.GatewayInstance)
            || request.Slot == request.BySlot
            || !_members.TryGetValue(request.Slot, out var member))
        {
            return Task.FromResult(false);
        }

        KickMember(member, request.BySlot);
        return Task.FromResult(true);
    }

    /// <inheritdoc/>
    public Task<bool> Mute(MuteRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        _restore.FirstCall(newcomer: false);
        if (!IsMemberOf(request.BySlot, request.GatewayId, request.GatewayInstance)
            || !_members.TryGetValue(request.Slot, out var member))
        {
            return Task.FromResult(false);
        }

        SetMuted(member, request.Muted, request.BySlot);
        return Task.FromResult(true);
    }

    /// <inheritdoc/>
    public Task<AdminOutcome> Administer(AdminCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        _restore.FirstCall(newcomer: false);
        if (command.Action == AdminAction.Close)
        {
            var count = _members.Count;
            if (count > 0)
            {
                var slots = _members.Keys.ToImmutableArray();
                var gateways = _gateways.Values.ToImmutableArray();
                foreach (var gone in _members.Values) OnMemberGone(gone, ParticipantLeaveReason.RoomClosed);
                _members.Clear();
                foreach (var gatewayId in _gateways.Keys.ToList())
                {
                    ForgetGateway(gatewayId);
                }

                // Pushed to the gateways it hosted, which tell their members why; then the room is empty and goes.
                Advance(RoomChangeReason.Closed, [], slots, gateways, advanceEpoch: true);
                Log.Closed(_logger, RoomName, count);
            }

            return Task.FromResult(new AdminOutcome(count > 0, count));
        }

        if (!_members.TryGetValue(command.Slot, out var member))
        {
            return Task.FromResult(new AdminOutcome(false, 0));
        }

        switch (command.Action)
        {
            case AdminAction.Kick:
                KickMember(member);
                break;
            case AdminAction.Mute or AdminAction.Unmute:
                SetMuted(member, command.Action == AdminAction.Mute);
                break;
            default:
                return Task.FromResult(new AdminOutcome(false, 0));
        }

        return Task.FromResult(new AdminOutcome(true, 1));
    }

    /// <inheritdoc/>
    public Task<RoomDescription> Describe()
    {
        _restore.FirstCall(newcomer: false);
        return Task.FromResult(new RoomDescription(Snapshot(), _openedAt));
    }

    private bool IsMemberOf(ushort slot, string gatewayId, Guid gatewayInstance) =>
        _members.TryGetValue(slot, out var member)
        && string.Equals(member.GatewayId, gatewayId, StringComparison.Ordinal)
        && SameProcess(_gateways[member.GatewayId].InstanceId, gatewayInstance);

    private bool IsKicked(Fingerprint fingerprint)
    {
        if (!_kicked.TryGetValue(fingerprint, out var until))
        {
            return false;
        }

        if (until is null || _timeProvider.GetUtcNow() < until)
        {
            return true;
        }

        // Its grant expired: any join now comes with a fresh grant, which the issuer chose to give.
        _kicked.Remove(fingerprint);
        return false;
    }

    private void KickMember(RoomMember member, ushort bySlot = 0)
    {
        _members.Remove(member.Slot);
        if (_kicked.Count >= MaxKicked)
        {
            var now = _timeProvider.GetUtcNow();
            foreach (var expired in _kicked.Where(pair => pair.Value is { } until && until <= now).Select(pair => pair.Key).ToList())
            {
                _kicked.Remove(expired);
            }
        }

        if (_kicked.Count < MaxKicked)
        {
            _kicked[member.Fingerprint] = member.GrantExpires;
        }

        OnMemberGone(member, ParticipantLeaveReason.Kicked, bySlot);
        var former = ReleaseGatewayMember(member.GatewayId);
        // The kicked member's gateway sees it gone with this reason and tells it 'kicked' before closing it.
        Advance(RoomChangeReason.Kicked, [], [member.Slot], former, advanceEpoch: true);
        Log.MemberLeft(_logger, RoomName, member.Slot, member.GatewayId, _epoch);
    }

    // No rekey: the member's keys are unchanged, only whether its gateway forwards what it sends.
    private void SetMuted(RoomMember member, bool muted, ushort bySlot = 0)
    {
        if (muted && _muted.Count < MaxKicked)
        {
            _muted.Add(member.Fingerprint);
        }
        else if (!muted)
        {
            _muted.Remove(member.Fingerprint);
        }

        if (member.Muted == muted)
        {
            return;
        }

        var changed = member with { Muted = muted };
        _members[member.Slot] = changed;
        Advance(RoomChangeReason.Muted, [changed], [], formerGateways: [], advanceEpoch: false);
        Log.MuteChanged(_logger, RoomName, member.Slot, muted);
        OnMemberMuted(member.Slot, muted, bySlot);
    }

    /// <inheritdoc/>
    public Task<RoomSnapshot> GetSnapshot()
    {
        _restore.FirstCall(newcomer: false);
        return Task.FromResult(Snapshot());
    }

    /// <inheritdoc/>
    public Task<RoomStamp> GetStamp()
    {
        // Only gateways serving members of the room poll it.
        _restore.FirstCall(newcomer: false);
        return Task.FromResult(new RoomStamp(_incarnation, _version, _epoch));
    }

    /// <inheritdoc/>
    public Task ReportRekeyComplete(RekeyReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        _restore.FirstCall(newcomer: false);
        if ((report.RoomIncarnation == Guid.Empty || report.RoomIncarnation == _incarnation)
            && _gateways.TryGetValue(report.GatewayId, out var gateway)
            && SameProcess(gateway.InstanceId, report.GatewayInstance))
        {
            // A report covers every earlier epoch too: a gateway that coalesced several rekeys into one is done.
            while (gateway.PendingRekeys.TryPeek(out var pending) && pending.Epoch <= report.Epoch)
            {
                gateway.PendingRekeys.Dequeue();
            }

            ArmRekeyDeadline();
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public async Task<RestoreResult> RestoreMembers(RestoreRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        _restore.FirstCall(newcomer: request.Members.IsEmpty);
        var slots = request.Members.Select(member => member.Slot).ToImmutableArray();
        if (!RoomLimits.IsValidGatewayId(request.GatewayId))
        {
            return new RestoreResult(Snapshot(), slots);
        }

        _restore.Answer(request.GatewayId);
        if (request.Members.IsEmpty)
        {
            // A gateway answering the invitation with nothing to restore.
            return new RestoreResult(Snapshot(), []);
        }

        // The directory may have lost this gateway with its own silo; the gateway re-registers at its next
        // heartbeat, and its members must not be dropped meanwhile: the observer it sent is enough to reach it.
        var (gateway, stale) = await AttachGatewayAsync(request.GatewayId, request.GatewayInstance, request.Observer);
        if (gateway is null && request.Observer is { } observer
            && (!_gateways.TryGetValue(request.GatewayId, out var known) || SameProcess(known.InstanceId, request.GatewayInstance)))
        {
            gateway = AdoptUnregisteredGateway(request.GatewayId, observer, request.GatewayInstance);
        }

        if (gateway is null)
        {
            return new RestoreResult(Snapshot(), slots);
        }

        var restored = ImmutableArray.CreateBuilder<RoomMember>();
        var rejected = ImmutableArray.CreateBuilder<ushort>();
        foreach (var member in request.Members)
        {
            if (_members.TryGetValue(member.Slot, out var existing))
            {
                // Already there (a second restore, or the push and the poll raced): idempotent. Anyone else in
                // that slot joined meanwhile and keeps it; the gateway must re-join or drop this member.
                if (!existing.IsSameMemberAs(member))
                {
                    rejected.Add(member.Slot);
                }
            }
            else if (member.Slot == 0 || !string.Equals(member.GatewayId, request.GatewayId, StringComparison.Ordinal)
                || !RoomLimits.IsValidAlias(member.Alias) || _members.Count >= _options.MembersPerRoom)
            {
                rejected.Add(member.Slot);
            }
            else
            {
                _members.Add(member.Slot, member);
                gateway.MemberCount++;
                restored.Add(member);
                if (member.Muted && _muted.Count < MaxKicked)
                {
                    _muted.Add(member.Fingerprint);
                }

                // Round-robin allocation continues past the slots the previous activation handed out, so a
                // newcomer never takes (or soon re-takes) a restored member's slot.
                if (member.Slot >= _nextSlot)
                {
                    _nextSlot = member.Slot == ushort.MaxValue ? (ushort)1 : (ushort)(member.Slot + 1);
                }
            }
        }

        if (restored.Count > 0)
        {
            OnMembersRestored();
            _version = Math.Max(_version, request.LastVersion);
            _epoch = Math.Max(_epoch, request.LastEpoch);
            Advance(RoomChangeReason.Restored, restored.ToImmutable(), stale, formerGateways: [], advanceEpoch: !stale.IsEmpty);
        }
        else if (!stale.IsEmpty)
        {
            if (gateway.MemberCount == 0)
            {
                ForgetGateway(request.GatewayId);
            }

            Advance(RoomChangeReason.GatewayGone, [], stale, [gateway], advanceEpoch: true);
        }
        else if (gateway.MemberCount == 0)
        {
            ForgetGateway(request.GatewayId);
            if (_members.Count == 0)
            {
                BecomeEmpty();
            }
        }

        Log.MembersRestored(_logger, RoomName, request.GatewayId, restored.Count, rejected.Count);
        return new RestoreResult(Snapshot(), rejected.ToImmutable());
    }

    /// <inheritdoc/>
    public Task EvictGateway(string gatewayId, Guid instanceId)
    {
        if (_gateways.TryGetValue(gatewayId, out var gateway) && !SameProcess(gateway.InstanceId, instanceId))
        {
            // Meant for an earlier process under this id; the room already serves the current one.
            Log.StaleEvictionIgnored(_logger, RoomName, gatewayId);
            return Task.CompletedTask;
        }

        Evict(gatewayId, RoomChangeReason.GatewayGone);
        return Task.CompletedTask;
    }

    // Empty stands for "whichever process": requests of tests and tools that do not name one.
    private static bool SameProcess(Guid a, Guid b) => a == Guid.Empty || b == Guid.Empty || a == b;

    private RoomSnapshot Snapshot() =>
        _snapshot ??= new RoomSnapshot(RoomName, _incarnation, _version, _epoch, [.. _members.Values.OrderBy(member => member.Slot)]);

    private ushort AllocateSlot()
    {
        // Round-robin rather than lowest-free: a slot that was just released is not handed out again at once,
        // so a late datagram from a departed member is not attributed to a newcomer.
        for (var attempt = 0; attempt < RoomLimits.MaxMembers; attempt++)
        {
            var slot = _nextSlot;
            _nextSlot = slot == ushort.MaxValue ? (ushort)1 : (ushort)(slot + 1);
            if (!_members.ContainsKey(slot))
            {
                return slot;
            }
        }

        throw new InvalidOperationException("No free slot although the room is below its limit.");
    }

    // The gateway process that sends a request, attached to the room. A request from a new process under a known
    // id means the earlier process is gone: its members are taken out of the room here and returned, for the
    // caller to announce in the change it makes anyway (an eviction of its own could empty the room mid-join).
    // A gateway that sends its observer and process is attached at once, and the directory is only told (one-way):
    // a join never waits on the directory, whose silo may be the slow or the dead one. The directory answers with
    // an eviction if that process is not the registered one.
    private async Task<(HostingGateway? Gateway, ImmutableArray<ushort> Stale)> AttachGatewayAsync(
        string gatewayId, Guid instanceId, IGatewayObserver? observer)
    {
        _gateways.TryGetValue(gatewayId, out var known);
        if (known is not null && SameProcess(known.InstanceId, instanceId))
        {
            return (known, []);
        }

        IGatewayObserver pushTarget;
        if (observer is not null && instanceId != Guid.Empty)
        {
            GrainFactory.GetGatewayDirectory().NoteRoom(gatewayId, instanceId, RoomName).Ignore();
            pushTarget = observer;
        }
        else
        {
            var registration = await GrainFactory.GetGatewayDirectory().AttachRoom(gatewayId, RoomName);
            if (registration is null || !SameProcess(registration.InstanceId, instanceId))
            {
                Log.GatewayNotRegistered(_logger, RoomName, gatewayId);
                return (null, []);
            }

            pushTarget = registration.Observer;
            instanceId = registration.InstanceId;
        }

        var stale = ImmutableArray<ushort>.Empty;
        if (known is not null)
        {
            stale = RemoveMembersOf(gatewayId);
            Log.GatewayEvicted(_logger, RoomName, gatewayId, stale.Length, RoomChangeReason.GatewayGone);
            SiloMetrics.OnGatewayEvicted(RoomChangeReason.GatewayGone);
        }

        var gateway = new HostingGateway(pushTarget, instanceId);
        _gateways[gatewayId] = gateway;
        return (gateway, stale);
    }

    private HostingGateway AdoptUnregisteredGateway(string gatewayId, IGatewayObserver observer, Guid instanceId)
    {
        var stale = RemoveMembersOf(gatewayId);
        Debug.Assert(stale.IsEmpty, "only a gateway the room does not know, or knows as this process, is adopted");
        var gateway = new HostingGateway(observer, instanceId);
        _gateways[gatewayId] = gateway;
        return gateway;
    }

    private ImmutableArray<ushort> RemoveMembersOf(string gatewayId, RoomChangeReason reason = RoomChangeReason.GatewayGone)
    {
        var removed = _members.Values
            .Where(member => string.Equals(member.GatewayId, gatewayId, StringComparison.Ordinal))
            .ToList();
        var slots = removed.Select(member => member.Slot).ToImmutableArray();
        foreach (var member in removed)
        {
            _members.Remove(member.Slot);
            OnMemberGone(member, LeaveReasonOf(reason));
        }

        return slots;
    }

    // Returns the gateway when this was its last member here, so the change is still pushed to it.
    private ImmutableArray<HostingGateway> ReleaseGatewayMember(string gatewayId)
    {
        var gateway = _gateways[gatewayId];
        gateway.MemberCount--;
        if (gateway.MemberCount > 0)
        {
            return [];
        }

        ForgetGateway(gatewayId);
        return [gateway];
    }

    private void ForgetGateway(string gatewayId)
    {
        if (_gateways.Remove(gatewayId))
        {
            GrainFactory.GetGatewayDirectory().DetachRoom(gatewayId, RoomName).Ignore();
        }
    }

    private void Evict(string gatewayId, RoomChangeReason reason)
    {
        if (!_gateways.TryGetValue(gatewayId, out var gateway))
        {
            return;
        }

        var slots = RemoveMembersOf(gatewayId, reason);
        ForgetGateway(gatewayId);
        Log.GatewayEvicted(_logger, RoomName, gatewayId, slots.Length, reason);
        SiloMetrics.OnGatewayEvicted(reason);
        Advance(reason, [], slots, [gateway], advanceEpoch: true);
    }

    // Records one change: bumps the version (and the epoch), pushes the event to every gateway that hosted
    // members before or after it, and starts the rekey deadline of each gateway that hosts members now.
    private void Advance(
        RoomChangeReason reason,
        ImmutableArray<RoomMember> joined,
        ImmutableArray<ushort> left,
        ImmutableArray<HostingGateway> formerGateways,
        bool advanceEpoch)
    {
        _version++;
        if (advanceEpoch)
        {
            _epoch++;
        }

        _snapshot = null;
        _gauge.SetMembers(_members.Count);
        var roomEvent = new RoomEvent(RoomName, _incarnation, _version, _epoch, reason, joined, left);
        foreach (var gateway in _gateways.Values.Concat(formerGateways))
        {
            Push(gateway, roomEvent);
        }

        if (_members.Count == 0)
        {
            BecomeEmpty();
            return;
        }

        if (advanceEpoch)
        {
            var now = _timeProvider.GetTimestamp();
            foreach (var gateway in _gateways.Values)
            {
                gateway.PendingRekeys.Enqueue((_epoch, now));
            }

            _gauge.RekeyStarted(_epoch, now);
        }

        EnsureTimers();
        ArmRekeyDeadline();
    }

    private void Push(HostingGateway gateway, RoomEvent roomEvent)
    {
        try
        {
            // One-way: the room never waits on a gateway. A lost push is repaired by the version gap check.
            gateway.Observer.OnRoomEvent(roomEvent).Ignore();
        }
        catch (Exception exception)
        {
            Log.PushFailed(_logger, RoomName, exception);
        }
    }

    private void EnsureTimers()
    {
        // KeepAlive: a room with members must not be collected as idle, since its state lives only in memory.
        _epochTimer ??= this.RegisterGrainTimer(
            OnEpochTimerAsync,
            new GrainTimerCreationOptions { DueTime = _options.EpochPeriod, Period = _options.EpochPeriod, KeepAlive = true });
        // Interleaved: the check waits on the directory, and joins, leaves and reports must not wait behind it.
        _gatewayCheckTimer ??= this.RegisterGrainTimer(
            CheckGatewaysAsync,
            new GrainTimerCreationOptions
            {
                DueTime = _options.RoomGatewayCheckPeriod,
                Period = _options.RoomGatewayCheckPeriod,
                KeepAlive = true,
                Interleave = true,
            });
        _rekeyDeadlineTimer ??= this.RegisterGrainTimer(
            OnRekeyDeadlineAsync,
            new GrainTimerCreationOptions { DueTime = Timeout.InfiniteTimeSpan, Period = Timeout.InfiniteTimeSpan, KeepAlive = true });
    }

    private void BecomeEmpty()
    {
        OnRoomEmpty();
        foreach (var gatewayId in _gateways.Keys.ToList())
        {
            ForgetGateway(gatewayId);
        }

        _epochTimer?.Dispose();
        _gatewayCheckTimer?.Dispose();
        _rekeyDeadlineTimer?.Dispose();
        _epochTimer = _gatewayCheckTimer = _rekeyDeadlineTimer = null;
        _gauge.Clear();
        Log.RoomEmpty(_logger, RoomName);
        this.DeactivateOnIdle();
    }

    private void ArmRekeyDeadline()
    {
        // Every epoch older than the oldest one still owed has been reported by all its gateways.
        _gauge.RekeysSettled(_gateways.Values.Select(g => g.PendingRekeys.TryPeek(out var p) ? p.Epoch : (long?)null).Min(), _timeProvider);
        if (_rekeyDeadlineTimer is null)
        {
            return;
        }

        long? oldest = null;
        foreach (var gateway in _gateways.Values)
        {
            if (gateway.PendingRekeys.TryPeek(out var pending) && (oldest is null || pending.IssuedAt < oldest))
            {
                oldest = pending.IssuedAt;
            }
        }

        if (oldest is null)
        {
            _stalls.Expect(Timeout.InfiniteTimeSpan);
            _rekeyDeadlineTimer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        var due = _options.RekeyTimeout - _timeProvider.GetElapsedTime(oldest.Value);
        due = due > TimeSpan.Zero ? due : TimeSpan.Zero;
        _stalls.Expect(due);
        _rekeyDeadlineTimer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private Task OnRekeyDeadlineAsync(CancellationToken cancellationToken)
    {
        var stall = _stalls.Stalled();
        if (stall > TimeSpan.Zero)
        {
            // The room could not run (its silo hung): reports sent meanwhile are still queued behind this timer.
            // The gateways get the time they were owed.
            Log.Stalled(_logger, RoomName, stall);
            foreach (var gateway in _gateways.Values)
            {
                var shifted = gateway.PendingRekeys.Select(p => (p.Epoch, _stalls.Shift(p.IssuedAt, stall))).ToList();
                gateway.PendingRekeys.Clear();
                shifted.ForEach(gateway.PendingRekeys.Enqueue);
            }

            ArmRekeyDeadline();
            return Task.CompletedTask;
        }

        var late = _gateways
            .Where(pair => pair.Value.PendingRekeys.TryPeek(out var pending)
                && _timeProvider.GetElapsedTime(pending.IssuedAt) >= _options.RekeyTimeout)
            .Select(pair => pair.Key)
            .ToList();
        foreach (var gatewayId in late)
        {
            Evict(gatewayId, RoomChangeReason.RekeyTimeout);
        }

        ArmRekeyDeadline();
        return Task.CompletedTask;
    }

    private Task OnEpochTimerAsync(CancellationToken cancellationToken)
    {
        if (_members.Count > 0)
        {
            Advance(RoomChangeReason.PeriodicRekey, [], [], formerGateways: [], advanceEpoch: true);
        }

        return Task.CompletedTask;
    }

    private async Task CheckGatewaysAsync(CancellationToken cancellationToken)
    {
        if (_gateways.Count == 0)
        {
            return;
        }

        // Other calls run while the directory answers: act only on the gateways that are still the ones asked about.
        var asked = new Dictionary<string, HostingGateway>(_gateways, StringComparer.Ordinal);
        var result = await GrainFactory.GetGatewayDirectory().CheckGateways(RoomName, [.. asked.Keys]);
        bool Unchanged(string gatewayId, out HostingGateway gateway) =>
            _gateways.TryGetValue(gatewayId, out gateway!) && asked.TryGetValue(gatewayId, out var before) && ReferenceEquals(gateway, before);

        foreach (var registration in result.Live)
        {
            if (Unchanged(registration.GatewayId, out var gateway))
            {
                if (SameProcess(gateway.InstanceId, registration.InstanceId))
                {
                    gateway.Observer = registration.Observer;
                }
                else
                {
                    // Another process holds the id now: the members here were the earlier one's.
                    Evict(registration.GatewayId, RoomChangeReason.GatewayGone);
                }
            }
        }

        foreach (var gatewayId in result.Gone)
        {
            if (Unchanged(gatewayId, out _))
            {
                Evict(gatewayId, RoomChangeReason.GatewayGone);
            }
        }
    }

    private async Task InviteRestoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            var census = await GrainFactory.GetGatewayDirectory().Census();
            var invitation = new RestoreInvitation(RoomName, _incarnation);
            foreach (var gateway in census.Gateways)
            {
                if (_restore.Invite(gateway.GatewayId))
                {
                    gateway.Registration.Observer.OnRestoreRequested(invitation).Ignore();
                }
            }

            if (_restore.Censused(census.CompleteIn, census.Recovering))
            {
                // The directory may not know every live gateway yet: invite the late ones once it does.
                InviteRestoreAfter(census.CompleteIn);
            }
        }
        catch (Exception exception)
        {
            // Gateways also poll their rooms' stamps, so they restore without the invitation, only later; while
            // joins are held anyway, ask the directory again.
            Log.InviteFailed(_logger, RoomName, exception);
            if (_restore.HoldsJoins)
            {
                InviteRestoreAfter(CensusRetryDelay);
            }
        }
    }

    // Interleaved: the census waits on the directory, and the restores it leads to must not wait behind it.
    private void InviteRestoreAfter(TimeSpan due) =>
        this.RegisterGrainTimer(
            InviteRestoreAsync,
            new GrainTimerCreationOptions { DueTime = due, Period = Timeout.InfiniteTimeSpan, KeepAlive = false, Interleave = true });

    private sealed class HostingGateway(IGatewayObserver observer, Guid instanceId)
    {
        public IGatewayObserver Observer { get; set; } = observer;

        public Guid InstanceId { get; } = instanceId;

        public int MemberCount { get; set; }

        public Queue<(long Epoch, long IssuedAt)> PendingRekeys { get; } = new();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2000, Level = LogLevel.Debug, Message = "Room {Room} activated as incarnation {Incarnation}")]
        public static partial void Activated(ILogger logger, string room, Guid incarnation);

        [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Room {Room}: slot {Slot} joined through gateway {GatewayId}, epoch {Epoch}")]
        public static partial void MemberJoined(ILogger logger, string room, ushort slot, string gatewayId, long epoch);

        [LoggerMessage(EventId = 2002, Level = LogLevel.Debug, Message = "Room {Room}: slot {Slot} of gateway {GatewayId} left, epoch {Epoch}")]
        public static partial void MemberLeft(ILogger logger, string room, ushort slot, string gatewayId, long epoch);

        [LoggerMessage(EventId = 2003, Level = LogLevel.Information, Message = "Room {Room} is full ({Count} members): join refused")]
        public static partial void RoomFull(ILogger logger, string room, int count);

        [LoggerMessage(EventId = 2004, Level = LogLevel.Information, Message = "Room {Room}: gateway {GatewayId} is not registered: request refused")]
        public static partial void GatewayNotRegistered(ILogger logger, string room, string gatewayId);

        [LoggerMessage(EventId = 2005, Level = LogLevel.Warning, Message = "Room {Room}: evicted {Count} members of gateway {GatewayId} ({Reason})")]
        public static partial void GatewayEvicted(ILogger logger, string room, string gatewayId, int count, RoomChangeReason reason);

        [LoggerMessage(EventId = 2006, Level = LogLevel.Information, Message = "Room {Room}: gateway {GatewayId} restored {Restored} members, {Rejected} rejected")]
        public static partial void MembersRestored(ILogger logger, string room, string gatewayId, int restored, int rejected);

        [LoggerMessage(EventId = 2007, Level = LogLevel.Debug, Message = "Room {Room} is empty and deactivates")]
        public static partial void RoomEmpty(ILogger logger, string room);

        [LoggerMessage(EventId = 2008, Level = LogLevel.Warning, Message = "Room {Room}: a push to a gateway failed")]
        public static partial void PushFailed(ILogger logger, string room, Exception exception);

        [LoggerMessage(EventId = 2010, Level = LogLevel.Information,
            Message = "Room {Room}: slot {Slot} of gateway {GatewayId} replaced by the same identity joining again")]
        public static partial void MemberReplaced(ILogger logger, string room, ushort slot, string gatewayId);

        [LoggerMessage(EventId = 2011, Level = LogLevel.Information,
            Message = "Room {Room}: an eviction of an earlier process of gateway {GatewayId} was ignored; its current process keeps its members")]
        public static partial void StaleEvictionIgnored(ILogger logger, string room, string gatewayId);

        [LoggerMessage(EventId = 2012, Level = LogLevel.Warning,
            Message = "Room {Room} could not run for {Stall} (its silo stalled): rekey deadlines are extended by that much")]
        public static partial void Stalled(ILogger logger, string room, TimeSpan stall);

        [LoggerMessage(EventId = 2013, Level = LogLevel.Information, Message = "Room {Room}: slot {Slot} muted: {Muted}")]
        public static partial void MuteChanged(ILogger logger, string room, ushort slot, bool muted);

        [LoggerMessage(EventId = 2014, Level = LogLevel.Information, Message = "Room {Room} closed by an operator: {Count} members removed")]
        public static partial void Closed(ILogger logger, string room, int count);

        [LoggerMessage(EventId = 2009, Level = LogLevel.Warning, Message = "Room {Room}: inviting gateways to restore failed")]
        public static partial void InviteFailed(ILogger logger, string room, Exception exception);
    }
}
