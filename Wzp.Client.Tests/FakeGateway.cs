using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client.Tests;

/// <summary>
/// The gateway side of PROTOCOL.md driven in-process with Wzp.Protocol's state machines over a real QUIC
/// listener on loopback port 0: handshake, joined and room updates, a one-room relay that re-seals every
/// uplink datagram for every other member (as the real gateway does hop by hop), rekeys on demand, pong,
/// leave. Enough to prove the client's whole path without the cluster.
/// </summary>
internal sealed class FakeGateway : IAsyncDisposable
{
    private readonly QuicListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;
    private readonly ConcurrentDictionary<int, FakeSession> _members = new();
    private readonly Channel<FakeSession> _sessions = Channel.CreateUnbounded<FakeSession>();
    private readonly string _directory;

    // Joins and leaves one at a time, as a room grain orders them: every member then sees every change, and its
    // joined before any roomUpdate.
    private readonly SemaphoreSlim _membership = new(1, 1);
    private int _nextSlot;

    private FakeGateway(Identity cluster, string directory, int port)
    {
        Cluster = cluster;
        _directory = directory;
        var now = DateTimeOffset.UtcNow;
        Credential = GatewayCredential.Issue(cluster, "fake-gateway", GatewayIdentity.PublicKey, now.AddHours(-1), now.AddDays(1));
        _listener = QuicListener.Start(new QuicListenerOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, port),
            CertificatePath = Path.Combine(directory, "cert.pem"),
            PrivateKeyPath = Path.Combine(directory, "key.pem"),
        });
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public Identity Cluster { get; }

    public Identity GatewayIdentity { get; } = Identity.Generate();

    public GatewayCredential Credential { get; }

    public GatewayAddress Address => new("127.0.0.1", _listener.LocalEndPoint.Port);

    /// <summary>Refuses a hello with this error instead of welcoming it (e.g. <c>room-full</c>); null admits.</summary>
    public Func<Hello, Error?> Admission { get; set; } = _ => null;

    /// <summary>The token a confirm must carry, checked as the real gateway does (after the MAC); null accepts any.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Refuses after a valid confirm instead of sending <c>joined</c>; null admits.</summary>
    public Func<Hello, Error?> JoinAdmission { get; set; } = _ => null;

    /// <summary>Members currently joined, by slot.</summary>
    public IReadOnlyDictionary<int, FakeSession> Members => _members;

    /// <summary>Every session that completed the handshake, in order.</summary>
    public ChannelReader<FakeSession> Sessions => _sessions.Reader;

    /// <param name="cluster">The cluster key; a fresh one by default. The gateway owns it.</param>
    /// <param name="port">UDP port on 127.0.0.1; 0 (the default) picks a free one.</param>
    public static FakeGateway Start(Identity? cluster = null, int port = 0)
    {
        var directory = Directory.CreateTempSubdirectory("wzp-fake-gateway-").FullName;
        return new FakeGateway(cluster ?? Identity.Generate(), directory, port);
    }

    public async Task<FakeSession> NextSessionAsync(TimeSpan? timeout = null) =>
        await _sessions.Reader.ReadAsync().AsTask().WaitAsync(timeout ?? TimeSpan.FromSeconds(30));

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var connection = await _listener.AcceptAsync(_stop.Token);
                _ = Task.Run(() => ServeAsync(connection));
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ChannelClosedException)
        {
        }
    }

    private async Task ServeAsync(QuicConnection connection)
    {
        var control = new ControlChannel(connection);
        var required = RequiredToken;
        using var handshake = new GatewayHandshake(GatewayIdentity, Credential,
            new GatewayHandshakeOptions { TokenValidator = required is null ? null : token => token == required });
        FakeSession? session = null;
        try
        {
            if (await control.ReceiveAsync(_stop.Token) is not Hello hello) return;
            if (Admission(hello) is { } refusal)
            {
                await RefuseAsync(connection, control, refusal);
                return;
            }
            var welcome = handshake.OnHello(hello);
            if (!welcome.Succeeded)
            {
                await RefuseAsync(connection, control, welcome.Failure!);
                return;
            }
            await control.SendAsync(welcome.Value!, _stop.Token);
            if (await control.ReceiveAsync(_stop.Token) is not Confirm confirm) return;
            var established = handshake.OnConfirm(confirm);
            if (!established.Succeeded)
            {
                await RefuseAsync(connection, control, established.Failure!);
                return;
            }
            if (JoinAdmission(hello) is { } late)
            {
                established.Value!.Dispose();
                await RefuseAsync(connection, control, late);
                return;
            }
            var slot = Interlocked.Increment(ref _nextSlot);
            session = new FakeSession(this, connection, control, established.Value!, slot, hello.Alias);
            connection.SetDatagramHandler(session.OnDatagram);
            await _membership.WaitAsync(_stop.Token);
            try
            {
                var others = _members.Values.ToList();
                _members[slot] = session;
                await control.SendAsync(new Joined(hello.Room, slot, 0, [.. _members.Values.OrderBy(m => m.Slot).Select(m => m.Info)]), _stop.Token);
                foreach (var other in others) await other.TrySendAsync(new RoomUpdate([session.Info], []));
            }
            finally
            {
                _membership.Release();
            }
            await _sessions.Writer.WriteAsync(session);
            await session.RunAsync(_stop.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or QuicException or ControlFrameException or ObjectDisposedException)
        {
        }
        finally
        {
            if (session is not null) await RemoveAsync(session);
            await connection.DisposeAsync();
        }
    }

    private static async Task RefuseAsync(QuicConnection connection, ControlChannel control, Error error)
    {
        await control.SendAsync(error, CancellationToken.None);
        await WaitAcknowledgedAsync(connection);
        await connection.CloseAsync(1, error.Code);
    }

    /// <summary>So that a message written right before a close is not cut off by it.</summary>
    internal static async Task WaitAcknowledgedAsync(QuicConnection connection)
    {
        var deadline = DateTime.UtcNow.AddSeconds(2);
        while (!connection.IsClosed && connection.GetStatistics().StreamBytesUnacknowledged > 0 && DateTime.UtcNow < deadline)
            await Task.Yield();
    }

    internal async Task RemoveAsync(FakeSession session)
    {
        await _membership.WaitAsync();
        try
        {
            if (!_members.TryRemove(new KeyValuePair<int, FakeSession>(session.Slot, session))) return;
            foreach (var other in _members.Values) await other.TrySendAsync(new RoomUpdate([], [session.Slot]));
        }
        finally
        {
            _membership.Release();
        }
    }

    /// <summary>Forwards one opened uplink frame to every other member, re-sealed under each member's own down key.</summary>
    internal void Forward(FakeSession from, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext)
    {
        foreach (var member in _members.Values)
        {
            if (member != from) member.SendMedia((ushort)from.Slot, header, plaintext);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _listener.DisposeAsync();
        try
        {
            await _acceptLoop;
        }
        catch (OperationCanceledException)
        {
        }
        foreach (var member in _members.Values) member.Dispose();
        _sessions.Writer.TryComplete();
        Cluster.Dispose();
        GatewayIdentity.Dispose();
        _stop.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One client's hop on the fake gateway.</summary>
internal sealed class FakeSession : IDisposable
{
    private readonly FakeGateway _gateway;
    private readonly ControlChannel _control;
    private readonly byte[] _plaintext = new byte[MediaDatagram.MaxSize];
    private readonly Channel<ControlMessage> _messages = Channel.CreateUnbounded<ControlMessage>();
    private readonly Channel<MediaFrame> _uplink = Channel.CreateUnbounded<MediaFrame>();
    private readonly Channel<uint> _rekeysDone = Channel.CreateUnbounded<uint>();

    public FakeSession(FakeGateway gateway, QuicConnection connection, ControlChannel control, GatewaySession session, int slot, string alias)
    {
        _gateway = gateway;
        Connection = connection;
        _control = control;
        Session = session;
        Slot = slot;
        Info = new MemberInfo(slot, session.ClientFingerprint.Bytes.ToArray(), alias);
    }

    public QuicConnection Connection { get; }

    public GatewaySession Session { get; }

    public int Slot { get; }

    public MemberInfo Info { get; }

    /// <summary>Control messages the client sent after joining.</summary>
    public ChannelReader<ControlMessage> Messages => _messages.Reader;

    /// <summary>Media the client sent, opened (source is 0 on the uplink).</summary>
    public ChannelReader<MediaFrame> Uplink => _uplink.Reader;

    /// <summary>Drops counted on the uplink.</summary>
    public int Dropped;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await _control.ReceiveAsync(cancellationToken);
            if (message is null) return;
            _messages.Writer.TryWrite(message);
            switch (message)
            {
                case Ping:
                    await _control.SendAsync(new Pong(), cancellationToken);
                    break;
                case RekeyAck ack:
                    var step = Session.Rekeys.OnAck(ack);
                    if (!step.Succeeded)
                    {
                        await _control.SendAsync(step.Failure!, cancellationToken);
                        return;
                    }
                    await _control.SendAsync(step.Value!.Done, cancellationToken);
                    _rekeysDone.Writer.TryWrite(step.Value.Done.Epoch);
                    if (step.Value.Next is { } next) await _control.SendAsync(next, cancellationToken);
                    break;
                case Leave:
                    await _gateway.RemoveAsync(this);
                    return;
            }
        }
    }

    /// <summary>Starts a rekey; completes with the new epoch once the gateway switched (after the client's ack).</summary>
    public async Task<uint> RekeyAsync()
    {
        var rekey = Session.Rekeys.Request() ?? throw new InvalidOperationException("a rekey is already in progress");
        await _control.SendAsync(rekey, CancellationToken.None);
        return await _rekeysDone.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async Task TrySendAsync(ControlMessage message)
    {
        try
        {
            await _control.SendAsync(message, CancellationToken.None);
        }
        catch (Exception e) when (e is QuicException or InvalidOperationException)
        {
        }
    }

    /// <summary>Sends an error and closes, as a gateway does (PROTOCOL.md §4).</summary>
    public async Task FailAsync(string code, string message)
    {
        await _control.SendAsync(new Error(code, message), CancellationToken.None);
        await FakeGateway.WaitAcknowledgedAsync(Connection);
        await Connection.CloseAsync(1, code);
    }

    public void OnDatagram(QuicConnection connection, ReadOnlySpan<byte> datagram)
    {
        var drop = MediaDatagram.Open(Session.Keys, datagram, _plaintext, out var length, out _);
        if (drop != DropReason.None)
        {
            Interlocked.Increment(ref Dropped);
            return;
        }
        MediaHeader.TryRead(datagram, out var header);
        _uplink.Writer.TryWrite(new MediaFrame(0, header, _plaintext.AsSpan(0, length).ToArray(), null));
        _gateway.Forward(this, datagram[..MediaHeader.Size], _plaintext.AsSpan(0, length));
    }

    public bool SendMedia(ushort source, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext)
    {
        Span<byte> datagram = stackalloc byte[MediaDatagram.MaxSize];
        var size = MediaDatagram.Seal(Session.Keys, source, header, plaintext, datagram);
        return size > 0 && Connection.SendDatagram(datagram[..size]);
    }

    /// <summary>Sends raw bytes as a datagram (forgeries, replays).</summary>
    public bool SendRaw(ReadOnlySpan<byte> datagram) => Connection.SendDatagram(datagram);

    public void Dispose() => Session.Dispose();
}
