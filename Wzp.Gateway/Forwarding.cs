using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Wzp.Grains.Routing;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Gateway;

/// <summary>A client of this gateway that completed the handshake and joined a room.</summary>
internal sealed class LocalMember
{
    private long _rekeysStarted;
    private long _rekeysCompleted;
    private long _lastRekeyStart = long.MinValue;
    private int _rekeyWanted;

    private long _congestedUntil = long.MinValue;

    public LocalMember(string room, ushort slot, long joinedEpoch, GatewaySession session, QuicConnection connection, ControlStream control,
        UplinkBudget uplink)
    {
        Uplink = uplink;
        Room = room;
        Slot = slot;
        JoinedEpoch = joinedEpoch;
        Session = session;
        Connection = connection;
        Control = control;
    }

    public string Room { get; }

    public ushort Slot { get; }

    /// <summary>The room epoch at which this member's keys were fresh.</summary>
    public long JoinedEpoch { get; }

    public GatewaySession Session { get; }

    public QuicConnection Connection { get; }

    public ControlStream Control { get; }

    /// <summary>What this member may send; checked before its datagrams are opened.</summary>
    public UplinkBudget Uplink { get; }

    /// <summary>
    /// True while a recent datagram to this member was refused by its connection (congestion window full, or the
    /// connection closing): the forwarder then drops without sealing, so a congested recipient costs no AEAD.
    /// Read and written with plain accesses from the forwarding threads; a stale read costs one seal or one drop.
    /// </summary>
    public bool IsCongested(long now) => now < Volatile.Read(ref _congestedUntil) || Connection.IsClosed;

    public void OnRefused(long now, long backoff) => Volatile.Write(ref _congestedUntil, now + backoff);

    /// <summary>Orders <c>joined</c> before any <c>roomUpdate</c> of this member (see <see cref="Ready"/>).</summary>
    public Lock Gate { get; } = new();

    /// <summary>
    /// Set, under <see cref="Gate"/>, once <c>joined</c> is queued. Room changes before that are already in the
    /// member list <c>joined</c> carries, read under the same lock; room changes after it go out as updates.
    /// </summary>
    public bool Ready { get; set; }

    /// <summary>Set, under <see cref="Gate"/>, once the room removed this member and the gateway cut it off.</summary>
    public bool Evicted { get; set; }

    private volatile bool _muted;

    /// <summary>
    /// An administrator muted the member (the room's record says so): its uplink is dropped and counted as
    /// <c>muted</c>. Read by the receive path for every datagram, written when the room changes.
    /// </summary>
    public bool Muted
    {
        get => _muted;
        set => _muted = value;
    }

    public long RekeysStarted => Interlocked.Read(ref _rekeysStarted);

    public long RekeysCompleted => Interlocked.Read(ref _rekeysCompleted);

    /// <summary>Asks for a rekey; <see cref="StartRekeyIfDue"/> starts it once the debounce window allows.</summary>
    public void WantRekey() => Volatile.Write(ref _rekeyWanted, 1);

    /// <summary>Starts a wanted (or due) rekey if none started within <paramref name="debounce"/>; false when the outbox is stuck.</summary>
    public bool StartRekeyIfDue(TimeProvider time, TimeSpan debounce)
    {
        var due = RekeyTriggers.IsDue(Session.Keys) && !Session.Rekeys.InProgress;
        if (Volatile.Read(ref _rekeyWanted) == 0 && !due) return true;
        var now = time.GetTimestamp();
        if (Interlocked.Read(ref _lastRekeyStart) != long.MinValue && time.GetElapsedTime(Interlocked.Read(ref _lastRekeyStart), now) < debounce && !due)
            return true;
        Volatile.Write(ref _rekeyWanted, 0);
        Interlocked.Exchange(ref _lastRekeyStart, now);
        var rekey = Session.Rekeys.Request();
        if (rekey is null) return true; // one is in progress: the initiator runs exactly one more after it
        Interlocked.Increment(ref _rekeysStarted);
        return Control.TrySend(rekey);
    }

    /// <summary>Handles the client's ack; sends rekeyDone and, when requests coalesced meanwhile, the next rekey.</summary>
    public Error? OnRekeyAck(RekeyAck ack)
    {
        var step = Session.Rekeys.OnAck(ack);
        if (!step.Succeeded) return step.Failure;
        Interlocked.Increment(ref _rekeysCompleted);
        if (!Control.TrySend(step.Value!.Done)) return new Error(ErrorCodes.Busy, "control stream stalled");
        if (step.Value.Next is { } next)
        {
            Interlocked.Increment(ref _rekeysStarted);
            if (!Control.TrySend(next)) return new Error(ErrorCodes.Busy, "control stream stalled");
        }
        return null;
    }
}

/// <summary>A gateway-to-gateway link as the forwarding path sees it.</summary>
internal sealed class LinkPeer
{
    private long _lastReceived;
    private long _lastKeepalive;

