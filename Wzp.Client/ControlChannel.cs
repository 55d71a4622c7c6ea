using System.Buffers;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Client;

/// <summary>
/// The control stream of one connection as whole messages (PROTOCOL.md §3): one reader (the client's control
/// loop or the handshake), writers serialised so frames never interleave.
/// </summary>
internal sealed class ControlChannel(QuicConnection connection)
{
    // A full buffer of this size always holds a complete frame: the codec refuses longer length fields.
    private const int MaxBuffer = ControlCodec.LengthPrefixSize + ControlCodec.MaxFrameLength;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private byte[] _buffer = new byte[8 * 1024];
    private int _start;
    private int _end;

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
        while (true)
        {
            if (_end > _start)
            {
                var sequence = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
                var before = sequence.Length;
                if (ControlCodec.TryReadFrame(ref sequence, out var body))
                {
                    var message = ControlCodec.Decode(body);
                    _start += (int)(before - sequence.Length);
                    return message;
                }
            }
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length) Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxBuffer));
            var read = await connection.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0) return null;
            _end += read;
        }
    }
}
