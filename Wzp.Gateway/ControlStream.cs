using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Gateway;

/// <summary>
/// The framed control stream of one client connection: a reader for the connection's task, and a bounded
/// outbox drained by one writer loop, so room updates, rekeys and replies from several threads never
/// interleave bytes. A client that stops reading fills its outbox and is closed rather than buffered forever.
/// </summary>
internal sealed partial class ControlStream
{
    private readonly QuicConnection _connection;
    private readonly GatewayCounters _counters;
    private readonly ILogger _logger;
    private readonly Channel<ControlMessage> _outbox;
    private readonly ControlFrameReader _reader = new(assembleParts: false); // clients send no member lists

    public ControlStream(QuicConnection connection, int capacity, GatewayCounters counters, ILogger logger)
    {
        _connection = connection;
        _counters = counters;
        _logger = logger;
        _outbox = Channel.CreateBounded<ControlMessage>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Queues a message; false when the outbox is full or closed (the caller closes the connection).</summary>
    public bool TrySend(ControlMessage message) => _outbox.Writer.TryWrite(message);

    /// <summary>No more messages: the writer loop drains what is queued, then ends.</summary>
    public void CompleteSending() => _outbox.Writer.TryComplete();

    /// <summary>
    /// Writes queued messages (a member list over one frame in parts, back to back) until
    /// <see cref="CompleteSending"/> or the connection ends. Never throws: a message that cannot be written would
    /// leave the client deaf to its room while it still looked connected, so any failure other than the
    /// connection going away is logged, counted, told to the client and closes the connection.
    /// </summary>
    public async Task RunWriterAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var message in _outbox.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                foreach (var frame in ControlCodec.EncodeFrames(message))
                    await _connection.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or QuicException or ObjectDisposedException)
        {
            // The connection went away or the gateway is stopping: nothing is left to tell.
        }
        catch (Exception e)
        {
            _counters.OnLoopFailure(GatewayLoop.ControlWriter);
            Log.WriterFailed(_logger, _connection.RemoteEndPoint, e);
            _outbox.Writer.TryComplete();
            await FailAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task FailAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _connection.WriteAsync(ControlCodec.Encode(new Error(ErrorCodes.Internal, "the gateway could not send a control message; reconnect")),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or QuicException or ObjectDisposedException)
        {
            // Closing below is all that is left.
        }
        await _connection.CloseAsync(ClientConnection.CloseProtocolError, "control writer failed").ConfigureAwait(false);
    }

    /// <summary>Reads the next message; null when the peer finished the stream.</summary>
    /// <exception cref="ControlFrameException">A frame over the limit, bad JSON or no type.</exception>
    public async ValueTask<ControlMessage?> ReadAsync(CancellationToken cancellationToken)
    {
        ControlMessage? message;
        while (!_reader.TryRead(out message))
        {
            var read = await _connection.ReadAsync(_reader.GetWriteMemory(), cancellationToken).ConfigureAwait(false);
            if (read == 0) return null;
            _reader.Advance(read);
        }
        return message;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "Control writer to {Remote} failed; closing the connection")]
        public static partial void WriterFailed(ILogger logger, System.Net.IPEndPoint remote, Exception exception);
    }
}
