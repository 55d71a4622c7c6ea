using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.KeySchedule;

/// <summary>The confirmed and interim transcript hashes (RFC 9420 §8.2) and the confirmation tag (§6.1).</summary>
public static class TranscriptHash
{
    /// <summary>confirmed_transcript_hash = Hash(interim_transcript_hash of the previous epoch || ConfirmedTranscriptHashInput).</summary>
    public static byte[] Confirmed(CipherSuite suite, ReadOnlySpan<byte> previousInterim, AuthenticatedContent commit)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(commit);
        var input = commit.ConfirmedTranscriptHashInput();
        var buffer = new byte[previousInterim.Length + input.Length];
        previousInterim.CopyTo(buffer);
        input.CopyTo(buffer.AsSpan(previousInterim.Length));
        return suite.Hash(buffer);
    }

    /// <summary>interim_transcript_hash = Hash(confirmed_transcript_hash || InterimTranscriptHashInput { confirmation_tag }).</summary>
    public static byte[] Interim(CipherSuite suite, ReadOnlySpan<byte> confirmed, ReadOnlySpan<byte> confirmationTag)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var writer = new TlsWriter(confirmed.Length + confirmationTag.Length + 4);
        writer.WriteFixed(confirmed);
        writer.WriteOpaque(confirmationTag);
        return suite.Hash(writer.WrittenSpan);
    }

    /// <summary>confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash).</summary>
    public static byte[] ConfirmationTag(CipherSuite suite, ReadOnlySpan<byte> confirmationKey, ReadOnlySpan<byte> confirmed)
    {
        ArgumentNullException.ThrowIfNull(suite);
        return suite.Mac(confirmationKey, confirmed);
    }
}
