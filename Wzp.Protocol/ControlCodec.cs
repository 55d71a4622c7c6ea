using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Wzp.Protocol;

/// <summary>Why a control frame could not be read. Each maps to an <see cref="Error"/> the caller sends before closing.</summary>
public enum ControlFrameError
{
    /// <summary>Length 0 or over <see cref="ControlCodec.MaxFrameLength"/>.</summary>
    BadLength,
    /// <summary>Not a JSON object, or a member of the wrong JSON type.</summary>
    BadJson,
    /// <summary>No string member <c>type</c>.</summary>
    MissingType,
    /// <summary>A known type with a required member missing or null.</summary>
    BadMessage,
}

/// <summary>A control frame that cannot be accepted; <see cref="ToErrorMessage"/> is what the peer should be told.</summary>
public sealed class ControlFrameException(ControlFrameError error, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public ControlFrameError Error { get; } = error;

    public Error ToErrorMessage() => new(ErrorCodes.BadRequest, Message);
}

/// <summary>
/// Control frames (PROTOCOL.md §3): <c>u32 length (1 to 65 536) ‖ JSON object</c>. Reading validates the
/// length before buffering the body, so an oversize frame is refused without allocating for it.
/// </summary>
public static class ControlCodec
{
    public const int LengthPrefixSize = 4;
    public const int MaxFrameLength = 65_536;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 16 };

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Only what JSON itself requires is escaped (quote, backslash, control characters), so an alias in any
        // script costs its UTF-8 bytes rather than six per character. Control frames never reach an HTML page,
        // which is all the default encoder's extra escaping protects.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Serializes a message to its JSON body (no length prefix).</summary>
    public static byte[] SerializeBody(ControlMessage message)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions)) Serialize(writer, message);
        return buffer.WrittenSpan.ToArray();
    }

    private static void Serialize(Utf8JsonWriter writer, ControlMessage message)
    {
        switch (message)
        {
            case Hello m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Hello); break;
            case Welcome m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Welcome); break;
            case Confirm m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Confirm); break;
            case Joined m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Joined); break;
            case RoomUpdate m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.RoomUpdate); break;
            case Rekey m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Rekey); break;
            case RekeyAck m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.RekeyAck); break;
            case RekeyDone m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.RekeyDone); break;
            case Leave m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Leave); break;
            case Kick m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Kick); break;
            case Mute m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Mute); break;
            case Unmute m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Unmute); break;
            case Ping m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Ping); break;
            case Pong m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Pong); break;
            case Error m: JsonSerializer.Serialize(writer, m, ProtocolJson.Default.Error); break;
            default: throw new ArgumentException($"Cannot send a {message.GetType().Name}.", nameof(message));
        }
    }

    /// <summary>A whole frame: the u32 length, then the JSON body.</summary>
    /// <exception cref="ArgumentException">The body would exceed <see cref="MaxFrameLength"/>; see <see cref="EncodeFrames"/>.</exception>
    public static byte[] Encode(ControlMessage message)
    {
        var body = SerializeBody(message);
        if (body.Length > MaxFrameLength) throw new ArgumentException($"Message over {MaxFrameLength} bytes.", nameof(message));
        return Frame(body);
    }

    /// <summary>
    /// The frames of one message: one frame, or, for a <c>joined</c> or <c>roomUpdate</c> whose member list does not
    /// fit, its parts (docs/protocol.md §5.5): the list cut into consecutive pieces, each part a frame of the same
    /// type with <c>more: true</c> except the last. They must be written back to back, as one message.
    /// </summary>
    /// <exception cref="ArgumentException">Any other message over <see cref="MaxFrameLength"/>.</exception>
    public static IReadOnlyList<byte[]> EncodeFrames(ControlMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var frames = new List<byte[]>(1);
        AddFrames(message, frames);
        return frames;
    }

    private static void AddFrames(ControlMessage message, List<byte[]> frames)
    {
        var body = SerializeBody(message);
        if (body.Length <= MaxFrameLength)
        {
            frames.Add(Frame(body));
            return;
        }
        // Halving until each part fits costs O(n log n) serialization for a list n frames long: a few passes over
        // the largest room, and only when a list is over the limit at all.
        switch (message)
        {
            case Joined { Members.Count: > 1 } joined:
                var half = joined.Members.Count / 2;
                AddFrames(joined with { Members = Slice(joined.Members, 0, half), More = true }, frames);
                AddFrames(joined with { Members = Slice(joined.Members, half, joined.Members.Count - half) }, frames);
                break;
            case RoomUpdate update when update.Left.Count + update.Joined.Count > 1:
                // Cut the sequence left ‖ joined in two: both parts are non-empty, so this always ends.
                var cut = (update.Left.Count + update.Joined.Count) / 2;
                var leftFirst = Math.Min(cut, update.Left.Count);
                var joinedFirst = cut - leftFirst;
                AddFrames(new RoomUpdate(Slice(update.Joined, 0, joinedFirst), Slice(update.Left, 0, leftFirst), More: true), frames);
                AddFrames(new RoomUpdate(Slice(update.Joined, joinedFirst, update.Joined.Count - joinedFirst),
                    Slice(update.Left, leftFirst, update.Left.Count - leftFirst), update.More), frames);
                break;
            default:
                throw new ArgumentException($"'{message.Type}' message over {MaxFrameLength} bytes.", nameof(message));
        }
    }

    private static T[] Slice<T>(IReadOnlyList<T> list, int start, int count)
    {
        var slice = new T[count];
        for (var i = 0; i < count; i++) slice[i] = list[start + i];
        return slice;
    }

    private static byte[] Frame(byte[] body)
    {
        var frame = new byte[LengthPrefixSize + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)body.Length);
        body.CopyTo(frame, LengthPrefixSize);
        return frame;
    }

    /// <summary>
    /// Takes one complete frame off the front of <paramref name="buffer"/> if it holds one.
    /// </summary>
    /// <returns>False when more bytes are needed.</returns>
    /// <exception cref="ControlFrameException">The length field is 0 or over the limit.</exception>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> body)
    {
        body = default;
        if (buffer.Length < LengthPrefixSize) return false;
        Span<byte> prefix = stackalloc byte[LengthPrefixSize];
        buffer.Slice(0, LengthPrefixSize).CopyTo(prefix);
        var length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (length is 0 or > MaxFrameLength)
            throw new ControlFrameException(ControlFrameError.BadLength, $"control frame length {length} outside 1..{MaxFrameLength}");
        if (buffer.Length < LengthPrefixSize + length) return false;
        body = buffer.Slice(LengthPrefixSize, length);
        buffer = buffer.Slice(LengthPrefixSize + length);
        return true;
    }

    /// <summary>Decodes one frame body.</summary>
    /// <returns>The typed message, or <see cref="UnknownMessage"/> for a type this version does not know.</returns>
    /// <exception cref="ControlFrameException">Bad JSON, no <c>type</c>, or a known type missing a member.</exception>
    public static ControlMessage Decode(ReadOnlySequence<byte> body) =>
        body.IsSingleSegment ? Decode(body.FirstSpan) : Decode(body.ToArray());

    /// <inheritdoc cref="Decode(ReadOnlySequence{byte})"/>
    public static ControlMessage Decode(ReadOnlySpan<byte> body)
    {
        if (body.Length is 0 or > MaxFrameLength)
            throw new ControlFrameException(ControlFrameError.BadLength, $"control frame length {body.Length} outside 1..{MaxFrameLength}");
        var type = ReadType(body);
        return type switch
        {
            "hello" => Deserialize(body, ProtocolJson.Default.Hello),
            "welcome" => Deserialize(body, ProtocolJson.Default.Welcome),
            "confirm" => Deserialize(body, ProtocolJson.Default.Confirm),
            "joined" => Deserialize(body, ProtocolJson.Default.Joined),
            "roomUpdate" => Deserialize(body, ProtocolJson.Default.RoomUpdate),
            "rekey" => Deserialize(body, ProtocolJson.Default.Rekey),
            "rekeyAck" => Deserialize(body, ProtocolJson.Default.RekeyAck),
            "rekeyDone" => Deserialize(body, ProtocolJson.Default.RekeyDone),
            "leave" => Deserialize(body, ProtocolJson.Default.Leave),
            "kick" => Deserialize(body, ProtocolJson.Default.Kick),
            "mute" => Deserialize(body, ProtocolJson.Default.Mute),
            "unmute" => Deserialize(body, ProtocolJson.Default.Unmute),
            "ping" => Deserialize(body, ProtocolJson.Default.Ping),
            "pong" => Deserialize(body, ProtocolJson.Default.Pong),
            "error" => Deserialize(body, ProtocolJson.Default.Error),
            _ => new UnknownMessage(type),
        };
    }

    /// <summary>Finds the top-level string member <c>type</c> wherever it sits in the object.</summary>
    private static string ReadType(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new ControlFrameException(ControlFrameError.BadJson, "control frame is not a JSON object");
            string? type = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isType = reader.ValueTextEquals("type"u8);
                reader.Read();
                if (isType && reader.TokenType == JsonTokenType.String) type ??= reader.GetString();
                else reader.Skip();
            }
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                throw new ControlFrameException(ControlFrameError.BadJson, "control frame is not a single JSON object");
            return type ?? throw new ControlFrameException(ControlFrameError.MissingType, "control frame has no string member 'type'");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string that is not valid UTF-8.
            throw new ControlFrameException(ControlFrameError.BadJson, "control frame is not valid JSON", e);
        }
    }

    private static T Deserialize<T>(ReadOnlySpan<byte> body, JsonTypeInfo<T> typeInfo) where T : ControlMessage
    {
        try
        {
            return JsonSerializer.Deserialize(body, typeInfo)
                ?? throw new ControlFrameException(ControlFrameError.BadMessage, $"'{typeof(T).Name}' message is null");
        }
        catch (JsonException e)
        {
            throw new ControlFrameException(ControlFrameError.BadMessage, $"malformed '{typeof(T).Name.ToLowerInvariant()}' message", e);
        }
    }
}
