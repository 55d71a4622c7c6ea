using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Wzp.Grains;
using Wzp.Grains.Routing;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Gateway;

/// <summary>
/// One gateway: the QUIC listener for clients, the UDP socket for links, its registration with the cluster,
/// and the loops that keep rekeys, room updates and links in step with the rooms.
/// </summary>
public sealed partial class GatewayServer : IAsyncDisposable
{
    private static readonly TimeSpan TickPeriod = TimeSpan.FromMilliseconds(100);

    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<(string Room, long Epoch), RekeyWait> _rekeyWaits = new();
    private readonly ConcurrentDictionary<Task, byte> _clients = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Socket _linkSocket;
    private readonly Forwarder _forwarder;
    private readonly QuicDatagramHandler _dropUnknown;
    private readonly QuicDatagramHandler _dropListenOnly;
    private QuicListener? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private Task _tickLoop = Task.CompletedTask;
    private volatile bool _crashed;

    public GatewayServer(GatewayOptions options, GatewayKeys keys, IGrainFactory grainFactory, IOptions<ControlPlaneOptions> controlPlane,
        ILoggerFactory? loggerFactory = null, TimeProvider? time = null)
    {
        Options = options;
        Keys = keys;
        Time = time ?? TimeProvider.System;
        _grantKeysStamp = options.Grants.Required ? options.Grants.KeyFilesStamp() : "";
        Grants = options.Grants.CreateValidator(Time); // first: it may refuse to start, before anything needs disposing
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<GatewayServer>();
        Counters = new GatewayCounters(options.GatewayId);
        Histograms = new GatewayHistograms(options.GatewayId, Time);
        Admissions = new Admissions(options.MaxPendingHandshakes, options.MaxPendingHandshakesPerAddress);
        Tokens = options.Token.Length == 0 ? null : new TokenGuard(options.Token, options.MaxTokenFailuresPerAddress, options.TokenFailureWindow, Time, Counters);
        HandshakeOptions = NewHandshakeOptions(Grants);
        var linkBind = IPEndPoint.Parse(options.LinkListenAddress);
        _linkSocket = new Socket(linkBind.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _linkSocket.Bind(linkBind);
        LinkEndPoint = (IPEndPoint)_linkSocket.LocalEndPoint!;
        var advertised = options.LinkAdvertiseAddress.Length > 0 ? options.LinkAdvertiseAddress : LinkEndPoint.ToString();
        Agent = new GatewayAgent(grainFactory, new GatewayIdentity(options.GatewayId, advertised, [.. System.Text.Encoding.UTF8.GetBytes(keys.Credential.ToJson())],
                keys.Credential.ClusterFingerprint.ToString()),
            controlPlane, _loggerFactory, Time);
        Agent.LoadProvider = () => (int)Counters.Sessions;
        _forwarder = new Forwarder(Counters, Histograms, _linkSocket, Time);
        Links = new LinkManager(this, _linkSocket, _forwarder, grainFactory, _loggerFactory.CreateLogger<LinkManager>());
        _dropUnknown = (_, _) => Counters.Drop(GatewayDrop.UnknownSession);
        _dropListenOnly = (_, _) => Counters.Drop(GatewayDrop.ListenOnly);
        Agent.Rooms.Changed += OnRoomChanged;
        Agent.LinkMessageReceived += Links.OnLinkMessage;
    }

    public GatewayOptions Options { get; }

    public GatewayKeys Keys { get; }

    /// <summary>The access token check and its per-address limit; null when no token is required.</summary>
    internal TokenGuard? Tokens { get; }

    /// <summary>Clients between connection and joining, bounded (<see cref="GatewayOptions.MaxPendingHandshakes"/>).</summary>
    internal Admissions Admissions { get; }

    public TimeProvider Time { get; }

    public GatewayCounters Counters { get; }

    /// <summary>Handshake duration and forwarding latency (meter <c>Wzp.Gateway</c>).</summary>
    public GatewayHistograms Histograms { get; }

    public GatewayAgent Agent { get; }

    /// <summary>Where clients connect (the bound QUIC address, with the real port when 0 was configured).</summary>
    public IPEndPoint ClientEndPoint => _listener?.LocalEndPoint ?? throw new InvalidOperationException("The gateway is not started.");

    /// <summary>Where other gateways send link datagrams.</summary>
    public IPEndPoint LinkEndPoint { get; }

    private volatile GatewayHandshakeOptions _handshakeOptions = null!;
    private volatile Protocol.Grants.GrantValidator? _grants;

    /// <summary>What each new handshake checks; replaced (never changed) when the grant keys are reloaded.</summary>
    internal GatewayHandshakeOptions HandshakeOptions
    {
        get => _handshakeOptions;
        private set => _handshakeOptions = value;
    }

    /// <summary>The grant checker when <c>Gateway:Grants:Required</c>; null otherwise. Replaced when its key files change.</summary>
    internal Protocol.Grants.GrantValidator? Grants
    {
        get => _grants;
        private set => _grants = value;
    }

    private GatewayHandshakeOptions NewHandshakeOptions(Protocol.Grants.GrantValidator? grants) => new()
    {
        TokenValidator = Tokens is null ? null : Tokens.Matches,
        Grants = grants,
        GrantChecked = OnGrantChecked,
    };

    // The key id and subject identify a grant for an operator; its claims (room, name, times) stay out of logs.
    private void OnGrantChecked(Protocol.Fingerprint identity, Protocol.Grants.GrantCheck check)
    {
        if (check.Succeeded) Log.GrantAccepted(_logger, check.KeyId!, identity.ToString());
        else Log.GrantRefused(_logger, check.KeyId ?? "(none)", identity.ToString(), check.Reason);
    }

    internal LinkManager Links { get; }

    internal QuicDatagramHandler DropUnknownDatagram => _dropUnknown;

    internal ILogger ClientLogger => _logger;

    /// <summary>True once a link to gateway <paramref name="peerId"/> is established.</summary>
    public bool HasLinkTo(string peerId) => Links.Get(peerId) is not null;

    /// <summary>Members on this gateway, by room, as the forwarding path sees them.</summary>
    public IReadOnlyDictionary<string, int> LocalMembers => _forwarder.Rooms.ToDictionary(r => r.Room, r => r.Current.Locals.Length);

    /// <summary>The members of <paramref name="room"/> connected here; for tests that act on one.</summary>
    internal ImmutableArray<LocalMember> MembersOf(string room) => _forwarder.Find(room)?.Current.Locals ?? [];

    /// <summary>Registers with the cluster, then opens the QUIC listener and starts the loops.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await Agent.StartAsync(cancellationToken).ConfigureAwait(false);
        // The TLS certificate only encrypts the QUIC channel; the gateway is authenticated by its credential (§5).
        QuicCertificate.EnsureSelfSigned(Options.CertificateFile, Options.CertificateKeyFile);
        _listener = QuicListener.Start(new QuicListenerOptions
        {
            EndPoint = IPEndPoint.Parse(Options.ListenAddress),
            CertificatePath = Options.CertificateFile,
            PrivateKeyPath = Options.CertificateKeyFile,
            GenerateSelfSignedCertificate = false,
            MaxConnections = Options.MaxConnections,
            MaxConnectionsPerAddress = Options.MaxConnectionsPerAddress,
            // Kept across restarts so a restarted gateway resets its former clients at once (they reconnect).
            StatelessResetKey = LoadResetKey(),
        });
        _acceptLoop = AcceptLoopAsync(_stopping.Token);
        _tickLoop = TickLoopAsync(_stopping.Token);
        Links.Start(_stopping.Token);
        Log.Started(_logger, Options.GatewayId, ClientEndPoint, LinkEndPoint, Keys.ClusterFingerprint.ToString());
        if (Grants is not null) Log.GrantsRequired(_logger, string.Join(", ", Grants.KeyIds.Order(StringComparer.Ordinal)));
    }

