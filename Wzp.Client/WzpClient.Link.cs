using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client;

public sealed partial class WzpClient
{
    /// <summary>
    /// One established connection: its session keys, its control loop (room updates, rekeys, pongs, errors) and
    /// its timer (pings, wiping retired keys). It ends once, with the reason the supervisor acts on.
    /// </summary>
    private sealed class Link : IAsyncDisposable
    {
        private readonly WzpClient _client;
        private readonly CancellationTokenSource _stop = new();
        private readonly TaskCompletionSource<Exception?> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

        // Datagrams arrive on the one receive loop of this connection's own endpoint, so one buffer serves them all.
        private readonly byte[] _plaintext = new byte[MediaDatagram.MaxSize];
        private Task _controlLoop = Task.CompletedTask;
        private Task _timerLoop = Task.CompletedTask;
        private long _pingSentAt = -1;
        private long _pingRttTicks = -1;
        private int _disposed;

        public Link(WzpClient client, QuicConnection connection, ControlChannel control, ClientSession session)
        {
            _client = client;
            Connection = connection;
            Control = control;
            Session = session;
        }

        public QuicConnection Connection { get; }

        public ControlChannel Control { get; }

        public ClientSession Session { get; }

        public Joined? Joined { get; set; }

        /// <summary>Completes once with the reason the link ended: null for a local leave.</summary>
        public Task<Exception?> Ended => _ended.Task;

        public bool HasEnded => _ended.Task.IsCompleted;

        public TimeSpan? PingRtt
        {
            get
            {
                var ticks = Interlocked.Read(ref _pingRttTicks);
                return ticks < 0 ? null : _client._options.Time.GetElapsedTime(0, ticks);
            }
        }

        public void Start()
        {
            _controlLoop = Task.Run(ControlLoopAsync);
            _timerLoop = Task.Run(TimerLoopAsync);
        }

        public void End(Exception? reason)
        {
            if (_ended.TrySetResult(reason)) _stop.Cancel();
        }

