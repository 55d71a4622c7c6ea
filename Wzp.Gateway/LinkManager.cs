using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Wzp.Grains;
using Wzp.Protocol;

namespace Wzp.Gateway;

/// <summary>
/// Links to other gateways (PROTOCOL.md §8): negotiated through the directory grain (offer and accept as opaque
/// signed bytes), media over this gateway's one UDP socket. The gateway whose id sorts first offers; the other
/// asks for an offer (an empty <see cref="LinkMessageKind.Accept"/>) when it needs a link first, so either side
/// can bring a link up, and a restarted peer gets a fresh one. The offering side also starts link rekeys; their
/// messages travel as control frames inside <see cref="LinkMessageKind.Rekey"/> (rekey, rekeyDone) and
/// <see cref="LinkMessageKind.RekeyAck"/>.
/// </summary>
internal sealed partial class LinkManager(GatewayServer server, Socket socket, Forwarder forwarder, IGrainFactory grains, ILogger logger)
{
    /// <summary>
    /// The room tag of link keepalives: sealed, empty datagrams each side sends a few times per idle timeout so
    /// that a link whose peer lost it (or whose path broke) is noticed even when nobody talks. A real room whose
    /// tag is 0 has a 2^-64 chance; its media would only be mistaken for keepalives.
    /// </summary>
    public const ulong KeepaliveTag = 0;

    private static readonly TimeSpan OfferRetry = TimeSpan.FromSeconds(3);
    private static readonly byte[] KeepaliveHeader = new byte[MediaHeader.Size];

    private readonly ConcurrentDictionary<string, LinkState> _links = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<uint, LinkPeer?> _byReceiveId = new(); // null: reserved during a negotiation
    private readonly string _self = server.Options.GatewayId;

    // Offers accepted within the last minute (PROTOCOL.md §8): a replay through the directory is refused, so it
    // can no longer replace a working link with one whose other end does not exist.
    private readonly LinkOfferNonces _offerNonces = new();
    private readonly LoopFailureGate _failures = new(forwarder.Counters, GatewayLoop.LinkReceive, server.Time);
    private Task _receiveLoop = Task.CompletedTask;

    private sealed class LinkState
    {
        public readonly Lock Gate = new();

        // Negotiation messages of one peer are handled one at a time, in arrival order: two offers answered
        // concurrently could install their links in the opposite order to the accepts the peer completes.
        public readonly SemaphoreSlim Negotiation = new(1, 1);
        public LinkOfferer? Offerer;
        public long OfferedAt = long.MinValue;
        public LinkPeer? Established;
    }

    public void Start(CancellationToken stopping) => _receiveLoop = Task.Run(() => ReceiveLoopAsync(stopping), stopping);

    public Task StopAsync()
    {
        foreach (var state in _links.Values)
        {
            lock (state.Gate)
            {
                state.Offerer?.Dispose();
                state.Established?.Session.Dispose();
            }
        }
        return _receiveLoop;
    }

    /// <summary>The established link to <paramref name="peerId"/>, if any.</summary>
    public LinkPeer? Get(string peerId) => _links.TryGetValue(peerId, out var state) ? state.Established : null;

    /// <summary>The established link to <paramref name="peerId"/>, starting its negotiation when there is none.</summary>
    public LinkPeer? Ensure(string peerId)
    {
        var state = _links.GetOrAdd(peerId, static _ => new LinkState());
        lock (state.Gate)
        {
            if (state.Established is { } link) return link;
            var now = server.Time.GetTimestamp();
            if (state.OfferedAt != long.MinValue && server.Time.GetElapsedTime(state.OfferedAt, now) < OfferRetry) return null;
            state.OfferedAt = now;
            if (LinkHandshake.ShouldOffer(_self, peerId))
            {
                state.Offerer?.Dispose();
                state.Offerer = new LinkOfferer(server.Keys.Identity, server.Keys.Credential, server.Time);
                Send(peerId, LinkMessageKind.Offer, state.Offerer.Offer.ToBytes());
            }
            else
            {
                Send(peerId, LinkMessageKind.Accept, []);
            }
            return null;
        }
    }

