using Wzp.Protocol;

namespace Wzp.Client;

/// <summary>A member of the room as this client sees it; <see cref="Slot"/> is what media frames carry as their source.</summary>
/// <param name="Slot">The member's slot.</param>
/// <param name="Fingerprint">The member's identity.</param>
/// <param name="Alias">Its display name.</param>
/// <param name="Muted">An administrator muted it: nobody hears it (docs/protocol.md §11).</param>
/// <param name="Listener">Its grant lacks <c>publish</c>: nobody hears it.</param>
public sealed record RoomMember(int Slot, Fingerprint Fingerprint, string Alias, bool Muted = false, bool Listener = false)
{
    public override string ToString()
    {
        var marks = (Muted ? ", muted" : "") + (Listener ? ", listener" : "");
        return Alias.Length > 0 ? $"{Alias} (slot {Slot}, {Fingerprint}{marks})" : $"slot {Slot} ({Fingerprint}{marks})";
    }
}

public enum MemberEventKind
{
    Joined,
    Left,
    /// <summary>A member's flags changed (<see cref="RoomMember.Muted"/>); the event carries its new record.</summary>
    Updated,
}

/// <summary>A member joined, left or was updated (muted, unmuted).</summary>
public sealed record MemberEvent(MemberEventKind Kind, RoomMember Member);

/// <summary>
/// One received media frame: the sender's slot, its plaintext header (relayed unchanged from the sender),
/// the decrypted payload and, when the sender attached one, its quality report.
/// </summary>
public sealed record MediaFrame(int Source, MediaHeader Header, ReadOnlyMemory<byte> Payload, QualityReport? Quality);

/// <summary>Where a client stands.</summary>
public enum ClientState
{
    Connecting,
    Joined,
    /// <summary>The connection dropped; the client is reconnecting with backoff.</summary>
    Reconnecting,
    /// <summary>Left, disposed, or failed for good (see <see cref="WzpClient.Completion"/>).</summary>
    Closed,
}

/// <summary>A snapshot of a client's counters; all counts are totals since <see cref="WzpClient.ConnectAsync"/>.</summary>
/// <param name="SmoothedRtt">QUIC smoothed round-trip time of the current connection.</param>
/// <param name="MinRtt">Smallest QUIC round-trip time of the current connection.</param>
/// <param name="PingRtt">Time from the last <c>ping</c> to its <c>pong</c> (includes the gateway's control loop); null until one returns.</param>
/// <param name="DatagramsSent">Media datagrams handed to QUIC.</param>
/// <param name="SendDropped">Media datagrams not sent: congestion window full, reconnecting, or packet numbers spent.</param>
/// <param name="DatagramsReceived">Media datagrams received (before any check).</param>
/// <param name="FramesDelivered">Frames that passed every check.</param>
/// <param name="DroppedMalformed">Received datagrams too short or with an invalid header.</param>
/// <param name="DroppedUnknownEpoch">Received datagrams under an epoch not installed.</param>
/// <param name="DroppedAuthentication">Received datagrams whose AEAD tag failed.</param>
/// <param name="DroppedReplay">Received datagrams already seen or older than the replay window.</param>
/// <param name="DroppedUnread">Frames dropped because the application did not read them fast enough.</param>
/// <param name="DatagramsLost">QUIC datagrams this side sent that the transport declared lost (current connection).</param>
/// <param name="Epoch">The hop epoch media is sent under.</param>
/// <param name="Rekeys">Rekeys completed.</param>
/// <param name="Reconnects">Times the client re-established the connection after it dropped.</param>
public sealed record WzpClientStatistics(
    TimeSpan SmoothedRtt,
    TimeSpan MinRtt,
    TimeSpan? PingRtt,
    long DatagramsSent,
    long SendDropped,
    long DatagramsReceived,
    long FramesDelivered,
    long DroppedMalformed,
    long DroppedUnknownEpoch,
    long DroppedAuthentication,
    long DroppedReplay,
    long DroppedUnread,
    long DatagramsLost,
    uint Epoch,
    long Rekeys,
    int Reconnects)
{
    /// <summary>All received datagrams dropped by a check.</summary>
    public long DroppedTotal => DroppedMalformed + DroppedUnknownEpoch + DroppedAuthentication + DroppedReplay;
}
