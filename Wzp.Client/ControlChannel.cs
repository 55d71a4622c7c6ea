using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client;

/// <summary>
/// The control stream of one connection as whole messages (PROTOCOL.md §3): one reader (the client's control
/// loop or the handshake), writers serialised so frames never interleave.
/// </summary>
internal sealed class ControlChannel(QuicConnection connection)
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ControlFrameReader _reader = new();

    public async Task SendAsync(ControlMessage message, CancellationToken cancellationToken)
    {
        var frame = ControlCodec.Encode(message);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await connection.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next message, or null when the gateway ended the stream.</summary>
    /// <exception cref="ControlFrameException">The gateway sent a frame that cannot be read.</exception>
    /// <exception cref="QuicException">The connection closed.</exception>
    public async Task<ControlMessage?> ReceiveAsync(CancellationToken cancellationToken)
    {
        ControlMessage? message;
        while (!_reader.TryRead(out message))
        {
            var read = await connection.ReadAsync(_reader.GetWriteMemory(), cancellationToken).ConfigureAwait(false);
            if (read == 0) return null;
            _reader.Advance(read);
        }
        return message;
    }
}
