using System.Buffers;

namespace Wzp.Protocol;

/// <summary>
/// Reassembles control frames from a byte stream: write what the transport delivered into
/// <see cref="GetWriteMemory"/>, <see cref="Advance"/> by its length, then take whole messages with
/// <see cref="TryRead"/>. A <c>joined</c> or <c>roomUpdate</c> sent in parts (docs/protocol.md §5.5) comes out
/// as one message once its last part arrived. No I/O of its own; one reader at a time.
/// </summary>
/// <param name="assembleParts">
/// False on the gateway, which never receives member lists: parts are then returned as they are, and a client
/// cannot make the gateway hold an endless list.
/// </param>
public sealed class ControlFrameReader(bool assembleParts = true)
{
    // A full buffer of this size always holds a complete frame: the codec refuses longer length fields first.
    private const int MaxBuffer = ControlCodec.LengthPrefixSize + ControlCodec.MaxFrameLength;

    /// <summary>A list in parts may name every slot of a room, and leave and join each once.</summary>
    private const int MaxAssembledItems = 2 * ushort.MaxValue;

    private byte[] _buffer = new byte[4096];
    private int _start;
    private int _end;
    private ControlMessage? _first;
    private List<MemberInfo>? _members;
    private List<int>? _left;

    /// <summary>Takes the next whole message if one is buffered.</summary>
    /// <exception cref="ControlFrameException">An over-size length, bad JSON, no type, or a list in parts interrupted.</exception>
    public bool TryRead(out ControlMessage? message)
    {
        while (true)
        {
            message = null;
            var buffered = new ReadOnlySequence<byte>(_buffer, _start, _end - _start);
            if (!ControlCodec.TryReadFrame(ref buffered, out var body)) return false;
            var decoded = ControlCodec.Decode(body);
            _start = _end - (int)buffered.Length;
            message = assembleParts ? Assemble(decoded) : decoded;
            if (message is not null) return true;
        }
    }

    /// <summary>The whole message, or null while parts of a member list are still due.</summary>
    private ControlMessage? Assemble(ControlMessage part)
    {
        if (_first is null)
        {
            switch (part)
            {
                case Joined { More: true } joined:
                    _first = joined;
                    _members = [.. joined.Members ?? []];
                    return null;
                case RoomUpdate { More: true } update:
                    _first = update;
                    _members = [.. update.Joined ?? []];
                    _left = [.. update.Left ?? []];
                    return null;
                default:
                    return part;
            }
        }
        var more = false;
        switch (part)
        {
            case Joined joined when _first is Joined first && first.Room == joined.Room && first.Slot == joined.Slot && first.Epoch == joined.Epoch:
                _members!.AddRange(joined.Members ?? []);
                more = joined.More;
                break;
            case RoomUpdate update when _first is RoomUpdate:
                _members!.AddRange(update.Joined ?? []);
                _left!.AddRange(update.Left ?? []);
                more = update.More;
                break;
            default:
                throw new ControlFrameException(ControlFrameError.BadMessage, $"a '{_first.Type}' in parts was interrupted by '{part.Type}'");
        }
        if (_members!.Count + (_left?.Count ?? 0) > MaxAssembledItems)
            throw new ControlFrameException(ControlFrameError.BadMessage, $"a '{_first.Type}' in parts lists more than {MaxAssembledItems} entries");
        if (more) return null;
        ControlMessage whole = _first switch
        {
            Joined first => first with { Members = _members, More = false },
            _ => new RoomUpdate(_members, _left!),
        };
        _first = null;
        _members = null;
        _left = null;
        return whole;
    }

    /// <summary>Free space for the next read, after compacting (and growing up to one frame) as needed.</summary>
    public Memory<byte> GetWriteMemory()
    {
        // Control frames carry the token and the handshake: bytes already decoded are wiped, not left behind in the
        // buffer (or in an outgrown one) for as long as the connection lives.
        if (_start > 0)
        {
            var kept = _end - _start;
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, kept);
            _buffer.AsSpan(kept, _end - kept).Clear();
            _end = kept;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            var outgrown = _buffer;
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxBuffer));
            Array.Clear(outgrown);
        }
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
