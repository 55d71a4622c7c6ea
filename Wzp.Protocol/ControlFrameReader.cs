using System.Buffers;

namespace Wzp.Protocol;

/// <summary>
/// Reassembles control frames from a byte stream: write what the transport delivered into
/// <see cref="GetWriteMemory"/>, <see cref="Advance"/> by its length, then take whole messages with
/// <see cref="TryRead"/>. No I/O of its own; one reader at a time.
/// </summary>
public sealed class ControlFrameReader
{
    // A full buffer of this size always holds a complete frame: the codec refuses longer length fields first.
    private const int MaxBuffer = ControlCodec.LengthPrefixSize + ControlCodec.MaxFrameLength;

    private byte[] _buffer = new byte[4096];
    private int _start;
    private int _end;

    /// <summary>Takes the next whole message if one is buffered.</summary>
    /// <exception cref="ControlFrameException">An over-size length, bad JSON or no type.</exception>
    public bool TryRead(out ControlMessage? message)
    {
        message = null;
        var buffered = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
        if (!ControlCodec.TryReadFrame(ref buffered, out var body)) return false;
        message = ControlCodec.Decode(body);
        _start = _end - (int)buffered.Length;
        return true;
    }

    /// <summary>Free space for the next read, after compacting (and growing up to one frame) as needed.</summary>
    public Memory<byte> GetWriteMemory()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length) Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxBuffer));
        return _buffer.AsMemory(_end);
    }

    /// <summary>Records that <paramref name="count"/> bytes were written into <see cref="GetWriteMemory"/>.</summary>
    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _end);
        _end += count;
    }
}