    public LinkPeer(string peerId, LinkSession session, SocketAddress endpoint, TimeProvider time)
    {
        PeerId = peerId;
        Session = session;
        Endpoint = endpoint;
        EstablishedAt = time.GetTimestamp();
        _lastReceived = EstablishedAt;
    }

    public string PeerId { get; }

    public LinkSession Session { get; }

    public SocketAddress Endpoint { get; }

    public long EstablishedAt { get; }

    public long LastReceived => Interlocked.Read(ref _lastReceived);

    public void OnReceived(long now) => Interlocked.Exchange(ref _lastReceived, now);

    public long LastKeepalive => Interlocked.Read(ref _lastKeepalive);

    public void OnKeepaliveSent(long now) => Interlocked.Exchange(ref _lastKeepalive, now);
}

/// <summary>
/// Who receives a room's media on this gateway: an immutable snapshot, swapped whole on every change so the
/// forwarding path reads it without a lock.
/// </summary>
internal sealed class RoomFanout(string room)
{
    private volatile Recipients _recipients = Recipients.Empty;

    public string Room { get; } = room;

    public ulong Tag { get; } = LinkDatagram.RoomTag(room);

    public Recipients Current => _recipients;

    public void Swap(Func<Recipients, Recipients> update)
    {
        lock (this)
        {
            _recipients = update(_recipients);
        }
    }

    /// <param name="Locals">Members connected here.</param>
    /// <param name="Links">Gateways with members of the room, to send its media to.</param>
    /// <param name="Routing">
    /// The room's members by slot and gateway, as this gateway last learned them: a link may send media only from
    /// slots of its own gateway's members. Null until the first routing table arrives.
    /// </param>
    internal sealed record Recipients(ImmutableArray<LocalMember> Locals, ImmutableArray<LinkPeer> Links, RoomRouting? Routing)
    {
        public static readonly Recipients Empty = new([], [], null);
    }
}

/// <summary>
/// The per-packet work: open with the sender's hop key, seal once per local recipient with its own key and
/// once per remote gateway with the link key. No allocation, no lock, no grain call and no log line per packet;
/// the plaintext lives on the stack for the forwarding step and is wiped after it.
/// </summary>
internal sealed class Forwarder(GatewayCounters counters, GatewayHistograms histograms, Socket linkSocket, TimeProvider time)
{
    /// <summary>
    /// How long a recipient whose connection refused a datagram is skipped before the next try. QUIC frees window
    /// only as acknowledgements arrive (an RTT, milliseconds even on loopback), so datagrams sealed meanwhile would
    /// mostly be refused too; 2 ms loses at most a fraction of one voice frame interval (20 ms) per stream.
    /// </summary>
    private readonly long _congestionBackoff = Math.Max(1, time.TimestampFrequency / 500);

    private readonly ConcurrentDictionary<string, RoomFanout> _rooms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ulong, RoomFanout> _byTag = new();

    public GatewayCounters Counters => counters;

    private readonly Lock _membership = new();

    public RoomFanout? Find(string room) => _rooms.GetValueOrDefault(room);

    public ICollection<RoomFanout> Rooms => _rooms.Values;

    /// <summary>Adds a member to its room's recipients and returns the room's fanout.</summary>
    public RoomFanout AddLocal(LocalMember member)
    {
        lock (_membership)
        {
            var fanout = _rooms.GetOrAdd(member.Room, static r => new RoomFanout(r));
            _byTag.TryAdd(fanout.Tag, fanout);
            fanout.Swap(r => r with { Locals = r.Locals.Add(member) });
            counters.SetRooms(_rooms.Count);
            return fanout;
        }
    }

    /// <summary>Removes a member; a room left without local members is forgotten.</summary>
    public void RemoveLocal(LocalMember member)
    {
        lock (_membership)
        {
            if (!_rooms.TryGetValue(member.Room, out var fanout)) return;
            fanout.Swap(r => r with { Locals = r.Locals.Remove(member) });
            if (fanout.Current.Locals.IsEmpty)
            {
                _rooms.TryRemove(fanout.Room, out _);
                _byTag.TryRemove(fanout.Tag, out _);
            }
            counters.SetRooms(_rooms.Count);
        }
    }

    /// <summary>Sets the remote gateways a room's media goes to, and the routing that says what each may send.</summary>
    public void SetLinks(string room, ImmutableArray<LinkPeer> links, RoomRouting routing)
    {
        lock (_membership)
        {
            if (_rooms.TryGetValue(room, out var fanout)) fanout.Swap(r => r with { Links = links, Routing = routing });
        }
    }

