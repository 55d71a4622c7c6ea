using System.Threading.Channels;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Gateway;

/// <summary>
/// The framed control stream of one client connection: a reader for the connection's task, and a bounded
/// outbox drained by one writer loop, so room updates, rekeys and replies from several threads never
/// interleave bytes. A client that stops reading fills its outbox and is closed rather than buffered forever.
/// </summary>
internal sealed class ControlStream
{
    private readonly QuicConnection _connection;
    private readonly Channel<ControlMessage> _outbox;
    private readonly ControlFrameReader _reader = new();

    public ControlStream(QuicConnection connection, int capacity)
    {
        _connection = connection;
        _outbox = Channel.CreateBounded<ControlMessage>(new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    }

    /// <summary>Queues a message; false when the outbox is full or closed (the caller closes the connection).</summary>
    public bool TrySend(ControlMessage message) => _outbox.Writer.TryWrite(message);

    /// <summary>No more messages: the writer loop drains what is queued, then ends.</summary>
    public void CompleteSending() => _outbox.Writer.TryComplete();

    /// <summary>Writes queued messages until <see cref="CompleteSending"/> or the connection fails.</summary>
    public async Task RunWriterAsync(CancellationToken cancellationToken)
    {
        await foreach (var message in _outbox.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            await _connection.WriteAsync(ControlCodec.Encode(message), cancellationToken).ConfigureAwait(false);
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
}
