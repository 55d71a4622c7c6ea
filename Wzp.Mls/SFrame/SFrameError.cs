namespace Wzp.Mls.SFrame;

/// <summary>
/// Why a frame was not sealed or not opened. Opening never throws on what arrives from the network: every
/// refusal is one of these, so a receive loop can count drops by reason.
/// </summary>
public enum SFrameError
{
    None = 0,

    /// <summary>Fewer bytes than the config byte announces for the KID and CTR.</summary>
    TruncatedHeader,

    /// <summary>A KID not in its shortest form (RFC 9605 §4.3: a value below 8 in the config byte, else no leading zero byte).</summary>
    NonMinimalKeyId,

    /// <summary>A CTR not in its shortest form.</summary>
    NonMinimalCounter,

    /// <summary>A header but fewer bytes after it than the suite's tag.</summary>
    TruncatedCiphertext,

    /// <summary>No key for the frame's KID in this direction (a receive key for opening, a send key for sealing).</summary>
    UnknownKeyId,

    /// <summary>MLS key management: the KID's epoch bits name no installed epoch (never installed, or retired).</summary>
    UnknownEpoch,

    /// <summary>MLS key management: the KID names this member as the sender; its keys only encrypt (RFC 9605 §4.4.1).</summary>
    SenderIsSelf,

    /// <summary>The tag did not verify: forged, corrupted, other metadata, or another key.</summary>
    Authentication,

    /// <summary>The CTR was already accepted under this KID, or is older than the replay window.</summary>
    Replay,

    /// <summary>The send key has used every CTR value; it must be replaced (a new epoch) before sealing again.</summary>
    CounterExhausted,
}

/// <summary>Thrown by the throwing decoder <see cref="SFrameHeader.Read"/>, and by nothing on the frame path.</summary>
public sealed class SFrameFormatException : FormatException
{
    public SFrameFormatException(SFrameError error)
        : base($"Malformed SFrame header: {error}.")
    {
        Error = error;
    }

    public SFrameError Error { get; }
}