    /// <summary>A link message from the directory (on an Orleans thread).</summary>
    public void OnLinkMessage(LinkMessage message)
    {
        var peer = message.FromGatewayId;
        var payload = message.Payload.AsSpan();
        switch (message.Kind)
        {
            case LinkMessageKind.Offer when LinkOffer.TryParse(payload) is { } offer:
                _ = AcceptAsync(peer, offer);
                break;
            case LinkMessageKind.Accept when payload.IsEmpty:
                OnOfferRequested(peer);
                break;
            case LinkMessageKind.Accept when LinkAccept.TryParse(payload) is { } accept:
                _ = CompleteAsync(peer, accept);
                break;
            case LinkMessageKind.Rekey or LinkMessageKind.RekeyAck:
                OnRekeyMessage(peer, payload);
                break;
            default:
                Log.BadLinkMessage(logger, peer, message.Kind.ToString());
                break;
        }
    }

    /// <summary>
    /// The peer needs a link and we are the side that offers. An offer already on its way answers it; otherwise
    /// (no link, or the peer lost ours because it restarted) a fresh offer goes out.
    /// </summary>
    private void OnOfferRequested(string peer)
    {
        if (!LinkHandshake.ShouldOffer(_self, peer)) return;
        var state = _links.GetOrAdd(peer, static _ => new LinkState());
        lock (state.Gate)
        {
            var pending = state.Offerer is not null && state.OfferedAt != long.MinValue &&
                server.Time.GetElapsedTime(state.OfferedAt) < OfferRetry;
            // A request that crossed our offer on the way predates the link it asked for.
            var fresh = state.Established is { } link && server.Time.GetElapsedTime(link.EstablishedAt) < OfferRetry &&
                server.Time.GetElapsedTime(link.LastReceived) < server.Options.LinkIdleTimeout;
            if (pending || fresh) return;
            state.Established = null; // the old link stays in the receive table until the new one replaces it
            state.OfferedAt = long.MinValue;
        }
        Ensure(peer);
    }

    private async Task AcceptAsync(string peer, LinkOffer offer)
    {
        var state = _links.GetOrAdd(peer, static _ => new LinkState());
        await state.Negotiation.WaitAsync().ConfigureAwait(false);
        try
        {
            await AcceptCoreAsync(peer, offer).ConfigureAwait(false);
        }
        finally
        {
            state.Negotiation.Release();
        }
    }

    private async Task AcceptCoreAsync(string peer, LinkOffer offer)
    {
        if (offer.Credential.GatewayId != peer || LinkHandshake.ShouldOffer(_self, peer))
        {
            Log.LinkRefused(logger, peer, "offer from the wrong side or for another gateway id");
            return;
        }
        var endpoint = await FindEndpointAsync(peer).ConfigureAwait(false);
        if (endpoint is null) return;
        var receiveId = NewReceiveId();
        var step = LinkAcceptor.Accept(server.Keys.Identity, server.Keys.Credential, offer, linkIdForA: receiveId, linkIdForB: RandomId(), server.Time, _offerNonces);
        if (!step.Succeeded)
        {
            _byReceiveId.TryRemove(receiveId, out _);
            Log.LinkRefused(logger, peer, step.Failure!.Message);
            return;
        }
        Install(peer, step.Value!.Session, endpoint);
        Send(peer, LinkMessageKind.Accept, step.Value.Accept.ToBytes());
    }

    private async Task CompleteAsync(string peer, LinkAccept accept)
    {
        var state = _links.GetOrAdd(peer, static _ => new LinkState());
        await state.Negotiation.WaitAsync().ConfigureAwait(false);
        try
        {
            await CompleteCoreAsync(peer, accept, state).ConfigureAwait(false);
        }
        finally
        {
            state.Negotiation.Release();
        }
    }