    private byte[] LoadResetKey()
    {
        var key = SeedFile.LoadOrCreateSecret(Options.ResolvedStatelessResetKeyFile, out _);
        GatewayKeys.WarnIfExposed(_logger, Options.ResolvedStatelessResetKeyFile);
        return key;
    }

    /// <summary>
    /// Stops as a crash would look to everyone else: clients and links go silent, nothing is unregistered and no
    /// room is left, so the cluster notices only through the directory's expiry. For failure tests.
    /// </summary>
    internal async Task CrashAsync()
    {
        _crashed = true;
        await Agent.AbandonAsync().ConfigureAwait(false);
        Agent.Rooms.Changed -= OnRoomChanged;
        _stopping.Cancel();
        if (_listener is not null) await _listener.DisposeAsync().ConfigureAwait(false);
        _linkSocket.Dispose();
    }

    /// <summary>Closes every client (they leave their rooms), unregisters, and stops.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping.IsCancellationRequested) return;
        _stopping.Cancel();
        if (_listener is not null) await _listener.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(_clients.Keys).WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Task.WhenAll(_acceptLoop, _tickLoop, Links.StopAsync()).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Agent.StopAsync(cancellationToken).ConfigureAwait(false);
        _linkSocket.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            QuicConnection connection;
            try
            {
                connection = await _listener!.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or System.Threading.Channels.ChannelClosedException)
            {
                return;
            }
            var client = new ClientConnection(this, connection, _logger).RunAsync(stopping);
            _clients.TryAdd(client, 0);
            _ = client.ContinueWith(t => _clients.TryRemove(t, out _), TaskScheduler.Default);
        }
    }

    internal void AddMember(LocalMember member)
    {
        var fanout = _forwarder.AddLocal(member);
        if (member.Session.SendsMedia)
        {
            // A muted member's uplink stops here, before it is opened; unmuted, it flows again with no new handler.
            void Uplink(ReadOnlySpan<byte> datagram)
            {
                if (member.Muted) Counters.Drop(GatewayDrop.Muted);
                else _forwarder.OnUplink(member, datagram, fanout);
            }
            member.Connection.SetDatagramHandler((_, datagram) => Uplink(datagram));
            // A client may send media the moment it reads 'joined', before the handler above was set.
            DrainQueued(member.Connection, Uplink);
        }
        else
        {
            // A listener (grant without 'publish'): its uplink never reaches the forwarder, so no one hears it.
            member.Connection.SetDatagramHandler(_dropListenOnly);
            DrainQueued(member.Connection, _ => Counters.Drop(GatewayDrop.ListenOnly));
        }
        Counters.OnSession(1);
        RefreshLinks(member.Room);
    }

    /// <summary>Feeds datagrams queued on the connection (none once a handler is set) to <paramref name="handle"/>.</summary>
    internal static void DrainQueued(QuicConnection connection, SpanAction handle)
    {
        while (connection.Datagrams.TryRead(out var datagram))
        {
            using (datagram) handle(datagram.Span);
        }
    }

    internal delegate void SpanAction(ReadOnlySpan<byte> datagram);

    internal async Task LeaveAsync(LocalMember member)
    {
        _forwarder.RemoveLocal(member);
        Counters.OnSession(-1);
        if (_crashed) return;
        try
        {
            await Agent.Rooms.LeaveAsync(member.Room, member.Slot).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The room evicts members of a gateway that stops reporting, so a lost leave heals itself.
            Log.LeaveFailed(_logger, member.Room, member.Slot, e);
        }
    }

    /// <summary>
    /// An admin's <c>kick</c>: the room removes the member wherever it is connected, and its gateway evicts it with
    /// <c>kicked</c>. A kick without an admin grant closes the sender (a client that offers it only to admins
    /// never sends one); a kick of a slot that is gone already (it left meanwhile) is ignored. The grain call runs
    /// off the admin's control loop, so a slow silo never holds up the admin's rekeys.
    /// </summary>
    internal Error? Kick(LocalMember admin, Kick kick)
    {
        if (!admin.Session.IsAdmin) return new Error(ErrorCodes.Unauthorized, "'kick' needs a grant with 'admin'");
        if (kick.Slot is < 1 or > ushort.MaxValue || kick.Slot == admin.Slot) return new Error(ErrorCodes.BadRequest, "'kick' needs the slot of another member");
        _ = KickCoreAsync(admin, (ushort)kick.Slot);
        return null;
    }

    /// <summary>
    /// An admin's <c>mute</c> or <c>unmute</c>: the room records it and every gateway learns it with the room's next
    /// change; the muted member's own gateway then drops its uplink. Checked and refused as <see cref="Kick"/>, except
    /// that an admin may mute itself.
    /// </summary>
    internal Error? Mute(LocalMember admin, int slot, bool muted)
    {
        var type = muted ? "mute" : "unmute";
        if (!admin.Session.IsAdmin) return new Error(ErrorCodes.Unauthorized, $"'{type}' needs a grant with 'admin'");
        if (slot is < 1 or > ushort.MaxValue) return new Error(ErrorCodes.BadRequest, $"'{type}' needs the slot of a member");
        _ = MuteCoreAsync(admin, (ushort)slot, muted);
        return null;
    }

    private async Task MuteCoreAsync(LocalMember admin, ushort slot, bool muted)
    {
        try
        {
            var changed = await Agent.Rooms.MuteAsync(admin.Room, admin.Slot, slot, muted).ConfigureAwait(false);
            Log.Muted(_logger, admin.Room, slot, admin.Slot, muted, changed);
        }
        catch (Exception e)
        {
            Log.MuteFailed(_logger, admin.Room, slot, e);
        }
    }

    private async Task KickCoreAsync(LocalMember admin, ushort slot)
    {
        try
        {
            var removed = await Agent.Rooms.KickAsync(admin.Room, admin.Slot, slot).ConfigureAwait(false);
            Log.Kicked(_logger, admin.Room, slot, admin.Slot, removed);
        }
        catch (Exception e)
        {
            Log.KickFailed(_logger, admin.Room, slot, e);
        }
    }

    /// <summary>A room changed: tell local members, rekey them on an epoch advance, and follow its gateways with links.</summary>
    private void OnRoomChanged(RoomRoutingChange change)
    {
        // Pairs with the join (ClientConnection): it adds the member to the fanout, then reads the routing table;
        // this publishes the table, then reads the fanout. Without a full fence between each store and the load
        // after it, both may read the old value (store-load reordering), and the member misses this change for good.
        Interlocked.MemoryBarrier();
        // No fanout yet: the room's first member here is still joining (AddMember follows). Its change must still
        // be acknowledged below, or the room evicts this gateway at the rekey deadline.
        var locals = _forwarder.Find(change.Room)?.Current.Locals ?? [];
        var previous = change.Previous;
        var current = change.Current;
        if (current is null)
        {
            // No member of this gateway is left in the room: whoever is still connected was removed by it.
            foreach (var member in locals)
            {
                lock (member.Gate) Evict(member, change.Reason);
            }
            return;
        }

        var before = previous?.BySlot ?? ImmutableDictionary<ushort, RoomMember>.Empty;
        // A member whose flags changed (muted) is listed again under 'joined' with the new flags: an update, not a
        // departure. Another member in a slot (the room reused it between two snapshots) left, and the new one joined.
        var joined = current.Members.Where(m => !before.TryGetValue(m.Slot, out var old) || old != m).ToList();
        var left = before.Keys.Where(slot => !current.BySlot.TryGetValue(slot, out var now) || !now.IsSameMemberAs(before[slot])).Select(s => (int)s).ToList();
        foreach (var member in locals)
        {
            lock (member.Gate)
            {
                if (!member.Ready) continue; // its 'joined' is being built from the table that includes this change
                if (!current.BySlot.TryGetValue(member.Slot, out var self) || self.GatewayId != Options.GatewayId)
                {
                    Evict(member, change.Reason);
                    continue;
                }
                member.Muted = self.Muted;
                // Its own entry only as an update (it learnt its joining from 'joined'), so it sees itself muted.
                var news = joined.Where(m => m.Slot != member.Slot || m.IsSameMemberAs(before.GetValueOrDefault(m.Slot)))
                    .Select(ClientConnection.ToInfo).ToList();
                var gone = left.Where(s => s != member.Slot).ToList();
                if ((news.Count > 0 || gone.Count > 0) && !member.Control.TrySend(new RoomUpdate(news, gone)))
                    _ = member.Connection.CloseAsync(ClientConnection.CloseProtocolError, "control stream stalled");
            }
        }

        if (previous is null || current.Epoch > previous.Epoch || current.Incarnation != previous.Incarnation)
            ScheduleRekeys(change.Room, current.Epoch, locals);
        RefreshLinks(change.Room);
    }

    /// <summary>
    /// The room no longer lists <paramref name="member"/>: it stops sending and receiving at once, and its client is
    /// told why before the connection closes (the connection's end then runs the usual leave, which the room ignores).
    /// Under the member's gate.
    /// </summary>
    private void Evict(LocalMember member, RoomChangeReason? reason)
    {
        if (member.Evicted) return;
        member.Evicted = true;
        member.Connection.SetDatagramHandler(_dropUnknown);
        _forwarder.RemoveLocal(member);
        Counters.OnEviction();
        var why = reason switch
        {
            RoomChangeReason.RekeyTimeout => "its gateway did not finish a rekey in time",
            RoomChangeReason.GatewayGone => "the cluster declared its gateway gone",
            RoomChangeReason.Joined => "the same identity joined the room again through another connection",
            RoomChangeReason.Kicked => "an administrator removed this member",
            RoomChangeReason.Closed => "an operator closed the room",
            _ => "the room no longer lists this member",
        };
        Log.Evicted(_logger, member.Room, member.Slot, why);
        member.Control.TrySend(reason switch
        {
            RoomChangeReason.Kicked => new Error(ErrorCodes.Kicked, $"removed from room '{member.Room}': {why}"),
            RoomChangeReason.Closed => new Error(ErrorCodes.RoomClosed, $"removed from room '{member.Room}': {why}"),
            _ => new Error(ErrorCodes.Unauthorized, $"removed from room '{member.Room}' by the cluster: {why}"),
        });
        member.Control.CompleteSending();
        _ = CloseSoonAsync(member);
    }

    // Lets the error reach the client before the close (the writer drains within a moment).
    private static async Task CloseSoonAsync(LocalMember member)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(200), CancellationToken.None).ConfigureAwait(false);
        await member.Connection.CloseAsync(ClientConnection.CloseProtocolError, "evicted").ConfigureAwait(false);
    }

    /// <summary>
    /// Every local member of the room that holds keys from before <paramref name="epoch"/> ratchets; the room hears
    /// back once all of them finished. A member that joined at this epoch already has fresh keys.
    /// </summary>
    private void ScheduleRekeys(string room, long epoch, ImmutableArray<LocalMember> locals)
    {
        var needs = new ConcurrentDictionary<LocalMember, long>();
        foreach (var member in locals)
        {
            if (member.JoinedEpoch >= epoch) continue;
            needs[member] = member.RekeysStarted + 1;
            member.WantRekey();
        }
        _rekeyWaits[(room, epoch)] = new RekeyWait(needs, Time.GetTimestamp());
    }

    private sealed record RekeyWait(ConcurrentDictionary<LocalMember, long> Needs, long Since);

    /// <summary>
    /// A member that joined at an epoch older than its room's current one (the room moved on while the join call
    /// was out, before the member was in the fanout) ratchets too, and the reports still owed wait for it.
    /// </summary>
    internal void OweRekey(LocalMember member, long epoch)
    {
        var needed = member.RekeysStarted + 1;
        member.WantRekey();
        foreach (var ((room, owed), wait) in _rekeyWaits)
        {
            if (room == member.Room && owed > member.JoinedEpoch && owed <= epoch) wait.Needs.TryAdd(member, needed);
        }
    }

    /// <summary>Takes a member that never became ready out of forwarding (the room already removed it).</summary>
    internal void CutOff(LocalMember member)
    {
        bool counted;
        lock (member.Gate)
        {
            counted = member.Evicted; // OnRoomChanged may have evicted it already (the room emptied meanwhile)
            member.Evicted = true;
        }
        member.Connection.SetDatagramHandler(_dropUnknown);
        _forwarder.RemoveLocal(member);
        Counters.OnSession(-1);
        if (!counted) Counters.OnEviction();
    }

    internal void RefreshLinks(string room)
    {
        var routing = Agent.Rooms.Get(room);
        if (routing is null) return;
        var peers = routing.ByGateway.Keys.Where(g => g != Options.GatewayId).ToList();
        var links = peers.Select(Links.Ensure).OfType<LinkPeer>().ToImmutableArray();
        _forwarder.SetLinks(room, links, routing);
    }

    internal void RefreshAllLinks()
    {
        foreach (var fanout in _forwarder.Rooms) RefreshLinks(fanout.Room);
    }

    /// <summary>Runs at the start of every tick, inside the loop's guard; for tests that make a tick throw.</summary>
    internal Action? BeforeTick { get; set; }

    /// <summary>
    /// Rekeys, rekey reports and link upkeep, every 100 ms for as long as the gateway runs. A tick that throws is
    /// logged, counted and the next one runs: if this loop ended, no member would rekey again and the rooms would
    /// evict every member of this gateway at the next deadline. One member's failure does not skip the others.
    /// </summary>
    private async Task TickLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(TickPeriod, Time);
        var failures = new LoopFailureGate(Counters, GatewayLoop.Tick, Time);
        var ticks = 0L;
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    BeforeTick?.Invoke();
                    // Once a second, bring up any link a room needs that a lost message left missing.
                    if (++ticks % 10 == 0) RefreshAllLinks();
                    foreach (var fanout in _forwarder.Rooms)
                    {
                        foreach (var member in fanout.Current.Locals)
                        {
                            try
                            {
                                member.Session.Keys.Maintain();
                                if (!member.StartRekeyIfDue(Time, Options.RekeyDebounce))
                                    _ = member.Connection.CloseAsync(ClientConnection.CloseProtocolError, "control stream stalled");
                            }
                            catch (Exception e)
                            {
                                if (failures.OnFailure(out var count)) Log.TickFailed(_logger, count, e);
                            }
                        }
                    }
                    ReportFinishedRekeys();
                    Links.Tick();
                    CheckCredential();
                    RemoveExpiredGrants();
                    ReloadGrantKeys();
                }
                catch (Exception e)
                {
                    // Not the timer's cancellation, which only WaitForNextTickAsync throws, outside this block.
                    if (failures.OnFailure(out var count)) Log.TickFailed(_logger, count, e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private long _credentialCheckedAt = long.MinValue;
    private long _expiryWarnedAt = long.MinValue;

    /// <summary>
    /// Every <see cref="GatewayOptions.CredentialReloadPeriod"/>: picks up a renewed credential, updates the expiry
    /// gauge, and warns (hourly) when the credential nears its end. The directory and the links learn a renewal at
    /// once: links are negotiated again with it, so no peer holds this gateway's old credential up to its expiry.
    /// </summary>
    private void CheckCredential()
    {
        var now = Time.GetTimestamp();
        if (_credentialCheckedAt != long.MinValue && Time.GetElapsedTime(_credentialCheckedAt, now) < Options.CredentialReloadPeriod) return;
        _credentialCheckedAt = now;
        if (Keys.ReloadCredential(Time, _logger) == CredentialReload.Renewed)
        {
            _ = Agent.UpdateCredentialAsync([.. System.Text.Encoding.UTF8.GetBytes(Keys.Credential.ToJson())]);
            Links.RenegotiateAll();
            _expiryWarnedAt = long.MinValue;
        }
        Counters.SetCredentialExpiry(Keys.TimeToExpiry(Time));
        if (_expiryWarnedAt == long.MinValue || Time.GetElapsedTime(_expiryWarnedAt, now) >= TimeSpan.FromHours(1))
        {
            if (Keys.WarnIfExpiring(Time, _logger)) _expiryWarnedAt = now;
        }
    }

    /// <summary>
    /// A grant holds only until its <c>exp</c> (with the clock skew the handshake allowed): a member still here
    /// then is told <c>grant-expired</c> and disconnected, and its connection's end leaves the room as usual. The
    /// client renews by joining again with a fresh grant before this one runs out.
    /// </summary>
    private void RemoveExpiredGrants()
    {
        if (Grants is null) return;
        var now = Time.GetUtcNow();
        foreach (var fanout in _forwarder.Rooms)
        {
            foreach (var member in fanout.Current.Locals)
            {
                if (member.Session.Grant is not { } grant || now < grant.Expires + Options.Grants.ClockSkew) continue;
                lock (member.Gate)
                {
                    if (member.Evicted) continue;
                    member.Evicted = true;
                }
                member.Connection.SetDatagramHandler(_dropUnknown);
                _forwarder.RemoveLocal(member);
                Counters.OnGrantExpired();
                Log.GrantExpired(_logger, member.Room, member.Slot, grant.KeyId, member.Session.ClientFingerprint.ToString());
                member.Control.TrySend(new Error(ErrorCodes.GrantExpired,
                    $"removed from room '{member.Room}': the grant expired at {grant.Expires:u}; join again with a fresh grant"));
                member.Control.CompleteSending();
                _ = CloseSoonAsync(member);
            }
        }
    }

    private string _grantKeysStamp;
    private long _grantKeysCheckedAt = long.MinValue;

    /// <summary>
    /// Every <c>Gateway:Grants:KeyReloadPeriod</c>: when a key file changed (its time or size), reads the keys again
    /// and gives new handshakes a validator of the new set, so an operator adds a key id, switches issuers and retires
    /// the old key without a restart. Members already admitted stay. A file that fails keeps the previous keys: the
    /// failure is logged (the file and what is wrong, never key material) and counted, once per change of the files.
    /// </summary>
    private void ReloadGrantKeys()
    {
        var settings = Options.Grants;
        if (Grants is null) return;
        var now = Time.GetTimestamp();
        if (_grantKeysCheckedAt != long.MinValue && Time.GetElapsedTime(_grantKeysCheckedAt, now) < settings.KeyReloadPeriod) return;
        _grantKeysCheckedAt = now;
        var stamp = settings.KeyFilesStamp();
        if (stamp == _grantKeysStamp) return;
        _grantKeysStamp = stamp;
        Protocol.Grants.GrantValidator next;
        try
        {
            next = settings.CreateValidator(settings.LoadKeys(), Time);
        }
        catch (GrantKeyFileException e)
        {
            Counters.OnGrantKeyReloadFailure();
            Log.GrantKeysReloadFailed(_logger, e.Message);
            return;
        }
        // The previous keys' secrets are left to the collector rather than zeroed here: a handshake in flight may
        // still be checking a grant with them.
        Grants = next;
        HandshakeOptions = NewHandshakeOptions(next);
        Counters.OnGrantKeyReload();
        Log.GrantKeysReloaded(_logger, string.Join(", ", next.KeyIds.Order(StringComparer.Ordinal)));
    }

    private void ReportFinishedRekeys()
    {
        foreach (var ((room, epoch), wait) in _rekeyWaits)
        {
            var laggards = wait.Needs.Where(pair => pair.Key.RekeysCompleted < pair.Value && !pair.Key.Connection.IsClosed).ToList();
            if (laggards.Count > 0)
            {
                if (Time.GetElapsedTime(wait.Since) < Options.MemberRekeyDeadline) continue;
                // One member that cannot finish must not get the whole gateway evicted from the room.
                foreach (var (member, needed) in laggards)
                {
                    Log.RekeyLaggard(_logger, room, epoch, member.Slot, member.RekeysStarted, member.RekeysCompleted, needed, member.Session.Rekeys.InProgress);
                    member.Control.TrySend(new Error(ErrorCodes.Busy, "rekey not completed in time; reconnect"));
                    member.Control.CompleteSending();
                    _ = member.Connection.CloseAsync(ClientConnection.CloseProtocolError, "rekey timeout");
                }
                Log.RekeyLaggards(_logger, room, epoch, laggards.Count);
            }
            _rekeyWaits.TryRemove((room, epoch), out _);
            _ = ReportAsync(room, epoch);
        }
    }

    private async Task ReportAsync(string room, long epoch)
    {
        try
        {
            await Agent.Rooms.ReportRekeyCompleteAsync(room, epoch).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Log.ReportFailed(_logger, room, epoch, e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        await Agent.DisposeAsync().ConfigureAwait(false);
        Counters.Dispose();
        Histograms.Dispose();
        _stopping.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information,
            Message = "Gateway {GatewayId} serving clients on {ClientEndPoint} (QUIC), links on {LinkEndPoint} (UDP); cluster fingerprint {ClusterFingerprint}")]
        public static partial void Started(ILogger logger, string gatewayId, IPEndPoint clientEndPoint, IPEndPoint linkEndPoint, string clusterFingerprint);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Leaving room {Room} (slot {Slot}) failed; the room will evict the member")]
        public static partial void LeaveFailed(ILogger logger, string room, ushort slot, Exception exception);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Reporting the rekey of room {Room} to epoch {Epoch} failed")]
        public static partial void ReportFailed(ILogger logger, string room, long epoch, Exception exception);

        [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Room {Room} epoch {Epoch}: disconnected {Count} members that did not finish their rekey in time")]
        public static partial void RekeyLaggards(ILogger logger, string room, long epoch, int count);

        [LoggerMessage(EventId = 6, Level = LogLevel.Information,
            Message = "Room {Room} epoch {Epoch}: member {Slot} late with its rekey (started {Started}, completed {Completed}, needed {Needed}, one in progress: {InProgress})")]
        public static partial void RekeyLaggard(ILogger logger, string room, long epoch, ushort slot, long started, long completed, long needed, bool inProgress);

        [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Room {Room}: member {Slot} removed by the cluster ({Why}); disconnecting it")]
        public static partial void Evicted(ILogger logger, string room, ushort slot, string why);

        [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "Grants required: accepting issuer keys {KeyIds}")]
        public static partial void GrantsRequired(ILogger logger, string keyIds);

        [LoggerMessage(EventId = 9, Level = LogLevel.Debug, Message = "Grant of key {KeyId} accepted for {Subject}")]
        public static partial void GrantAccepted(ILogger logger, string keyId, string subject);

        [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Grant of key {KeyId} presented by {Subject} refused: {Check}")]
        public static partial void GrantRefused(ILogger logger, string keyId, string subject, Protocol.Grants.GrantFailure check);

        [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Room {Room}: admin {Admin} kicked member {Slot} (removed: {Removed})")]
        public static partial void Kicked(ILogger logger, string room, ushort slot, ushort admin, bool removed);

        [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Room {Room}: kicking member {Slot} failed")]
        public static partial void KickFailed(ILogger logger, string room, ushort slot, Exception exception);

        [LoggerMessage(EventId = 13, Level = LogLevel.Information, Message = "Room {Room}: admin {Admin} set member {Slot} muted {Muted} (changed: {Changed})")]
        public static partial void Muted(ILogger logger, string room, ushort slot, ushort admin, bool muted, bool changed);

        [LoggerMessage(EventId = 14, Level = LogLevel.Warning, Message = "Room {Room}: muting member {Slot} failed")]
        public static partial void MuteFailed(ILogger logger, string room, ushort slot, Exception exception);

        [LoggerMessage(EventId = 15, Level = LogLevel.Information, Message = "Room {Room}: member {Slot} ({Subject}) removed, its grant of key {KeyId} expired")]
        public static partial void GrantExpired(ILogger logger, string room, ushort slot, string keyId, string subject);

        [LoggerMessage(EventId = 16, Level = LogLevel.Information, Message = "Grant keys reloaded: accepting issuer keys {KeyIds}")]
        public static partial void GrantKeysReloaded(ILogger logger, string keyIds);

        [LoggerMessage(EventId = 17, Level = LogLevel.Warning, Message = "Grant keys changed on disk but cannot be used ({Problem}); the previous keys stay accepted")]
        public static partial void GrantKeysReloadFailed(ILogger logger, string problem);

        [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Gateway maintenance tick failed ({Failures} so far); the loop goes on")]
        public static partial void TickFailed(ILogger logger, long failures, Exception exception);
    }
}
