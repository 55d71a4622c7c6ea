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

    /// <summary>Writes one message: one frame, or a member list over one frame in parts, back to back.</summary>
    public async Task SendAsync(ControlMessage message, CancellationToken cancellationToken)
    {
        var frames = ControlCodec.EncodeFrames(message);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var frame in frames) await connection.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next whole message (parts of a member list come out as one), or null when the gateway ended the stream.</summary>
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