    private async Task CompleteCoreAsync(string peer, LinkAccept accept, LinkState state)
    {
        var endpoint = await FindEndpointAsync(peer).ConfigureAwait(false);
        if (endpoint is null) return;
        Step<LinkSession> step;
        lock (state.Gate)
        {
            if (state.Offerer is null || accept.Credential.GatewayId != peer) return;
            // An accept of an earlier offer fails here and leaves the current offer open for its own accept.
            step = state.Offerer.OnAccept(accept);
            if (step.Succeeded)
            {
                state.Offerer.Dispose();
                state.Offerer = null;
            }
        }
        if (!step.Succeeded)
        {
            Log.LinkRefused(logger, peer, step.Failure!.Message);
            return;
        }
        if (!_byReceiveId.TryAdd(step.Value!.ReceiveLinkId, null))
        {
            // The peer picked an id this gateway already routes: negotiate again.
            step.Value.Dispose();
            lock (state.Gate) state.OfferedAt = long.MinValue;
            Ensure(peer);
            return;
        }
        Install(peer, step.Value, endpoint);
    }

    private void Install(string peer, LinkSession session, SocketAddress endpoint)
    {
        var link = new LinkPeer(peer, session, endpoint, server.Time);
        var state = _links.GetOrAdd(peer, static _ => new LinkState());
        LinkPeer? old;
        lock (state.Gate)
        {
            old = state.Established;
            state.Established = link;
        }
        _byReceiveId[session.ReceiveLinkId] = link;
        server.RefreshAllLinks();
        if (old is not null)
        {
            _byReceiveId.TryRemove(new KeyValuePair<uint, LinkPeer?>(old.Session.ReceiveLinkId, old));
            old.Session.Dispose();
        }
        Log.LinkUp(logger, peer, session.Role.ToString());
    }

    private uint NewReceiveId()
    {
        while (true)
        {
            var id = RandomId();
            if (_byReceiveId.TryAdd(id, null)) return id; // reserved until Install
        }
    }

    private static uint RandomId() => (uint)RandomNumberGenerator.GetInt32(1, int.MaxValue);

    private async Task<SocketAddress?> FindEndpointAsync(string peer)
    {
        try
        {
            // One registration, not the list: its cost does not grow with the cluster.
            var info = await grains.GetGatewayDirectory().Get(peer).ConfigureAwait(false);
            if (info is not null && IPEndPoint.TryParse(info.Registration.LinkEndpoint, out var endpoint)) return endpoint.Serialize();
            Log.LinkRefused(logger, peer, "no usable link endpoint in the directory");
        }
        catch (Exception e)
        {
            Log.DirectoryFailed(logger, e);
        }
        return null;
    }

    private void Send(string peer, LinkMessageKind kind, byte[] payload) => _ = SendAsync(peer, kind, payload);

    private async Task SendAsync(string peer, LinkMessageKind kind, byte[] payload)
    {
        try
        {
            var delivery = await server.Agent.SendLinkMessageAsync(peer, kind, [.. payload]).ConfigureAwait(false);
            if (delivery != LinkDelivery.Sent) Log.LinkRefused(logger, peer, $"directory could not deliver: {delivery}");
        }
        catch (Exception e)
        {
            Log.DirectoryFailed(logger, e);
        }
    }

    /// <summary>
    /// Periodic work: keepalives, re-negotiating a link that stopped receiving, link rekeys (offering side) and
    /// wiping retired link keys.
    /// </summary>
    public void Tick()
    {
        var now = server.Time.GetTimestamp();
        var idle = server.Options.LinkIdleTimeout;
        var seconds = server.Time.GetUtcNow().ToUnixTimeSeconds();
        foreach (var (peer, state) in _links)
        {
            var link = state.Established;
            if (link is null) continue;
            if ((ulong)Math.Max(0, seconds) > link.Session.Peer.NotAfter)
            {
                DropExpired(peer, state, link);
                continue;
            }
            link.Session.Keys.Maintain();
            if (server.Time.GetElapsedTime(link.LastKeepalive, now) >= idle / 4) SendKeepalive(link, now);
            if (server.Time.GetElapsedTime(link.LastReceived, now) >= idle) Renegotiate(peer, state);
            else if (link.Session.Initiator is { } initiator && !initiator.InProgress && RekeyTriggers.IsDue(link.Session.Keys) &&
                initiator.Request() is { } rekey)
                Send(peer, LinkMessageKind.Rekey, ControlCodec.Encode(rekey));
        }
    }

