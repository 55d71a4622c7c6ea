using System.Text.Json.Serialization;

namespace Wzp.Protocol;

/// <summary>
/// A control message (PROTOCOL.md §4-§7): one JSON object with a string member <c>type</c>, camelCase member
/// names, byte strings in standard base64. <see cref="ControlCodec"/> reads and writes them.
/// </summary>
public abstract record ControlMessage
{
    protected ControlMessage(string type) => Type = type;

    /// <summary>The <c>type</c> member; written first so that strict peers can dispatch on it.</summary>
    [JsonPropertyOrder(-1)]
    public string Type { get; }
}

/// <summary>Client to gateway: opens the handshake (§5.1).</summary>
public sealed record Hello(
    int Version,
    byte[] IdentityKey,
    byte[] EphemeralKey,
    byte[] Nonce,
    string Room,
    string Alias,
    byte[] Signature) : ControlMessage("hello");

/// <summary>Gateway to client: the gateway's credential, ephemeral key and transcript signature (§5.2).</summary>
public sealed record Welcome(GatewayCredential Credential, byte[] EphemeralKey, byte[] Nonce, byte[] Signature) : ControlMessage("welcome");

/// <summary>
/// Client to gateway: proves the client derived the same keys, and carries the access token under that proof
/// (§5.4), so only a gateway the client verified ever sees it.
/// </summary>
public sealed record Confirm(byte[] Mac, string Token) : ControlMessage("confirm");

/// <summary>
/// One member as clients see it. The fingerprint is 16 bytes (base64 on the wire). <see cref="Muted"/> and
/// <see cref="Listener"/> (docs/protocol.md §11) are left out when false, so a member list without them reads as before.
/// </summary>
public sealed record MemberInfo(
    int Slot,
    byte[] Fingerprint,
    string Alias,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool Muted = false,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool Listener = false);

/// <summary>
/// Gateway to client: admitted to the room (§5.5). A member list over one frame travels in parts
/// (docs/protocol.md §5.5): every part but the last has <see cref="More"/> set, and the reader hands on the whole.
/// </summary>
public sealed record Joined(
    string Room,
    int Slot,
    uint Epoch,
    IReadOnlyList<MemberInfo> Members,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool More = false) : ControlMessage("joined");

/// <summary>Gateway to client: members that joined and slots that left; in parts like <see cref="Joined"/>.</summary>
public sealed record RoomUpdate(
    IReadOnlyList<MemberInfo> Joined,
    IReadOnlyList<int> Left,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool More = false) : ControlMessage("roomUpdate");

/// <summary>Gateway to client: starts a rekey to <see cref="Epoch"/> (§7.1).</summary>
public sealed record Rekey(uint Epoch, byte[] EphemeralKey, byte[] Signature) : ControlMessage("rekey");

/// <summary>Client to gateway: the client's half of the rekey (§7.2).</summary>
public sealed record RekeyAck(uint Epoch, byte[] EphemeralKey, byte[] Mac) : ControlMessage("rekeyAck");

/// <summary>Gateway to client: the gateway now sends under <see cref="Epoch"/>; the client may too (§7.4).</summary>
public sealed record RekeyDone(uint Epoch) : ControlMessage("rekeyDone");

public sealed record Leave() : ControlMessage("leave");

/// <summary>Extension (docs/protocol.md §11): a member with an <c>admin</c> grant removes the member in <paramref name="Slot"/>.</summary>
public sealed record Kick(int Slot) : ControlMessage("kick");

/// <summary>Extension (docs/protocol.md §11): a member with an <c>admin</c> grant mutes the member in <paramref name="Slot"/>.</summary>
public sealed record Mute(int Slot) : ControlMessage("mute");

/// <summary>Extension (docs/protocol.md §11): a member with an <c>admin</c> grant unmutes the member in <paramref name="Slot"/>.</summary>
public sealed record Unmute(int Slot) : ControlMessage("unmute");

public sealed record Ping() : ControlMessage("ping");

public sealed record Pong() : ControlMessage("pong");

/// <summary>Gateway to client, sent before closing. <see cref="Code"/> is one of <see cref="ErrorCodes"/>.</summary>
public sealed record Error(string Code, string Message) : ControlMessage("error");

/// <summary>A message whose type this version does not know; ignored after the handshake (§3).</summary>
public sealed record UnknownMessage(string TypeName) : ControlMessage(TypeName);

/// <summary>The stable kebab-case codes of <see cref="Error"/>.</summary>
public static class ErrorCodes
{
    public const string BadSignature = "bad-signature";
    public const string BadMac = "bad-mac";
    public const string RoomFull = "room-full";
    public const string Unauthorized = "unauthorized";
    public const string UnsupportedVersion = "unsupported-version";
    public const string BadRequest = "bad-request";
    public const string Busy = "busy";
    public const string Internal = "internal";
    /// <summary>Extension (docs/protocol.md §11): an administrator removed this member from the room.</summary>
    public const string Kicked = "kicked";
    /// <summary>Extension (docs/protocol.md §11): the member's grant expired while it was in the room; rejoin with a fresh one.</summary>
    public const string GrantExpired = "grant-expired";
    /// <summary>Extension (docs/protocol.md §11): an operator closed the room.</summary>
    public const string RoomClosed = "room-closed";
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true,
    AllowOutOfOrderMetadataProperties = true,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(Hello))]
[JsonSerializable(typeof(Welcome))]
[JsonSerializable(typeof(Confirm))]
[JsonSerializable(typeof(Joined))]
[JsonSerializable(typeof(RoomUpdate))]
[JsonSerializable(typeof(Rekey))]
[JsonSerializable(typeof(RekeyAck))]
[JsonSerializable(typeof(RekeyDone))]
[JsonSerializable(typeof(Leave))]
[JsonSerializable(typeof(Kick))]
[JsonSerializable(typeof(Mute))]
[JsonSerializable(typeof(Unmute))]
[JsonSerializable(typeof(Ping))]
[JsonSerializable(typeof(Pong))]
[JsonSerializable(typeof(Error))]
[JsonSerializable(typeof(GatewayCredential))]
internal sealed partial class ProtocolJson : JsonSerializerContext;
