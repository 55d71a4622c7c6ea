using System.Buffers;
using System.Buffers.Binary;
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

    /// <summary>Serializes a message to its JSON body (no length prefix).</summary>
    public static byte[] SerializeBody(ControlMessage message) => message switch
    {
        Hello m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Hello),
        Welcome m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Welcome),
        Confirm m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Confirm),
        Joined m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Joined),
        RoomUpdate m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.RoomUpdate),
        Rekey m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Rekey),
        RekeyAck m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.RekeyAck),
        RekeyDone m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.RekeyDone),
        Leave m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Leave),
        Ping m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Ping),
        Pong m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Pong),
        Error m => JsonSerializer.SerializeToUtf8Bytes(m, ProtocolJson.Default.Error),
        _ => throw new ArgumentException($"Cannot send a {message.GetType().Name}.", nameof(message)),
    };

    /// <summary>A whole frame: the u32 length, then the JSON body.</summary>
    /// <exception cref="ArgumentException">The body would exceed <see cref="MaxFrameLength"/>.</exception>
    public static byte[] Encode(ControlMessage message)
    {
        var body = SerializeBody(message);
        if (body.Length > MaxFrameLength) throw new ArgumentException($"Message over {MaxFrameLength} bytes.", nameof(message));
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