    /// <summary>
    /// The peer's credential, checked when the link came up, has since expired: the cluster no longer vouches for
    /// that key, so its media stops here. A new negotiation (which checks the credential again) brings the link
    /// back once the peer presents a renewed one.
    /// </summary>
    private void DropExpired(string peer, LinkState state, LinkPeer link)
    {
        lock (state.Gate)
        {
            if (!ReferenceEquals(state.Established, link)) return;
            state.Established = null;
            state.OfferedAt = long.MinValue;
        }
        _byReceiveId.TryRemove(new KeyValuePair<uint, LinkPeer?>(link.Session.ReceiveLinkId, link));
        forwarder.Counters.OnExpiredLink();
        Log.PeerCredentialExpired(logger, peer, DateTimeOffset.FromUnixTimeSeconds((long)Math.Min(link.Session.Peer.NotAfter, long.MaxValue / 2)));
        server.RefreshAllLinks();
        link.Session.Dispose();
    }

    /// <summary>Negotiates every established link again, so the peers learn this gateway's renewed credential.</summary>
    internal void RenegotiateAll()
    {
        foreach (var (peer, state) in _links)
        {
            if (state.Established is null) continue;
            lock (state.Gate) state.OfferedAt = long.MinValue;
            Renegotiate(peer, state, idle: false);
        }
    }

    /// <summary>Starts a rekey of every link this gateway offered (the periodic trigger, on demand).</summary>
    internal void RekeyOfferedLinks()
    {
        foreach (var (peer, state) in _links)
        {
            if (state.Established?.Session.Initiator?.Request() is { } rekey) Send(peer, LinkMessageKind.Rekey, ControlCodec.Encode(rekey));
        }
    }

    /// <summary>Forgets a link as a restarted gateway would have; for tests of re-negotiation.</summary>
    internal void ForgetLink(string peer)
    {
        if (!_links.TryRemove(peer, out var state)) return;
        if (state.Established is { } link) _byReceiveId.TryRemove(new KeyValuePair<uint, LinkPeer?>(link.Session.ReceiveLinkId, link));
        server.RefreshAllLinks();
    }

    private void SendKeepalive(LinkPeer link, long now)
    {
        link.OnKeepaliveSent(now);
        Span<byte> datagram = stackalloc byte[LinkDatagram.MinSize];
        var n = LinkDatagram.Seal(link.Session.Keys, link.Session.SendLinkId, KeepaliveTag, 0, KeepaliveHeader, [], datagram);
        if (n == 0) return;
        try
        {
            socket.SendTo(datagram[..n], SocketFlags.None, link.Endpoint);
        }
        catch (SocketException)
        {
            // The idle check notices a path that stays broken.
        }
    }

    /// <summary>Nothing arrived for the idle timeout: bring up a fresh link (the old one serves until it is replaced).</summary>
    private void Renegotiate(string peer, LinkState state, bool idle = true)
    {
        lock (state.Gate)
        {
            if (state.OfferedAt != long.MinValue && server.Time.GetElapsedTime(state.OfferedAt) < OfferRetry) return;
            state.OfferedAt = server.Time.GetTimestamp();
            if (idle) Log.LinkIdle(logger, peer);
            if (LinkHandshake.ShouldOffer(_self, peer))
            {
                state.Offerer?.Dispose();
                state.Offerer = new LinkOfferer(server.Keys.Identity, server.Keys.Credential, server.Time);
                Send(peer, LinkMessageKind.Offer, state.Offerer.Offer.ToBytes());
            }
            else
            {
                Send(peer, LinkMessageKind.Accept, []);
            }
        }
    }

