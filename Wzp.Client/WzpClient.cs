using System.Collections.Immutable;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client;

/// <summary>
/// A member of one room behind a Wzp gateway (PROTOCOL.md §3-§7): connects over QUIC, verifies the gateway's
/// cluster (pin or trust on first use), completes the handshake, joins, and then sends and receives media
/// datagrams under the hop keys, answering rekeys, pinging, and reconnecting with backoff when the connection
/// drops.
/// </summary>
/// <remarks>
/// Threading: <see cref="TrySend"/> may be called from any thread; received frames are read by one consumer of
/// <see cref="ReceiveAsync"/>; member events by one consumer of <see cref="MemberEvents"/>.
/// </remarks>
public sealed partial class WzpClient : IAsyncDisposable
{
    /// <summary>The application error code of a clean close after <c>leave</c>.</summary>
    public const ulong LeaveCloseCode = 0;

    /// <summary>The application error code when this client found the gateway misbehaving.</summary>
    public const ulong ProtocolErrorCloseCode = 1;

    private static readonly string[] RetryableGatewayCodes = [ErrorCodes.Busy, ErrorCodes.Internal];

    private readonly WzpClientOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<MediaFrame> _frames;
    private readonly Channel<MemberEvent> _memberEvents;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _lastGood;
    private GatewayAddress _connectedTo;
    private readonly Lock _membersLock = new();
    private ImmutableSortedDictionary<int, RoomMember> _members = ImmutableSortedDictionary<int, RoomMember>.Empty;
    private volatile Link? _link;
    private byte[]? _clusterKey;
    private TrustDecision _trust;
    private Task _supervisor = Task.CompletedTask;
    private int _state = (int)ClientState.Connecting;
    private int _leaving;
    private int _reconnects;
    private long _datagramsSent;
    private long _sendDropped;
    private long _datagramsReceived;
    private long _framesDelivered;
    private long _droppedMalformed;
    private long _droppedUnknownEpoch;
    private long _droppedAuthentication;
    private long _droppedReplay;
    private long _droppedUnread;
    private long _rekeys;

