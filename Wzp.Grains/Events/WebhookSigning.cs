using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Wzp.Grains;

/// <summary>Reads the webhook secret file. Messages name the problem, never the content.</summary>
public static class WebhookSecret
{
    /// <summary>The shortest secret accepted, in characters.</summary>
    public const int MinLength = 16;

    /// <summary>The file's text without surrounding whitespace, as UTF-8 bytes (the HMAC key).</summary>
    public static bool TryLoad(string path, out byte[] key, out string problem)
    {
        key = [];
        string text;
        try
        {
            text = File.ReadAllText(path).Trim();
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            problem = $"cannot be read ({exception.GetType().Name})";
            return false;
        }

        if (text.Length < MinLength)
        {
            problem = $"holds fewer than {MinLength} characters of secret";
            return false;
        }

        key = Encoding.UTF8.GetBytes(text);
        problem = "";
        return true;
    }
}

/// <summary>
/// How a webhook request is signed: <c>Wzp-Signature: v1=</c> the lowercase hex HMAC-SHA256, keyed with the
/// shared secret, of the <c>Wzp-Timestamp</c> header's value (Unix seconds), a dot, and the raw body.
/// Receivers recompute it and compare in constant time, and refuse timestamps far from their clock (replays).
/// </summary>
public static class WebhookSignature
{
    /// <summary>The header with the Unix time (seconds) of the attempt.</summary>
    public const string TimestampHeader = "Wzp-Timestamp";

    /// <summary>The header with the signature.</summary>
    public const string SignatureHeader = "Wzp-Signature";

    /// <summary>The prefix of the signature's value (its version).</summary>
    public const string Prefix = "v1=";

    /// <summary>The <see cref="SignatureHeader"/> value for <paramref name="body"/> sent at <paramref name="timestamp"/>.</summary>
    public static string Sign(ReadOnlySpan<byte> key, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.ASCII.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        hmac.AppendData(prefix);
        hmac.AppendData(body);
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        hmac.GetHashAndReset(mac);
        return Prefix + Convert.ToHexStringLower(mac);
    }

    /// <summary>True when <paramref name="signature"/> is the valid <see cref="SignatureHeader"/> for the timestamp and body.</summary>
    public static bool Verify(ReadOnlySpan<byte> key, string timestamp, ReadOnlySpan<byte> body, string signature)
    {
        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            return false;
        }

        var expected = Encoding.ASCII.GetBytes(Sign(key, seconds, body));
        var actual = Encoding.ASCII.GetBytes(signature);
        return CryptographicOperations.FixedTimeEquals(expected, actual);
    }
}

/// <summary>The JSON body of a webhook request (docs/operations.md, "Room events and webhooks").</summary>
public static class WebhookPayload
{
    /// <summary>The <c>event</c> field of a kind.</summary>
    public static string EventName(RoomActivityKind kind) => kind switch
    {
        RoomActivityKind.RoomStarted => "room_started",
        RoomActivityKind.RoomFinished => "room_finished",
        RoomActivityKind.ParticipantJoined => "participant_joined",
        RoomActivityKind.ParticipantLeft => "participant_left",
        RoomActivityKind.ParticipantKicked => "participant_kicked",
        RoomActivityKind.ParticipantMuted => "participant_muted",
        RoomActivityKind.ParticipantUnmuted => "participant_unmuted",
        _ => "unknown",
    };

    /// <summary>The <c>reason</c> field of a departure.</summary>
    public static string ReasonName(ParticipantLeaveReason reason) => reason switch
    {
        ParticipantLeaveReason.Left => "left",
        ParticipantLeaveReason.Replaced => "replaced",
        ParticipantLeaveReason.Kicked => "kicked",
        ParticipantLeaveReason.GatewayGone => "gateway_gone",
        ParticipantLeaveReason.RekeyTimeout => "rekey_timeout",
        ParticipantLeaveReason.RoomClosed => "room_closed",
        _ => "none",
    };

    /// <summary>The UTF-8 JSON of one event.</summary>
    public static byte[] Serialize(RoomActivity activity)
    {
        ArgumentNullException.ThrowIfNull(activity);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("event", EventName(activity.Kind));
            json.WriteString("room", activity.Room);
            json.WriteString("room_instance", activity.Incarnation.ToString("N"));
            json.WriteNumber("sequence", activity.Sequence);
            json.WriteString("timestamp", activity.Timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
            json.WriteNumber("members", activity.Members);
            if (activity.Slot != 0)
            {
                json.WriteStartObject("participant");
                json.WriteNumber("slot", activity.Slot);
                json.WriteString("fingerprint", activity.Fingerprint?.ToString());
                json.WriteString("alias", activity.Alias);
                json.WriteEndObject();
            }

            if (activity.Kind == RoomActivityKind.ParticipantLeft)
            {
                json.WriteString("reason", ReasonName(activity.Reason));
            }

            if (activity.BySlot != 0)
            {
                json.WriteNumber("by_slot", activity.BySlot);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