    private void OnRekeyMessage(string peer, ReadOnlySpan<byte> payload)
    {
        var link = _links.TryGetValue(peer, out var state) ? state.Established : null;
        if (link is null) return;
        ControlMessage message;
        try
        {
            var frame = new System.Buffers.ReadOnlySequence<byte>(payload.ToArray());
            if (!ControlCodec.TryReadFrame(ref frame, out var body)) return;
            message = ControlCodec.Decode(body);
        }
        catch (ControlFrameException)
        {
            Log.BadLinkMessage(logger, peer, "rekey");
            return;
        }
        switch (message)
        {
            case Rekey rekey when link.Session.Responder is { } responder:
                var ack = responder.OnRekey(rekey);
                if (ack.Succeeded) Send(peer, LinkMessageKind.RekeyAck, ControlCodec.Encode(ack.Value!));
                else Log.LinkRefused(logger, peer, ack.Failure!.Message);
                break;
            case RekeyDone done when link.Session.Responder is { } responder:
                if (responder.OnRekeyDone(done) is { } error) Log.LinkRefused(logger, peer, error.Message);
                else forwarder.Counters.OnLinkRekey();
                break;
            case RekeyAck ackMessage when link.Session.Initiator is { } initiator:
                var completion = initiator.OnAck(ackMessage);
                if (!completion.Succeeded)
                {
                    Log.LinkRefused(logger, peer, completion.Failure!.Message);
                    break;
                }
                forwarder.Counters.OnLinkRekey();
                Send(peer, LinkMessageKind.Rekey, ControlCodec.Encode(completion.Value!.Done));
                if (completion.Value.Next is { } next) Send(peer, LinkMessageKind.Rekey, ControlCodec.Encode(next));
                break;
            default:
                Log.BadLinkMessage(logger, peer, message.Type);
                break;
        }
    }

    /// <summary>
    /// Media from other gateways: one socket, routed by link id, no allocation per datagram. Runs as long as the
    /// gateway: a datagram whose handling throws is counted and logged (at most once a second) and the loop goes
    /// on, since every link of this gateway goes deaf when it ends.
    /// </summary>
    private async Task ReceiveLoopAsync(CancellationToken stopping)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(2048, pinned: true);
        var from = new SocketAddress(socket.AddressFamily);
        while (!stopping.IsCancellationRequested)
        {
            int received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, from, stopping).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                continue; // ICMP unreachable from a vanished peer, or a truncated datagram: not fatal
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (Exception e)
            {
                // Not seen in practice; pause so that a socket failing this way does not spin a core.
                OnLoopFailure(e);
                await Task.Delay(TimeSpan.FromMilliseconds(100), server.Time, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                continue;
            }
            try
            {
                OnDatagram(buffer.AsSpan(0, received));
            }
            catch (Exception e)
            {
                OnLoopFailure(e);
            }
        }
    }

    private void OnDatagram(ReadOnlySpan<byte> datagram)
    {
        if (!LinkDatagram.TryReadLinkId(datagram, out var linkId))
        {
            forwarder.Counters.Drop(GatewayDrop.Malformed);
            return;
        }
        if (!_byReceiveId.TryGetValue(linkId, out var link) || link is null)
        {
            forwarder.Counters.Drop(GatewayDrop.UnknownSession);
            return;
        }
        forwarder.OnLinkDatagram(link, datagram, server.Time.GetTimestamp());
    }

    private void OnLoopFailure(Exception e)
    {
        // A peer that can make every datagram throw must not turn the log into a second flood.
        if (_failures.OnFailure(out var failures)) Log.ReceiveFailed(logger, failures, e);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Link to gateway {Peer} established ({Role})")]
        public static partial void LinkUp(ILogger logger, string peer, string role);

        [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Link with gateway {Peer} refused: {Reason}")]
        public static partial void LinkRefused(ILogger logger, string peer, string reason);

        [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Malformed {Kind} link message from gateway {Peer}")]
        public static partial void BadLinkMessage(ILogger logger, string peer, string kind);

        [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Link to gateway {Peer} received nothing for the idle timeout; re-negotiating")]
        public static partial void LinkIdle(ILogger logger, string peer);

        [LoggerMessage(EventId = 206, Level = LogLevel.Warning,
            Message = "Link to gateway {Peer} dropped: its credential expired at {NotAfter:u}; it comes back when the gateway presents a renewed one")]
        public static partial void PeerCredentialExpired(ILogger logger, string peer, DateTimeOffset notAfter);

        [LoggerMessage(EventId = 205, Level = LogLevel.Error, Message = "Handling a link datagram failed ({Failures} so far); the link receive loop goes on")]
        public static partial void ReceiveFailed(ILogger logger, long failures, Exception exception);

        [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Gateway directory call failed")]
        public static partial void DirectoryFailed(ILogger logger, Exception exception);
    }
}
