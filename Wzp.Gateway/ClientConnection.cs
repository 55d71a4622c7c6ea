using System.Net;
using Microsoft.Extensions.Logging;
using Wzp.Grains;
using Wzp.Grains.Routing;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Gateway;

/// <summary>
/// One client, from QUIC connection to departure: the handshake (bounded, off the forwarding path), the join
/// through the room grain only after a valid confirm, the control loop, and leaving the room on leave or loss.
/// </summary>
internal sealed partial class ClientConnection(GatewayServer server, QuicConnection connection, ILogger logger)
{
    /// <summary>QUIC application error codes this gateway closes with.</summary>
    public const ulong CloseNormal = 0;
    public const ulong CloseProtocolError = 1;

    private readonly GatewayOptions _options = server.Options;

    public async Task RunAsync(CancellationToken stopping)
    {
        connection.SetDatagramHandler(server.DropUnknownDatagram);
        // Datagrams that arrived before the handler was set waited in the connection's queue.
        GatewayServer.DrainQueued(connection, _ => server.Counters.Drop(GatewayDrop.UnknownSession));
        var control = new ControlStream(connection, _options.MaxQueuedControlMessages, server.Counters, logger);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        var writer = control.RunWriterAsync(lifetime.Token);
        GatewaySession? session = null;
        LocalMember? member = null;
        var closeCode = CloseNormal;
        var reason = "bye";
        var handshakeStarted = server.Histograms.Timestamp();
        Admissions.Ticket? admission = null;
        try
        {
            admission = server.Admissions.TryEnter(connection.RemoteEndPoint.Address);
            if (admission is null)
            {
                server.Counters.OnHandshakeFailure();
                server.Histograms.RecordHandshake(handshakeStarted, succeeded: false);
                control.TrySend(new Error(ErrorCodes.Busy, "too many clients connecting; retry shortly"));
                closeCode = CloseProtocolError;
                reason = "busy";
                return;
            }
            session = await HandshakeAsync(control, admission, lifetime.Token).ConfigureAwait(false);
            server.Histograms.RecordHandshake(handshakeStarted, session is not null);
            if (session is null)
            {
                closeCode = CloseProtocolError;
                reason = "handshake failed";
                return;
            }
            // The place is held until the join ends, so joins in progress are bounded like handshakes.
            member = await JoinAsync(session, control).ConfigureAwait(false);
            admission.Dispose();
            admission = null;
            if (member is null)
            {
                closeCode = CloseProtocolError;
                reason = "join refused";
                return;
            }
            var error = await ControlLoopAsync(member, control, lifetime.Token).ConfigureAwait(false);
            if (error is not null)
            {
                control.TrySend(error);
                closeCode = CloseProtocolError;
                reason = error.Code;
            }
        }
        catch (ControlFrameException e)
        {
            if (session is null) server.Histograms.RecordHandshake(handshakeStarted, succeeded: false);
            control.TrySend(e.ToErrorMessage());
            closeCode = CloseProtocolError;
            reason = "bad control frame";
        }
        catch (Exception e) when (e is OperationCanceledException or QuicException or IOException or ObjectDisposedException)
        {
            // The connection went away or the gateway is stopping: leave quietly.
        }
        catch (Exception e)
        {
            Log.ClientFailed(logger, connection.RemoteEndPoint, e);
            control.TrySend(new Error(ErrorCodes.Internal, "internal error"));
            closeCode = CloseProtocolError;
            reason = "internal error";
        }
        finally
        {
            admission?.Dispose();
            connection.SetDatagramHandler(server.DropUnknownDatagram);
            if (member is not null) await server.LeaveAsync(member).ConfigureAwait(false);
            control.CompleteSending();
            // Let queued messages (an error above all) reach the client before the close.
            await Task.WhenAny(writer, Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None)).ConfigureAwait(false);
            lifetime.Cancel();
            await connection.CloseAsync(closeCode, reason).ConfigureAwait(false);
            session?.Dispose();
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<GatewaySession?> HandshakeAsync(ControlStream control, Admissions.Ticket admission, CancellationToken cancellationToken)
    {
        var address = connection.RemoteEndPoint.Address;
        if (server.Tokens is { } tokens && !tokens.Admits(address))
        {
            // Before any work of the handshake: an address that guessed wrong too often gets nothing to guess with.
            server.Counters.OnHandshakeFailure();
            control.TrySend(new Error(ErrorCodes.Unauthorized, "too many wrong tokens from this address; retry later"));
            return null;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, admission.PushedOut);
        var started = server.Time.GetTimestamp();
        timeout.CancelAfter(_options.HelloTimeout < _options.HandshakeTimeout ? _options.HelloTimeout : _options.HandshakeTimeout);
        using var handshake = new GatewayHandshake(server.Keys.Identity, server.Keys.Credential, server.HandshakeOptions, server.Time);
        try
        {
            var result = await StepsAsync(handshake, control, timeout, admission, started).ConfigureAwait(false);
            if (result.Succeeded) return result.Value;
            // Only a confirm whose MAC verified reaches the token check, so this is a wrong token and not noise.
            if (result.Failure!.Code == ErrorCodes.Unauthorized) server.Tokens?.OnWrongToken(address);
            server.Counters.OnHandshakeFailure();
            Log.HandshakeFailed(logger, connection.RemoteEndPoint, result.Failure!.Code);
            control.TrySend(result.Failure);
            return null;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            server.Counters.OnHandshakeFailure();
            control.TrySend(admission.PushedOut.IsCancellationRequested
                ? new Error(ErrorCodes.Busy, "too many clients connecting and no hello from this one yet; retry shortly")
                : new Error(ErrorCodes.BadRequest, "handshake timed out"));
            return null;
        }
        catch (ControlFrameException)
        {
            server.Counters.OnHandshakeFailure();
            throw;
        }
    }

    private async Task<Step<GatewaySession>> StepsAsync(GatewayHandshake handshake, ControlStream control, CancellationTokenSource timeout,
        Admissions.Ticket admission, long started)
    {
        // Before the handshake completes only hello and confirm are accepted (PROTOCOL.md §3).
        if (await control.ReadAsync(timeout.Token).ConfigureAwait(false) is not Hello hello)
            return Step<GatewaySession>.Fail(ErrorCodes.BadRequest, "expected hello");
        admission.SaidHello();
        var left = _options.HandshakeTimeout - server.Time.GetElapsedTime(started);
        timeout.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        var welcome = handshake.OnHello(hello);
        if (!welcome.Succeeded) return Step<GatewaySession>.Fail(welcome.Failure!.Code, welcome.Failure.Message);
        control.TrySend(welcome.Value!);
        if (await control.ReadAsync(timeout.Token).ConfigureAwait(false) is not Confirm confirm)
            return Step<GatewaySession>.Fail(ErrorCodes.BadRequest, "expected confirm");
        return handshake.OnConfirm(confirm);
    }

    private async Task<LocalMember?> JoinAsync(GatewaySession session, ControlStream control)
    {
        var fingerprint = Grains.Fingerprint.FromBytes(session.ClientFingerprint.Bytes);
        JoinResult result;
        try
        {
            // The last moment the grant is accepted, as the handshake checked it: the room refuses a kicked identity
            // until then, and this gateway removes the member then (GatewayServer.RemoveExpiredGrants).
            var grantExpires = session.Grant is { } grant ? grant.Expires + _options.Grants.ClockSkew : (DateTimeOffset?)null;
            result = await server.Agent.Rooms.JoinAsync(session.Room, fingerprint, session.Alias, listener: !session.SendsMedia, grantExpires).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.JoinFailed(logger, e);
            control.TrySend(new Error(ErrorCodes.Busy, "the cluster is unavailable; retry shortly"));
            session.Dispose();
            return null;
        }
        if (result.Status != JoinStatus.Joined)
        {
            control.TrySend(result.Status switch
            {
                JoinStatus.RoomFull => new Error(ErrorCodes.RoomFull, $"room '{session.Room}' is full"),
                JoinStatus.Kicked => new Error(ErrorCodes.Kicked, session.Grant is null
                    ? $"an administrator removed this identity from room '{session.Room}'; it cannot rejoin while the room is open"
                    : $"an administrator removed this identity from room '{session.Room}'; it cannot rejoin while the room is open, until the grant it was removed with expires"),
                JoinStatus.Invalid => new Error(ErrorCodes.BadRequest, "room name or alias refused by the cluster"),
                _ => new Error(ErrorCodes.Busy, "gateway not registered with the cluster yet; retry shortly"),
            });
            session.Dispose();
            return null;
        }
        var member = new LocalMember(session.Room, result.Slot, result.Epoch, session, connection, control,
            new UplinkBudget(_options.MemberUplinkRate, _options.MemberUplinkBurst, server.Time.TimestampFrequency, server.Time.GetTimestamp()))
        {
            // Before its uplink is connected: an identity muted in this room stays muted when it rejoins.
            Muted = result.Snapshot?.Members.FirstOrDefault(m => m.Slot == result.Slot)?.Muted ?? false,
        };
        server.AddMember(member);
        Interlocked.MemoryBarrier(); // pairs with GatewayServer.OnRoomChanged: the member is visible before the table is read
        lock (member.Gate)
        {
            // Read after the member became visible to room changes: a change published before this point is in
            // the list, one published after it waits for the lock and goes out as a roomUpdate after 'joined'.
            var routing = server.Agent.Rooms.Get(session.Room);
            if (routing is null || !routing.BySlot.TryGetValue(result.Slot, out var self) || self.GatewayId != _options.GatewayId)
            {
                // The room removed the member between its join and now (a change handled before Ready was set).
                server.CutOff(member);
                control.TrySend(new Error(ErrorCodes.Unauthorized, $"removed from room '{session.Room}' by the cluster while joining"));
                return null;
            }
            // A mute of the room's changes this member skipped while not ready (they are in this list) applies too.
            member.Muted = self.Muted;
            var members = routing.Members.Select(ToInfo).ToList();
            control.TrySend(new Joined(session.Room, result.Slot, (uint)result.Epoch, members));
            member.Ready = true;
            // Epochs the room moved to while this member was joining, before it was in the fanout, ratchet it too.
            if (routing.Epoch > member.JoinedEpoch) server.OweRekey(member, routing.Epoch);
        }
        Log.Joined(logger, session.Room, result.Slot, session.ClientFingerprint.ToString());
        return member;
    }

    private async Task<Error?> ControlLoopAsync(LocalMember member, ControlStream control, CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await control.ReadAsync(cancellationToken).ConfigureAwait(false);
            Log.ControlReceived(logger, member.Slot, message?.Type ?? "end of stream");
            switch (message)
            {
                case null or Leave:
                    return null;
                case RekeyAck ack:
                    if (member.OnRekeyAck(ack) is { } error) return error;
                    server.Counters.OnRekey();
                    break;
                case Ping:
                    if (!control.TrySend(new Pong())) return new Error(ErrorCodes.Busy, "control stream stalled");
                    break;
                case Kick kick:
                    if (server.Kick(member, kick) is { } refused) return refused;
                    break;
                case Mute mute:
                    if (server.Mute(member, mute.Slot, muted: true) is { } muteRefused) return muteRefused;
                    break;
                case Unmute unmute:
                    if (server.Mute(member, unmute.Slot, muted: false) is { } unmuteRefused) return unmuteRefused;
                    break;
                case Hello or Confirm:
                    return new Error(ErrorCodes.BadRequest, $"'{message.Type}' after the handshake");
                default:
                    break; // unknown or gateway-bound types are ignored after the handshake (PROTOCOL.md §3)
            }
        }
    }

    internal static MemberInfo ToInfo(RoomMember member) => new(member.Slot, member.Fingerprint.ToArray(), member.Alias, member.Muted, member.Listener);

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Member {Slot} ({Fingerprint}) joined room {Room}")]
        public static partial void Joined(ILogger logger, string room, ushort slot, string fingerprint);

        [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Handshake from {Remote} failed: {Code}")]
        public static partial void HandshakeFailed(ILogger logger, IPEndPoint remote, string code);

        [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Join through the room grain failed")]
        public static partial void JoinFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 104, Level = LogLevel.Debug, Message = "Member {Slot}: '{Type}' received")]
        public static partial void ControlReceived(ILogger logger, ushort slot, string type);

        [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "Client connection from {Remote} failed")]
        public static partial void ClientFailed(ILogger logger, IPEndPoint remote, Exception exception);
    }
}