    private WzpClient(WzpClientOptions options)
    {
        _options = options;
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<WzpClient>();
        _frames = Channel.CreateBounded<MediaFrame>(
            new BoundedChannelOptions(options.ReceiveQueueCapacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = true },
            _ => Interlocked.Increment(ref _droppedUnread));
        _memberEvents = Channel.CreateBounded<MemberEvent>(
            new BoundedChannelOptions(options.MemberEventQueueCapacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
    }

    /// <summary>Raised (on a background thread) whenever <see cref="State"/> changes.</summary>
    public event EventHandler<ClientState>? StateChanged;

    public ClientState State => (ClientState)Volatile.Read(ref _state);

    public string Room => _options.Room;

    /// <summary>The gateway this client is connected to (or last was): one of the configured ones.</summary>
    public GatewayAddress Gateway => _connectedTo;

    /// <summary>This client's slot in the room (it changes when a reconnect rejoins).</summary>
    public int Slot => _link?.Joined?.Slot ?? 0;

    /// <summary>The room's members, this client included, by slot.</summary>
    public IReadOnlyList<RoomMember> Members => [.. _members.Values];

    /// <summary>The room's other members.</summary>
    public IReadOnlyList<RoomMember> Others
    {
        get
        {
            var self = Slot;
            return [.. _members.Values.Where(m => m.Slot != self)];
        }
    }

    /// <summary>Fingerprint of the cluster key that signed the gateway's credential.</summary>
    public Fingerprint ClusterFingerprint => Fingerprint.Of(_clusterKey ?? throw new InvalidOperationException("Not connected yet."));

    /// <summary>How the cluster key was trusted on the first connection.</summary>
    public TrustDecision Trust => _trust;

    /// <summary>The id of the gateway the client is connected to.</summary>
    public string GatewayId => _link?.Session.Credential.GatewayId ?? "";

    /// <summary>Six digits both ends of the current hop can compare out of band.</summary>
    public string Sas => _link?.Session.Sas ?? "";

    /// <summary>The client's own fingerprint.</summary>
    public Fingerprint Fingerprint => _options.Identity!.Fingerprint;

    /// <summary>Members that joined or left, starting with every other member present when the client joined.</summary>
    public ChannelReader<MemberEvent> MemberEvents => _memberEvents.Reader;

    /// <summary>
    /// Completes when the client is closed for good: successfully after <see cref="LeaveAsync"/> or
    /// <see cref="DisposeAsync"/>, faulted with a <see cref="WzpClientException"/> when the gateway refused the
    /// client or the connection could not be re-established.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Connects, verifies the gateway, joins the room and returns once <c>joined</c> arrived.</summary>
    /// <exception cref="GatewayUnreachableException">No QUIC connection could be made.</exception>
    /// <exception cref="ClusterPinMismatchException">The cluster is not the pinned one.</exception>
    /// <exception cref="ClusterKeyChangedException">Trust on first use found a changed cluster key.</exception>
    /// <exception cref="GatewayErrorException">The gateway refused (room full, unauthorized, ...).</exception>
    /// <exception cref="HandshakeFailedException">The gateway failed this client's checks.</exception>
    /// <exception cref="KnownClustersException">The known-clusters file is unusable.</exception>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static async Task<WzpClient> ConnectAsync(WzpClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var client = new WzpClient(options);
        try
        {
            var link = await client.EstablishAsync(cancellationToken).ConfigureAwait(false);
            client.Attach(link);
            client._supervisor = Task.Run(client.SuperviseAsync, CancellationToken.None);
            return client;
        }
        catch
        {
            client.Finish(null);
            client._lifetime.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Seals one media frame under the current hop keys (the next packet number of the sending epoch) and sends
    /// it as a QUIC datagram. Never blocks.
    /// </summary>
    /// <param name="header">The media header, relayed unchanged to the listeners; its Q bit is set from <paramref name="quality"/>.</param>
    /// <param name="payload">The encoded audio.</param>
    /// <param name="quality">An optional quality report carried inside the ciphertext.</param>
    /// <returns>False when the datagram was dropped: not joined (reconnecting), congestion window full, or the epoch spent.</returns>
    /// <exception cref="ArgumentException">The payload does not fit one datagram.</exception>
    public bool TrySend(MediaHeader header, ReadOnlySpan<byte> payload, QualityReport? quality = null)
    {
        var plaintextLength = payload.Length + (quality is null ? 0 : QualityReport.Size);
        if (plaintextLength > MediaDatagram.MaxPlaintext)
            throw new ArgumentException($"A payload is at most {MediaDatagram.MaxPlaintext - (quality is null ? 0 : QualityReport.Size)} bytes.", nameof(payload));
        var link = _link;
        if (link is null || link.HasEnded || State != ClientState.Joined) return DropSend();
        Span<byte> headerBytes = stackalloc byte[MediaHeader.Size];
        (header with { HasQualityReport = quality is not null }).Write(headerBytes);
        Span<byte> plaintext = stackalloc byte[plaintextLength];
        payload.CopyTo(plaintext);
        quality?.Write(plaintext[payload.Length..]);
        Span<byte> datagram = stackalloc byte[MediaDatagram.MaxSize];
        int size;
        try
        {
            size = MediaDatagram.Seal(link.Session.Keys, 0, headerBytes, plaintext, datagram);
        }
        catch (ObjectDisposedException)
        {
            // The link was torn down between the check above and the seal.
            return DropSend();
        }
        if (size == 0 || !link.Connection.SendDatagram(datagram[..size])) return DropSend();
        Interlocked.Increment(ref _datagramsSent);
        return true;
    }

    /// <summary>
    /// The frames other members send, in arrival order, until the client closes. Frames that the application
    /// does not read in time are dropped oldest first and counted in <see cref="WzpClientStatistics.DroppedUnread"/>.
    /// </summary>
    public IAsyncEnumerable<MediaFrame> ReceiveAsync(CancellationToken cancellationToken = default) =>
        _frames.Reader.ReadAllAsync(cancellationToken);

    public WzpClientStatistics GetStatistics()
    {
        var link = _link;
        QuicConnectionStatistics quic = default;
        uint epoch = 0;
        TimeSpan? pingRtt = null;
        if (link is not null)
        {
            quic = link.Connection.GetStatistics();
            try
            {
                epoch = link.Session.Keys.Current.Number;
            }
            catch (ObjectDisposedException)
            {
                // Torn down concurrently: report epoch 0 rather than fail a statistics read.
            }
            pingRtt = link.PingRtt;
        }
        return new WzpClientStatistics(
            quic.SmoothedRtt,
            quic.MinRtt,
            pingRtt,
            Interlocked.Read(ref _datagramsSent),
            Interlocked.Read(ref _sendDropped),
            Interlocked.Read(ref _datagramsReceived),
            Interlocked.Read(ref _framesDelivered),
            Interlocked.Read(ref _droppedMalformed),
            Interlocked.Read(ref _droppedUnknownEpoch),
            Interlocked.Read(ref _droppedAuthentication),
            Interlocked.Read(ref _droppedReplay),
            Interlocked.Read(ref _droppedUnread),
            quic.DatagramsLost,
            epoch,
            Interlocked.Read(ref _rekeys),
            Volatile.Read(ref _reconnects));
    }

    /// <summary>
    /// Asks the gateway to remove the member in <paramref name="slot"/> from the room (extension of docs/protocol.md
    /// §11). Needs a grant with <c>admin</c>: without one the gateway closes this client with <c>unauthorized</c>.
    /// The removal shows as the member leaving (<see cref="MemberEvents"/>).
    /// </summary>
    public async Task KickAsync(int slot, CancellationToken cancellationToken = default)
    {
        var link = _link;
        if (link is null || link.HasEnded || State != ClientState.Joined) throw new InvalidOperationException("Not in a room.");
        await link.Control.SendAsync(new Kick(slot), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Asks the gateway to mute (or unmute) the member in <paramref name="slot"/> (docs/protocol.md §11): its gateway
    /// then drops what it sends, wherever it is connected, and the member list marks it (<see cref="RoomMember.Muted"/>,
    /// a <see cref="MemberEventKind.Updated"/> event). Needs a grant with <c>admin</c>, as <see cref="KickAsync"/>.
    /// </summary>
    public async Task MuteAsync(int slot, bool muted = true, CancellationToken cancellationToken = default)
    {
        var link = _link;
        if (link is null || link.HasEnded || State != ClientState.Joined) throw new InvalidOperationException("Not in a room.");
        await link.Control.SendAsync(muted ? new Mute(slot) : new Unmute(slot), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends <c>leave</c>, closes the connection and ends <see cref="ReceiveAsync"/> and <see cref="MemberEvents"/>.
    /// Idempotent; never throws for a connection that is already gone.
    /// </summary>
    public async Task LeaveAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _leaving, 1) == 0)
        {
            var link = _link;
            if (link is not null && !link.HasEnded)
            {
                try
                {
                    await link.Control.SendAsync(new Leave(), cancellationToken).ConfigureAwait(false);
                    await link.WaitStreamAcknowledgedAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is QuicException or InvalidOperationException or OperationCanceledException)
                {
                    // The connection is going away anyway; closing it tells the gateway as much.
                }
                await link.Connection.CloseAsync(LeaveCloseCode, "leave").ConfigureAwait(false);
                link.End(null);
                Log.Left(_logger, Room);
            }
            await _lifetime.CancelAsync().ConfigureAwait(false);
        }
        try
        {
            await _supervisor.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await LeaveAsync().ConfigureAwait(false);
        var link = _link;
        if (link is not null) await link.DisposeAsync().ConfigureAwait(false);
        Finish(null);
        _lifetime.Dispose();
    }

    private bool DropSend()
    {
        Interlocked.Increment(ref _sendDropped);
        return false;
    }

    private void SetState(ClientState state)
    {
        if (Interlocked.Exchange(ref _state, (int)state) != (int)state) StateChanged?.Invoke(this, state);
    }

    private void Finish(Exception? error)
    {
        SetState(ClientState.Closed);
        _frames.Writer.TryComplete();
        _memberEvents.Writer.TryComplete();
        if (error is null) _completion.TrySetResult();
        else _completion.TrySetException(error);
    }

    /// <summary>Makes <paramref name="link"/> the live connection and reconciles the member list with its <c>joined</c>.</summary>
    private void Attach(Link link)
    {
        var joined = link.Joined!;
        var members = ImmutableSortedDictionary.CreateBuilder<int, RoomMember>();
        foreach (var info in joined.Members)
        {
            if (ToMember(info) is { } member) members[member.Slot] = member;
        }
        lock (_membersLock)
        {
            var old = _members;
            _members = members.ToImmutable();
            foreach (var gone in old.Values.Where(m => !_members.TryGetValue(m.Slot, out var now) || now != m))
                _memberEvents.Writer.TryWrite(new MemberEvent(MemberEventKind.Left, gone));
            foreach (var added in _members.Values.Where(m => m.Slot != joined.Slot && (!old.TryGetValue(m.Slot, out var was) || was != m)))
                _memberEvents.Writer.TryWrite(new MemberEvent(MemberEventKind.Joined, added));
        }
        _link = link;
        link.Start();
        SetState(ClientState.Joined);
        Log.Joined(_logger, Room, joined.Slot, _connectedTo.ToString(), joined.Members.Count);
    }

    private void Apply(RoomUpdate update)
    {
        var self = Slot;
        lock (_membersLock)
        {
            foreach (var slot in update.Left ?? [])
            {
                if (_members.TryGetValue(slot, out var gone))
                {
                    _members = _members.Remove(slot);
                    _memberEvents.Writer.TryWrite(new MemberEvent(MemberEventKind.Left, gone));
                }
            }
            foreach (var info in update.Joined ?? [])
            {
                if (ToMember(info) is not { } member) continue;
                // A slot listed again with the same identity is an update of its flags (docs/protocol.md §11).
                var updated = _members.TryGetValue(member.Slot, out var known) && known.Fingerprint == member.Fingerprint;
                _members = _members.SetItem(member.Slot, member);
                if (member.Slot != self || updated)
                    _memberEvents.Writer.TryWrite(new MemberEvent(updated ? MemberEventKind.Updated : MemberEventKind.Joined, member));
            }
        }
    }

    private static RoomMember? ToMember(MemberInfo info) =>
        info is { Slot: >= 1 and <= ushort.MaxValue, Fingerprint.Length: Fingerprint.Size }
            ? new RoomMember(info.Slot, Fingerprint.FromBytes(info.Fingerprint), info.Alias ?? "", info.Muted, info.Listener)
            : null;

    /// <summary>Watches the live link; when it ends, reconnects with backoff or closes the client.</summary>
    private async Task SuperviseAsync()
    {
        while (true)
        {
            var link = _link!;
            Exception? reason;
            // A leave that raced a reconnect finds no link to end; the lifetime token ends the new one instead.
            using (_lifetime.Token.Register(static state => ((Link)state!).End(null), link))
                reason = await link.Ended.ConfigureAwait(false);
            await link.DisposeAsync().ConfigureAwait(false);
            if (Volatile.Read(ref _leaving) != 0 || _lifetime.IsCancellationRequested)
            {
                Finish(null);
                return;
            }
            reason ??= new ConnectionLostException("the connection ended");
            Log.LinkEnded(_logger, reason.Message);
            if (!_options.Reconnect || !IsRetryable(reason))
            {
                Finish(reason is WzpClientException ? reason : new ConnectionLostException(reason.Message, reason));
                return;
            }
            SetState(ClientState.Reconnecting);
            // Any gateway serves any room: after a lost connection the next one is tried first.
            if (_options.AlternateGateways.Count > 0) _lastGood++;
            var next = await ReconnectAsync(reason).ConfigureAwait(false);
            if (next is null) return;
            Interlocked.Increment(ref _reconnects);
            Attach(next);
        }
    }

    private async Task<Link?> ReconnectAsync(Exception reason)
    {
        var delay = _options.ReconnectInitialDelay;
        for (var attempt = 1; attempt <= _options.MaxReconnectAttempts; attempt++)
        {
            try
            {
                await Task.Delay(delay, _options.Time, _lifetime.Token).ConfigureAwait(false);
                Log.Reconnecting(_logger, attempt, _options.Gateway.ToString());
                return await EstablishAsync(_lifetime.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_lifetime.IsCancellationRequested)
            {
                Finish(null);
                return null;
            }
            catch (WzpClientException e) when (IsRetryable(e))
            {
                reason = e;
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.ReconnectMaxDelay.Ticks));
            }
            catch (WzpClientException e)
            {
                Finish(e);
                return null;
            }
        }
        Finish(new ConnectionLostException($"gave up after {_options.MaxReconnectAttempts} reconnect attempts; last: {reason.Message}", reason));
        return null;
    }

    /// <summary>Transport trouble is worth retrying; a refusal of this client or of the gateway's keys is not.</summary>
    private static bool IsRetryable(Exception e) => e switch
    {
        GatewayErrorException g => RetryableGatewayCodes.Contains(g.Code),
        GatewayUnreachableException or ConnectionLostException => true,
        _ => false,
    };

    /// <summary>One connection: QUIC, the handshake, trust, confirm, joined.</summary>
    /// <summary>
    /// Connects to the first gateway that answers: the one that served last, then the others in the order given,
    /// each host name at every address it resolves to. A refusal of this client or of the cluster's key ends the
    /// search at once; unreachable or busy gateways move it to the next.
    /// </summary>
    private async Task<Link> EstablishAsync(CancellationToken cancellationToken)
    {
        var candidates = await CandidatesAsync(cancellationToken).ConfigureAwait(false);
        WzpClientException? last = null;
        for (var i = 0; i < candidates.Count; i++)
        {
            var index = (_lastGood + i) % candidates.Count;
            try
            {
                var link = await EstablishAtAsync(candidates[index], cancellationToken).ConfigureAwait(false);
                _lastGood = index;
                _connectedTo = candidates[index];
                return link;
            }
            catch (WzpClientException e) when (IsRetryable(e) && i < candidates.Count - 1)
            {
                Log.GatewayFailed(_logger, candidates[index].ToString(), e.Message);
                last = e;
            }
        }
        throw last ?? new GatewayUnreachableException(_options.Gateway.ToString(), "no gateway address to try");
    }

    private async Task<List<GatewayAddress>> CandidatesAsync(CancellationToken cancellationToken)
    {
        var candidates = new List<GatewayAddress>();
        foreach (var gateway in (IEnumerable<GatewayAddress>)[_options.Gateway, .. _options.AlternateGateways])
        {
            if (System.Net.IPAddress.TryParse(gateway.Host, out _) || _options.AlternateGateways.Count == 0 && gateway == _options.Gateway)
            {
                // A literal, or the only gateway: the QUIC client resolves the name itself (and says so when it cannot).
                candidates.Add(gateway);
                continue;
            }
            try
            {
                var addresses = await System.Net.Dns.GetHostAddressesAsync(gateway.Host, cancellationToken).ConfigureAwait(false);
                candidates.AddRange(addresses.Select(a => new GatewayAddress(a.ToString(), gateway.Port)));
            }
            catch (System.Net.Sockets.SocketException e)
            {
                Log.GatewayFailed(_logger, gateway.ToString(), e.Message);
            }
        }
        if (candidates.Count == 0) throw new GatewayUnreachableException(_options.Gateway.ToString(), "no gateway name resolved");
        var distinct = candidates.Distinct().ToList();
        if (_lastGood >= distinct.Count) _lastGood = 0;
        return distinct;
    }

    private async Task<Link> EstablishAtAsync(GatewayAddress gateway, CancellationToken cancellationToken)
    {
        var endpoint = gateway.ToString();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);
        timeout.CancelAfter(_options.ConnectTimeout);
        var quicOptions = new QuicClientOptions { HandshakeTimeout = _options.ConnectTimeout };
        _options.ConfigureQuic?.Invoke(quicOptions);
        QuicConnection connection;
        try
        {
            connection = await QuicClient.ConnectAsync(gateway.Host, gateway.Port, quicOptions, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested && !_lifetime.IsCancellationRequested)
        {
            throw new GatewayUnreachableException(endpoint, $"no answer within {_options.ConnectTimeout.TotalSeconds:0.#} s", e);
        }
        catch (QuicException e)
        {
            throw new GatewayUnreachableException(endpoint, DescribeQuicFailure(e.CloseInfo), e);
        }
        catch (SocketException e)
        {
            throw new GatewayUnreachableException(endpoint, e.Message, e);
        }

        ClientSession? session = null;
        Link? link = null;
        try
        {
            var control = new ControlChannel(connection);
            using var handshake = new ClientHandshake(_options.Identity!, _options.Room, _options.Alias, _options.Token, pinnedClusterKey: null, _options.Time);
            await control.SendAsync(handshake.Hello, timeout.Token).ConfigureAwait(false);
            var welcome = await ExpectAsync<Welcome>(control, timeout.Token).ConfigureAwait(false);
            var step = handshake.OnWelcome(welcome);
            if (!step.Succeeded) throw new HandshakeFailedException(step.Failure!.Code, step.Failure.Message);
            session = step.Value!;
            var trust = CheckTrust(session.Credential);
            link = new Link(this, connection, control, session);
            connection.SetDatagramHandler(link.OnDatagram);
            await control.SendAsync(session.Confirm, timeout.Token).ConfigureAwait(false);
            link.Joined = await ExpectAsync<Joined>(control, timeout.Token).ConfigureAwait(false);
            if (_clusterKey is null)
            {
                _clusterKey = session.Credential.ClusterKey;
                _trust = trust;
            }
            return link;
        }
        catch (Exception e)
        {
            if (link is not null) await link.DisposeAsync().ConfigureAwait(false);
            else
            {
                session?.Dispose();
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            WzpClientException? mapped = e switch
            {
                OperationCanceledException when !cancellationToken.IsCancellationRequested && !_lifetime.IsCancellationRequested =>
                    new GatewayUnreachableException(endpoint, $"the gateway did not complete the handshake within {_options.ConnectTimeout.TotalSeconds:0.#} s", e),
                QuicException q => new ConnectionLostException($"the gateway closed the connection during the handshake ({DescribeQuicFailure(q.CloseInfo)})", e),
                ControlFrameException f => new HandshakeFailedException(ErrorCodes.BadRequest, $"the gateway sent an unreadable control frame: {f.Message}"),
                EndOfStreamException => new ConnectionLostException("the gateway ended the control stream during the handshake", e),
                _ => null,
            };
            if (mapped is not null) throw mapped;
            throw;
        }
    }

    /// <summary>Reads until a message of type <typeparamref name="T"/>; an <c>error</c> becomes a <see cref="GatewayErrorException"/>.</summary>
    private static async Task<T> ExpectAsync<T>(ControlChannel control, CancellationToken cancellationToken) where T : ControlMessage
    {
        while (true)
        {
            var message = await control.ReceiveAsync(cancellationToken).ConfigureAwait(false);
            switch (message)
            {
                case null:
                    throw new ConnectionLostException("the gateway ended the control stream during the handshake");
                case T expected:
                    return expected;
                case Error error:
                    throw new GatewayErrorException(error.Code, error.Message);
                case UnknownMessage:
                    continue;
                default:
                    throw new HandshakeFailedException(ErrorCodes.BadRequest, $"the gateway sent '{message.Type}' where '{typeof(T).Name}' was due");
            }
        }
    }

    private TrustDecision CheckTrust(GatewayCredential credential)
    {
        var presented = credential.ClusterFingerprint;
        if (_clusterKey is { } known)
        {
            // A reconnect must land in the cluster the first connection trusted, whatever the gateway.
            if (!credential.ClusterKey.AsSpan().SequenceEqual(known)) throw new ClusterPinMismatchException(Fingerprint.Of(known), presented);
            return _trust;
        }
        if (_options.PinnedClusterFingerprint is { } pinned)
        {
            if (pinned != presented) throw new ClusterPinMismatchException(pinned, presented);
            return TrustDecision.Pinned;
        }
        var name = _options.ClusterName ?? _options.Gateway.ToString();
        var decision = new KnownClusters(_options.KnownClustersPath).Check(name, presented, _options.AllowClusterKeyChange);
        if (decision == TrustDecision.Replaced) Log.ClusterKeyReplaced(_logger, name, presented.ToString());
        else if (decision == TrustDecision.FirstUse) Log.ClusterKeyRecorded(_logger, name, presented.ToString());
        return decision;
    }

    private static string DescribeQuicFailure(QuicCloseInfo info) => info switch
    {
        { IsHandshakeTimeout: true } => "no answer (QUIC handshake timed out)",
        { IsApplicationError: false, ErrorCode: QuicDefaults.NoApplicationProtocolError } => "the server does not speak wzp/1 (no common ALPN)",
        { IsApplicationError: false, ErrorCode: QuicDefaults.ConnectionRefusedError } => "the gateway refused the connection (at its connection limit)",
        _ => info.ToString(),
    };

    private void OnDatagramReceived() => Interlocked.Increment(ref _datagramsReceived);

    private void OnDropped(DropReason reason)
    {
        switch (reason)
        {
            case DropReason.Malformed: Interlocked.Increment(ref _droppedMalformed); break;
            case DropReason.UnknownEpoch: Interlocked.Increment(ref _droppedUnknownEpoch); break;
            case DropReason.Authentication: Interlocked.Increment(ref _droppedAuthentication); break;
            case DropReason.Replay: Interlocked.Increment(ref _droppedReplay); break;
        }
    }

    private void OnFrame(MediaFrame frame)
    {
        Interlocked.Increment(ref _framesDelivered);
        _frames.Writer.TryWrite(frame);
    }
}
