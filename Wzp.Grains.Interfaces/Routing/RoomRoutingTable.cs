using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Wzp.Grains.Routing;

/// <summary>
/// The gateway side of room membership: one <see cref="RoomRouting"/> per room with local members, kept current
/// from pushed <see cref="RoomEvent"/>s, with a snapshot fetched whenever an event is missing, so a dropped push
/// never leaves a stale table. When a room re-activated (new incarnation) the table first restores this
/// gateway's members into it, keeping their slots, then adopts the room's new state.
/// </summary>
/// <remarks>
/// Thread-safe. Work on one room is serialized by a per-room gate; <see cref="Changed"/> is raised under that
/// gate, so handlers see a room's changes in order and must be quick (swap a snapshot, queue work).
/// </remarks>
public sealed partial class RoomRoutingTable
{
    // Keeping a few retired incarnations lets late events from a dead activation be ignored instead of
    // mistaken for yet another re-activation.
    private const int RetiredIncarnationsKept = 4;

    private const int RefreshParallelism = 8;

    private readonly SemaphoreSlim _pollSlots = new(RefreshParallelism);

    private readonly TimeProvider _timeProvider = TimeProvider.System;

    private readonly IGrainFactory _grainFactory;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Entry> _rooms = new(StringComparer.Ordinal);

    private const int MaxRestoresPerJoin = 3;

    private static readonly TimeSpan RestoreRetryDelay = TimeSpan.FromMilliseconds(25);

    private static readonly TimeSpan MaxRestoreRetryDelay = TimeSpan.FromMilliseconds(250);

    /// <summary>Creates the table of gateway <paramref name="gatewayId"/>, process <paramref name="instanceId"/>
    /// (<see cref="GatewayRegistration.InstanceId"/>; a fresh one when not given).</summary>
    public RoomRoutingTable(IGrainFactory grainFactory, string gatewayId, ILogger<RoomRoutingTable>? logger = null, Guid instanceId = default)
    {
        ArgumentNullException.ThrowIfNull(grainFactory);
        if (!RoomLimits.IsValidGatewayId(gatewayId))
        {
            throw new ArgumentException("The gateway id must be 1 to 128 characters with no control characters.", nameof(gatewayId));
        }

        _grainFactory = grainFactory;
        GatewayId = gatewayId;
        InstanceId = instanceId == Guid.Empty ? Guid.NewGuid() : instanceId;
        _logger = logger ?? NullLogger<RoomRoutingTable>.Instance;
    }

    /// <summary>The gateway this table belongs to.</summary>
    public string GatewayId { get; }

    /// <summary>The gateway process this table belongs to: what its requests carry, so that a room tells this
    /// process's members from those of an earlier process with the same <see cref="GatewayId"/>.</summary>
    public Guid InstanceId { get; }

    /// <summary>Raised after a room's picture changed (under the room's gate: keep handlers short).</summary>
    public event Action<RoomRoutingChange>? Changed;

    /// <summary>Rooms currently tracked (those with members on this gateway).</summary>
    public IReadOnlyCollection<string> Rooms => [.. _rooms.Where(pair => pair.Value.Current is not null).Select(pair => pair.Key)];

    // A join that has not returned yet buffers at most this many pushes of its room; past that it fetches a snapshot.
    private const int MaxBufferedEvents = 64;

    /// <summary>The current picture of <paramref name="room"/>, or null when it is not tracked.</summary>
    public RoomRouting? Get(string room) => _rooms.TryGetValue(room, out var entry) ? entry.Current : null;

    /// <summary>The push target to hand a room that lost track of this gateway; set by the agent.</summary>
    public Func<IGatewayObserver?>? Observer { get; set; }

    /// <summary>Registers this gateway with the directory again; set by the agent.</summary>
    public Func<Task>? Reregister { get; set; }