    /// <summary>An uplink datagram from a local member.</summary>
    public void OnUplink(LocalMember sender, ReadOnlySpan<byte> datagram, RoomFanout fanout)
    {
        var received = histograms.Timestamp(); // the handler runs at receipt
        if (!sender.Uplink.TryTake(received))
        {
            // Before the open: a flood's excess costs this comparison and nothing else.
            counters.Drop(GatewayDrop.UplinkLimit);
            return;
        }
        Span<byte> plaintext = stackalloc byte[MediaDatagram.MaxSize];
        var reason = MediaDatagram.Open(sender.Session.Keys, datagram, plaintext, out var length, out _);
        if (reason != DropReason.None)
        {
            // A replay, or a quality report too short, is refused after the AEAD wrote the plaintext.
            CryptographicOperations.ZeroMemory(plaintext[..Math.Clamp(datagram.Length - MediaDatagram.MinSize, 0, plaintext.Length)]);
            counters.Drop(reason);
            return;
        }
        var payload = plaintext[..length];
        var header = datagram[..MediaHeader.Size];
        var recipients = fanout.Current;
        SendToLocals(recipients.Locals, sender.Slot, header, payload, except: sender, received);
        if (!recipients.Links.IsEmpty) SendToLinks(recipients.Links, fanout.Tag, sender.Slot, header, payload);
        histograms.RecordForward(received, ForwardPath.Client);
        CryptographicOperations.ZeroMemory(payload);
    }

    /// <summary>
    /// A datagram from another gateway's link. Forwarded only into a room where that gateway has members and only
    /// from one of their slots: a peer (compromised, or simply confused about a room) can speak for its own
    /// members, never inject into other rooms or pose as members of other gateways.
    /// </summary>
    public void OnLinkDatagram(LinkPeer link, ReadOnlySpan<byte> datagram, long now)
    {
        Span<byte> plaintext = stackalloc byte[LinkDatagram.MaxSize];
        var reason = LinkDatagram.Open(link.Session.Keys, datagram, plaintext, out var length, out var tag, out var source);
        if (reason != DropReason.None)
        {
            CryptographicOperations.ZeroMemory(plaintext[..Math.Clamp(datagram.Length - LinkDatagram.MinSize, 0, plaintext.Length)]);
            counters.Drop(reason);
            return;
        }
        link.OnReceived(now);
        var payload = plaintext[..length];
        if (tag != LinkManager.KeepaliveTag)
        {
            var drop = Admit(link, tag, source, out var fanout);
            if (drop is { } refused)
                counters.Drop(refused);
            else
            {
                SendToLocals(fanout!.Current.Locals, source, datagram.Slice(19, MediaHeader.Size), payload, except: null, now);
                histograms.RecordForward(now, ForwardPath.Link);
            }
        }
        CryptographicOperations.ZeroMemory(payload);
    }

    /// <summary>Null when <paramref name="link"/> may send media from <paramref name="source"/> into the room tagged <paramref name="tag"/>.</summary>
    private GatewayDrop? Admit(LinkPeer link, ulong tag, ushort source, out RoomFanout? fanout)
    {
        if (!_byTag.TryGetValue(tag, out fanout)) return GatewayDrop.UnknownSession;
        var routing = fanout.Current.Routing;
        if (routing is not null && routing.BySlot.TryGetValue(source, out var member) && member.GatewayId == link.PeerId) return null;
        return routing is not null && routing.ByGateway.ContainsKey(link.PeerId) ? GatewayDrop.ForeignSource : GatewayDrop.ForeignRoom;
    }

    private void SendToLocals(ImmutableArray<LocalMember> locals, ushort source, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload,
        LocalMember? except, long now)
    {
        Span<byte> sealedBuffer = stackalloc byte[MediaDatagram.MaxSize];
        foreach (var member in locals)
        {
            if (ReferenceEquals(member, except) || !member.Session.ReceivesMedia) continue;
            // The congestion check comes before the seal: a recipient that cannot take the datagram costs no AEAD.
            if (member.IsCongested(now))
            {
                counters.Drop(GatewayDrop.Congestion);
                continue;
            }
            var n = MediaDatagram.Seal(member.Session.Keys, source, header, payload, sealedBuffer);
            if (n == 0 || !member.Connection.SendDatagram(sealedBuffer[..n]))
            {
                if (n != 0) member.OnRefused(now, _congestionBackoff);
                counters.Drop(GatewayDrop.Congestion);
                continue;
            }
            counters.OnForwarded(n);
        }
    }

    private void SendToLinks(ImmutableArray<LinkPeer> links, ulong tag, ushort source, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        Span<byte> sealedBuffer = stackalloc byte[LinkDatagram.MaxSize];
        foreach (var link in links)
        {
            var n = LinkDatagram.Seal(link.Session.Keys, link.Session.SendLinkId, tag, source, header, payload, sealedBuffer);
            if (n == 0) continue;
            try
            {
                linkSocket.SendTo(sealedBuffer[..n], SocketFlags.None, link.Endpoint);
                counters.OnLinkForwarded();
            }
            catch (SocketException)
            {
                counters.Drop(GatewayDrop.Congestion); // a full socket buffer or an unreachable peer loses this datagram only
            }
        }
    }
}