        /// <summary>Waits (bounded) until the gateway acknowledged every control byte, so a <c>leave</c> is not cut off by the close.</summary>
        public async Task WaitStreamAcknowledgedAsync(TimeSpan limit, CancellationToken cancellationToken)
        {
            var deadline = _client._options.Time.GetTimestamp() + (long)(limit.TotalSeconds * _client._options.Time.TimestampFrequency);
            while (!Connection.IsClosed && Connection.GetStatistics().StreamBytesUnacknowledged > 0 && _client._options.Time.GetTimestamp() < deadline)
                await Task.Delay(TimeSpan.FromMilliseconds(5), _client._options.Time, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>Opens one media datagram on the endpoint's receive loop: no allocation but the frame handed to the application.</summary>
        public void OnDatagram(QuicConnection connection, ReadOnlySpan<byte> datagram)
        {
            _client.OnDatagramReceived();
            DropReason drop;
            int length;
            ushort source;
            try
            {
                drop = MediaDatagram.Open(Session.Keys, datagram, _plaintext, out length, out source);
            }
            catch (ObjectDisposedException)
            {
                return; // the link is being torn down
            }
            if (drop != DropReason.None)
            {
                // A replay or a short quality report is refused after the AEAD opened it: the plaintext is there.
                WipePlaintext(datagram.Length);
                _client.OnDropped(drop);
                return;
            }
            MediaHeader.TryRead(datagram, out var header);
            QualityReport? quality = null;
            if (header.HasQualityReport)
            {
                length -= QualityReport.Size;
                QualityReport.TryRead(_plaintext.AsSpan(length), out var report);
                quality = report;
            }
            var frame = new MediaFrame(source, header, _plaintext.AsSpan(0, length).ToArray(), quality);
            WipePlaintext(datagram.Length);
            _client.OnFrame(frame);
        }

        private void WipePlaintext(int datagramLength) =>
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(_plaintext.AsSpan(0, Math.Clamp(datagramLength - MediaDatagram.MinSize, 0, _plaintext.Length)));

        private async Task ControlLoopAsync()
        {
            var token = _stop.Token;
            try
            {
                while (!token.IsCancellationRequested)
                {
                    var message = await Control.ReceiveAsync(token).ConfigureAwait(false);
                    switch (message)
                    {
                        case null:
                            End(new ConnectionLostException("the gateway ended the control stream"));
                            return;
                        case RoomUpdate update:
                            _client.Apply(update);
                            break;
                        case Rekey rekey:
                            var ack = Session.Rekeys.OnRekey(rekey);
                            if (!ack.Succeeded)
                            {
                                await FailAsync(new HandshakeFailedException(ack.Failure!.Code, $"the gateway's rekey was refused: {ack.Failure.Message}")).ConfigureAwait(false);
                                return;
                            }
                            await Control.SendAsync(ack.Value!, token).ConfigureAwait(false);
                            Log.RekeyAcknowledged(_client._logger, rekey.Epoch);
                            break;
                        case RekeyDone done:
                            if (Session.Rekeys.OnRekeyDone(done) is { } refused)
                            {
                                await FailAsync(new HandshakeFailedException(refused.Code, refused.Message)).ConfigureAwait(false);
                                return;
                            }
                            Interlocked.Increment(ref _client._rekeys);
                            Log.Rekeyed(_client._logger, done.Epoch);
                            break;
                        case Pong:
                            var sentAt = Interlocked.Exchange(ref _pingSentAt, -1);
                            if (sentAt >= 0) Interlocked.Exchange(ref _pingRttTicks, _client._options.Time.GetTimestamp() - sentAt);
                            break;
                        case Error error:
                            End(new GatewayErrorException(error.Code, error.Message));
                            return;
                        default:
                            // Unknown types are ignored after the handshake (§3); a repeated joined carries nothing new.
                            break;
                    }
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
            }
            catch (QuicException e)
            {
                End(new ConnectionLostException(DescribeQuicFailure(e.CloseInfo), e));
            }
            catch (ControlFrameException e)
            {
                await FailAsync(new ConnectionLostException($"the gateway sent an unreadable control frame: {e.Message}", e)).ConfigureAwait(false);
            }
            catch (Exception e) when (!token.IsCancellationRequested)
            {
                // Anything else would end this loop unobserved, leaving a link that looks joined but hears nothing.
                await FailAsync(new ConnectionLostException($"the control loop failed: {e.Message}", e)).ConfigureAwait(false);
            }
        }

        private async Task TimerLoopAsync()
        {
            var time = _client._options.Time;
            var pingEvery = _client._options.PingInterval;
            var token = _stop.Token;
            var lastPing = time.GetTimestamp();
            using var timer = new PeriodicTimer(_client._options.MaintenanceInterval < pingEvery ? _client._options.MaintenanceInterval : pingEvery, time);
            try
            {
                while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false))
                {
                    Session.Keys.Maintain();
                    if (time.GetElapsedTime(lastPing) < pingEvery) continue;
                    lastPing = time.GetTimestamp();
                    Interlocked.CompareExchange(ref _pingSentAt, lastPing, -1);
                    await Control.SendAsync(new Ping(), token).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
            }
            catch (ObjectDisposedException) when (token.IsCancellationRequested)
            {
            }
            catch (QuicException e)
            {
                End(new ConnectionLostException(DescribeQuicFailure(e.CloseInfo), e));
            }
            catch (Exception e) when (!token.IsCancellationRequested)
            {
                // Without pings the gateway would drop the connection at its idle timeout with no reason given.
                await FailAsync(new ConnectionLostException($"the ping loop failed: {e.Message}", e)).ConfigureAwait(false);
            }
        }

        /// <summary>The gateway broke the protocol: close with an error code and end with <paramref name="reason"/>.</summary>
        private async Task FailAsync(Exception reason)
        {
            Log.ProtocolFailure(_client._logger, reason.Message);
            End(reason);
            await Connection.CloseAsync(ProtocolErrorCloseCode, "protocol error").ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            End(null);
            Connection.SetDatagramHandler(null);
            await Connection.DisposeAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(_controlLoop, _timerLoop).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or QuicException)
            {
            }
            Session.Dispose();
            _stop.Dispose();
        }
    }
}