    /// <summary>
    /// How long a join waits for a room that is being restored after a silo failure before it gives up with
    /// <see cref="JoinStatus.Restoring"/>. Defaults to 8 seconds, below a client's usual connect timeout.
    /// </summary>
    public TimeSpan JoinPatience { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>
    /// How long one stamp poll, or a snapshot or restore call made under a room's gate, may take before it is
    /// given up until the next poll (a room whose silo died answers only after the grain-call timeout, and the
    /// room's pushes wait behind the gate meanwhile). Defaults to 5 seconds.
    /// </summary>
    public TimeSpan PollTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Joins a member hosted by this gateway and starts tracking the room.</summary>
    /// <param name="room">The room.</param>
    /// <param name="fingerprint">The member's identity.</param>
    /// <param name="alias">The member's display name.</param>
    /// <param name="listener">The member's grant lacks <c>publish</c> (the member list marks it).</param>
    /// <param name="grantExpires">The last moment the member's grant is accepted; null without grants.</param>
    public async Task<JoinResult> JoinAsync(string room, Fingerprint fingerprint, string alias, bool listener = false, DateTimeOffset? grantExpires = null)
    {
        // The room pushes its next change the moment the join is in: the entry exists before the call, so such a
        // push is buffered instead of dropped (it would otherwise wait for the next poll, past the rekey deadline).
        var entry = await BeginJoinAsync(room).ConfigureAwait(false);
        var joinedRoom = false;
        try
        {
            var result = await JoinTrackedAsync(room, entry, new JoinRequest(fingerprint, alias, GatewayId, Listener: listener, GrantExpires: grantExpires)).ConfigureAwait(false);
            joinedRoom = result.Status == JoinStatus.Joined;
            return result;
        }
        finally
        {
            await EndJoinAsync(room, entry, joinedRoom).ConfigureAwait(false);
        }
    }

    private async Task<Entry> BeginJoinAsync(string room)
    {
        while (true)
        {
            var entry = _rooms.GetOrAdd(room, static _ => new Entry());
            await entry.Gate.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!entry.Removed)
                {
                    entry.Joining++;
                    return entry;
                }
            }
            finally
            {
                entry.Gate.Release();
            }
        }
    }

    private async Task EndJoinAsync(string room, Entry entry, bool joinedRoom)
    {
        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            entry.Joining--;
            if (entry.Current is not null && (!joinedRoom || entry.Buffered.Count > 0 || entry.BufferOverflowed))
            {
                // A join whose call failed may still have joined the room (a ghost); pushes that came meanwhile
                // may be ahead of the join's snapshot. Either way the room's own picture settles it.
                entry.Buffered.Clear();
                entry.BufferOverflowed = false;
                var snapshot = await Room(room).GetSnapshot().WaitAsync(PollTimeout).ConfigureAwait(false);
                await ReconcileAsync(entry, room, snapshot).ConfigureAwait(false);
            }
            else if (entry.Current is null && entry.Joining == 0 && !entry.Removed)
            {
                entry.Buffered.Clear();
                entry.BufferOverflowed = false;
                entry.Removed = true;
                _rooms.TryRemove(KeyValuePair.Create(room, entry));
            }
        }
        catch (Exception exception)
        {
            // The next poll resynchronizes the room.
            Log.RefreshFailed(_logger, room, exception);
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    private async Task<JoinResult> JoinTrackedAsync(string room, Entry tracked, JoinRequest request)
    {
        var started = Stopwatch.GetTimestamp();
        var delay = RestoreRetryDelay;
        var reregistered = false;
        var restores = 0;
        JoinResult result;
        while (true)
        {
            // The incarnation this gateway's members of the room belong to: a room that re-activated since
            // refuses newcomers from here until those members are restored (they keep their slots).
            var known = tracked.Current is { } current ? current.Incarnation : Guid.Empty;
            result = await Room(room).Join(request with { KnownIncarnation = known, GatewayInstance = InstanceId, Observer = Observer?.Invoke() }).ConfigureAwait(false);
            if (result.Status == JoinStatus.RestoreFirst && restores++ < MaxRestoresPerJoin)
            {
                // Restores this gateway's members into the room that re-activated, then the join is retried.
                await ResynchronizeAsync(room, tracked, static (_, _) => true).ConfigureAwait(false);
            }
            else if (result.Status == JoinStatus.Restoring && Stopwatch.GetElapsedTime(started) < JoinPatience)
            {
                // A room that just (re-)activated holds joins back until the gateways restored their members.
                await Task.Delay(delay).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRestoreRetryDelay.Ticks));
            }
            else if (result.Status == JoinStatus.GatewayNotRegistered && !reregistered && Reregister is { } reregister)
            {
                // A directory that re-activated after its silo died has forgotten this gateway until it registers again.
                reregistered = true;
                await reregister().ConfigureAwait(false);
            }
            else
            {
                break;
            }
        }

        if (result.Status != JoinStatus.Joined || result.Snapshot is not { } snapshot)
        {
            return result;
        }

        var member = snapshot.Members.FirstOrDefault(m => m.Slot == result.Slot)
            ?? new RoomMember(result.Slot, request.Fingerprint, request.Alias, GatewayId, Listener: request.Listener, GrantExpires: request.GrantExpires);
        await tracked.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            // The entry cannot have been removed: it counts this join.
            tracked.Local[member.Slot] = member;
            var before = tracked.Current;
            // A member of this gateway that the join's snapshot no longer lists was, most likely, replaced by this
            // join (one identity, one member): say so to the handlers.
            await ReconcileAsync(tracked, room, snapshot, RoomChangeReason.Joined).ConfigureAwait(false);
            if (!tracked.Removed && ReferenceEquals(before, tracked.Current) && before is not null)
            {
                // The table was already past the join's snapshot: keep the member only if it is still there.
                Publish(tracked, room, before);
            }

            // Pushes that arrived while the call was out, in order; one that does not follow needs a snapshot.
            foreach (var buffered in tracked.Buffered.OrderBy(e => e.Version).ToList())
            {
                if (tracked.Removed || tracked.Current is not { } current)
                {
                    break;
                }

                if (buffered.Incarnation == current.Incarnation && buffered.Version == current.Version + 1)
                {
                    Publish(tracked, room, tracked.RoomPicture!.Apply(buffered), buffered.Reason);
                }
                else if (buffered.Incarnation != current.Incarnation || buffered.Version > current.Version)
                {
                    tracked.BufferOverflowed = true; // EndJoinAsync fetches the snapshot
                }
            }

            tracked.Buffered.Clear();
        }
        finally
        {
            tracked.Gate.Release();
        }

        return result;
    }

    /// <summary>
    /// Removes a member hosted by this gateway. It stops counting as local at once, so that a restore racing
    /// with the leave can never bring it back; the room's push then updates the other members' view.
    /// </summary>
    public async Task<bool> LeaveAsync(string room, ushort slot)
    {
        if (_rooms.TryGetValue(room, out var entry))
        {
            await entry.Gate.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!entry.Removed && entry.Local.Remove(slot) && entry.Current is { } current)
                {
                    // This leave asks the room itself: the slot is no ghost while the room still lists it.
                    entry.GhostsLeft.Add((current.Incarnation, slot));
                    if (entry.Local.Count == 0)
                    {
                        Publish(entry, room, entry.RoomPicture!);
                    }
                }
            }
            finally
            {
                entry.Gate.Release();
            }
        }

        return await Room(room).Leave(new LeaveRequest(slot, GatewayId, InstanceId)).ConfigureAwait(false);
    }

    /// <summary>Asks the room to remove <paramref name="slot"/> for this gateway's member <paramref name="bySlot"/>, an admin.</summary>
    public Task<bool> KickAsync(string room, ushort bySlot, ushort slot) =>
        Room(room).Kick(new KickRequest(slot, bySlot, GatewayId, InstanceId));

    /// <summary>Asks the room to mute or unmute <paramref name="slot"/> for this gateway's member <paramref name="bySlot"/>, an admin.</summary>
    public Task<bool> MuteAsync(string room, ushort bySlot, ushort slot, bool muted) =>
        Room(room).Mute(new MuteRequest(slot, bySlot, muted, GatewayId, InstanceId));

    /// <summary>Tells the room that every member of this gateway finished the rekey to <paramref name="epoch"/>.</summary>
    public Task ReportRekeyCompleteAsync(string room, long epoch) =>
        Room(room).ReportRekeyComplete(new RekeyReport(GatewayId, epoch, InstanceId, Get(room)?.Incarnation ?? Guid.Empty));

    /// <summary>Applies a pushed event: in order it is applied, after a gap a snapshot is fetched.</summary>
    public async Task ApplyAsync(RoomEvent roomEvent)
    {
        ArgumentNullException.ThrowIfNull(roomEvent);
        if (!_rooms.TryGetValue(roomEvent.Room, out var entry))
        {
            return;
        }

        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!entry.Removed && entry.Current is null && entry.Joining > 0)
            {
                // The first join of the room on this gateway has not returned yet.
                if (entry.Buffered.Count < MaxBufferedEvents) entry.Buffered.Add(roomEvent);
                else entry.BufferOverflowed = true;
                return;
            }

            if (entry.Removed || entry.Current is not { } current || entry.Retired.Contains(roomEvent.Incarnation))
            {
                return;
            }

            if (roomEvent.Incarnation == current.Incarnation && roomEvent.Version <= current.Version)
            {
                return;
            }

            if (roomEvent.Incarnation == current.Incarnation && roomEvent.Version == current.Version + 1)
            {
                Publish(entry, roomEvent.Room, entry.RoomPicture!.Apply(roomEvent), roomEvent.Reason);
                return;
            }

            Log.GapDetected(_logger, roomEvent.Room, current.Version, roomEvent.Version);
            var snapshot = await Room(roomEvent.Room).GetSnapshot().WaitAsync(PollTimeout).ConfigureAwait(false);
            await ReconcileAsync(entry, roomEvent.Room, snapshot).ConfigureAwait(false);
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    /// <summary>A room re-activated and invites this gateway to restore its members there.</summary>
    public async Task RestoreAsync(RestoreInvitation invitation)
    {
        ArgumentNullException.ThrowIfNull(invitation);
        if (!_rooms.TryGetValue(invitation.Room, out var entry) || entry.Current is null)
        {
            // Nothing to restore; answering lets the room admit joins without waiting out its restore window.
            await Room(invitation.Room).RestoreMembers(new RestoreRequest(GatewayId, [], 0, 0, GatewayInstance: InstanceId)).ConfigureAwait(false);
            return;
        }

        await ResynchronizeAsync(
            invitation.Room,
            entry,
            (current, retired) => invitation.Incarnation != current.Incarnation && !retired.Contains(invitation.Incarnation)).ConfigureAwait(false);
    }

    /// <summary>
    /// Polls the stamp of every tracked room and resynchronizes those that moved on without telling (lost
    /// pushes) or re-activated. Polling is also what re-activates a room whose silo died when nothing else calls it.
    /// </summary>
    /// <remarks>
    /// Polls run a few at a time, and not in rounds: a room whose poll from an earlier call is still waiting (its
    /// silo is dying) is skipped, so one slow room delays only itself and never the next round of the others.
    /// The returned task ends when the polls this call started have.
    /// </remarks>
    public Task RefreshAsync(CancellationToken cancellationToken = default) =>
        Task.WhenAll(_rooms.ToArray()
            .Where(pair => Interlocked.CompareExchange(ref pair.Value.Polling, 1, 0) == 0)
            .Select(pair => RefreshRoomAsync(pair.Key, pair.Value, cancellationToken)));

    private async Task RefreshRoomAsync(string room, Entry entry, CancellationToken cancellationToken)
    {
        try
        {
            await _pollSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Volatile.Write(ref entry.Polling, 0);
            return;
        }

        try
        {
            // Polled without the room's gate: a room whose silo just died answers only after the grain-call
            // timeout, and pushes of the room's successor (a rekey that must be reported in time) must not wait
            // behind the poll.
            if (entry.Removed || entry.Current is not { } seen)
            {
                return;
            }

            await DropExpiredCarryAsync(room, entry).ConfigureAwait(false);

            var stamp = await Room(room).GetStamp().WaitAsync(PollTimeout, cancellationToken).ConfigureAwait(false);
            if (stamp.Incarnation == seen.Incarnation && stamp.Version <= seen.Version)
            {
                return;
            }

            await ResynchronizeAsync(
                room,
                entry,
                (current, retired) => stamp.Incarnation == current.Incarnation ? stamp.Version > current.Version : !retired.Contains(stamp.Incarnation),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // One unreachable room (its silo is being declared dead) must not stop the others.
            Log.RefreshFailed(_logger, room, exception);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
        finally
        {
            _pollSlots.Release();
            Volatile.Write(ref entry.Polling, 0);
        }
    }

    // Under the entry's gate: when `stale` says the tracked picture is behind the room (given the picture and the
    // retired incarnations), fetches a snapshot and reconciles, restoring this gateway's members into a room that
    // re-activated.
    private async Task ResynchronizeAsync(
        string room, Entry entry, Func<RoomRouting, HashSet<Guid>, bool> stale, CancellationToken cancellationToken = default)
    {
        await entry.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!entry.Removed && entry.Current is { } current && stale(current, entry.Retired))
            {
                var snapshot = await Room(room).GetSnapshot().WaitAsync(PollTimeout).ConfigureAwait(false);
                await ReconcileAsync(entry, room, snapshot).ConfigureAwait(false);
            }
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    private IRoomGrain Room(string room) => _grainFactory.GetGrain<IRoomGrain>(room);

    // Runs under the entry's gate. Brings the entry to `fresh`, restoring this gateway's members first when
    // `fresh` comes from a newer activation that lost them.
    private async Task ReconcileAsync(Entry entry, string room, RoomSnapshot fresh, RoomChangeReason? reason = null)
    {
        var current = entry.Current;
        if (current is null)
        {
            Publish(entry, room, RoomRouting.FromSnapshot(fresh), reason);
            return;
        }

        if (fresh.Incarnation == current.Incarnation)
        {
            if (fresh.Version > current.Version)
            {
                Publish(entry, room, RoomRouting.FromSnapshot(fresh), reason);
            }

            return;
        }

        if (entry.Retired.Contains(fresh.Incarnation))
        {
            return;
        }

        // The members this gateway serves, not the (possibly stale) view of them: a member that left while the
        // room was away must not come back.
        var local = entry.Local.Values.OrderBy(member => member.Slot).ToImmutableArray();
        var adopted = fresh;
        if (!local.IsEmpty)
        {
            var result = await Room(room)
                .RestoreMembers(new RestoreRequest(GatewayId, local, current.Version, current.Epoch, Observer?.Invoke(), InstanceId))
                .WaitAsync(PollTimeout)
                .ConfigureAwait(false);
            Log.Restored(_logger, room, local.Length, result.Rejected.Length);
            adopted = result.Snapshot;
        }

        // The other gateways' members are restored by those gateways, a moment later each (an invitation, or their
        // next poll). Until then the re-activated room does not list them; carried over here meanwhile, they are
        // not announced as leaving and joining again, and media to and from them keeps flowing.
        entry.Carried.Clear();
        foreach (var member in current.Members.Where(member => member.GatewayId != GatewayId))
        {
            entry.Carried[member.Slot] = member;
        }

        entry.CarriedUntil = _timeProvider.GetTimestamp() + (long)(CarryWindow.TotalSeconds * _timeProvider.TimestampFrequency);
        entry.Retire(current.Incarnation);
        Publish(entry, room, RoomRouting.FromSnapshot(adopted));
    }

    // Runs under the entry's gate. Installs `next` (the room's own picture) with the members still carried over a
    // re-activation, drops local members the room no longer has (evicted, or refused by a restore), and stops
    // tracking the room when no local member is left.
    private void Publish(Entry entry, string room, RoomRouting next, RoomChangeReason? reason = null)
    {
        var previous = entry.Current;
        entry.RoomPicture = next;
        var published = WithCarried(entry, next);
        foreach (var slot in entry.Local.Keys.ToList())
        {
            if (!next.BySlot.TryGetValue(slot, out var member) || !member.IsSameMemberAs(entry.Local[slot]))
            {
                entry.Local.Remove(slot);
            }
            else
            {
                // The room's record: a flag it changed (muted) goes back to it with a restore.
                entry.Local[slot] = member;
            }
        }

        if (entry.Joining == 0)
        {
            // The room lists a member of this gateway that no connection here holds: a join whose call failed
            // after the room admitted it, or a leave that did not arrive. It must not stay in the room.
            foreach (var ghost in next.MembersOf(GatewayId))
            {
                if (!entry.Local.ContainsKey(ghost.Slot) && entry.GhostsLeft.Add((next.Incarnation, ghost.Slot)))
                {
                    Log.GhostRemoved(_logger, room, ghost.Slot);
                    _ = LeaveGhostAsync(room, ghost.Slot);
                }
            }
        }

        entry.Current = entry.Local.Count > 0 ? published : null;
        if (entry.Current is null && entry.Joining == 0)
        {
            // A later join starts a new entry.
            entry.Removed = true;
            _rooms.TryRemove(KeyValuePair.Create(room, entry));
        }

        if (ReferenceEquals(previous, entry.Current))
        {
            return;
        }

        try
        {
            Changed?.Invoke(new RoomRoutingChange(room, previous, entry.Current, reason));
        }
        catch (Exception exception)
        {
            Log.HandlerFailed(_logger, room, exception);
        }
    }

    // A carried member stops being carried once the room lists its slot (restored, or given to someone else) or its
    // identity (it joined again), and all of them when the window ends: their gateways had time to restore them.
    private RoomRouting WithCarried(Entry entry, RoomRouting roomPicture)
    {
        if (entry.Carried.Count == 0)
        {
            return roomPicture;
        }

        if (_timeProvider.GetTimestamp() >= entry.CarriedUntil)
        {
            entry.Carried.Clear();
            return roomPicture;
        }

        var identities = roomPicture.Members.Select(member => member.Fingerprint).ToHashSet();
        foreach (var (slot, member) in entry.Carried.ToList())
        {
            if (roomPicture.BySlot.ContainsKey(slot) || identities.Contains(member.Fingerprint))
            {
                entry.Carried.Remove(slot);
            }
        }

        return entry.Carried.Count == 0 ? roomPicture : roomPicture.With(entry.Carried.Values);
    }

    /// <summary>
    /// How long members of other gateways are carried over a room's re-activation while their gateways restore
    /// them (see <see cref="ReconcileAsync"/>). Defaults to 10 seconds; the agent sets two heartbeats plus the
    /// room's restore window.
    /// </summary>
    public TimeSpan CarryWindow { get; set; } = TimeSpan.FromSeconds(10);

    // Ends a carry whose window passed with nothing else changing the room.
    private async Task DropExpiredCarryAsync(string room, Entry entry)
    {
        if (entry.Carried.Count == 0 || _timeProvider.GetTimestamp() < entry.CarriedUntil)
        {
            return;
        }

        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!entry.Removed && entry.Carried.Count > 0 && entry.RoomPicture is { } picture)
            {
                Publish(entry, room, picture);
            }
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    private async Task LeaveGhostAsync(string room, ushort slot)
    {
        try
        {
            await Room(room).Leave(new LeaveRequest(slot, GatewayId, InstanceId)).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            Log.RefreshFailed(_logger, room, exception);
        }
    }

    private sealed class Entry
    {
        private readonly Queue<Guid> _retiredOrder = new();

        // Joins of this room in flight on this gateway: while any is, the entry stays even with no member.
        public int Joining { get; set; }

        // 1 while a stamp poll of the room is in flight (a field, for Interlocked).
        public int Polling;

        // Pushes received while the room's first join here was in flight (no picture yet).
        public List<RoomEvent> Buffered { get; } = [];

        public bool BufferOverflowed { get; set; }

        // Ghost slots already asked to leave, so one ghost costs one call.
        public HashSet<(Guid Incarnation, ushort Slot)> GhostsLeft { get; } = [];

        public SemaphoreSlim Gate { get; } = new(1, 1);

        // What this gateway routes by: the room's own picture plus any members carried over a re-activation.
        public RoomRouting? Current { get; set; }

        // The room's own picture, which pushed events apply to.
        public RoomRouting? RoomPicture { get; set; }

        // Members of other gateways carried over a re-activation until the room lists them again (see Publish).
        public Dictionary<ushort, RoomMember> Carried { get; } = [];

        public long CarriedUntil { get; set; }

        public bool Removed { get; set; }

        // This gateway's own members of the room: what it restores after a re-activation.
        public Dictionary<ushort, RoomMember> Local { get; } = [];

        public HashSet<Guid> Retired { get; } = [];

        public void Retire(Guid incarnation)
        {
            if (!Retired.Add(incarnation))
            {
                return;
            }

            _retiredOrder.Enqueue(incarnation);
            if (_retiredOrder.Count > RetiredIncarnationsKept)
            {
                Retired.Remove(_retiredOrder.Dequeue());
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1100, Level = LogLevel.Debug, Message = "Room {Room}: gap after version {Known}, got {Received}; fetching a snapshot")]
        public static partial void GapDetected(ILogger logger, string room, long known, long received);

        [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Room {Room} re-activated: restored {Count} local members, {Rejected} rejected")]
        public static partial void Restored(ILogger logger, string room, int count, int rejected);

        [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Room {Room}: polling its stamp failed")]
        public static partial void RefreshFailed(ILogger logger, string room, Exception exception);

        [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "Room {Room}: slot {Slot} is listed on this gateway without a connection here; it leaves")]
        public static partial void GhostRemoved(ILogger logger, string room, ushort slot);

        [LoggerMessage(EventId = 1103, Level = LogLevel.Error, Message = "Room {Room}: a routing change handler threw")]
        public static partial void HandlerFailed(ILogger logger, string room, Exception exception);
    }
}
