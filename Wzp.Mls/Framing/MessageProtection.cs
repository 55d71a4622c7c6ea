using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Framing;

/// <summary>Why a PublicMessage or PrivateMessage was refused; each names the RFC 9420 §6 check that failed.</summary>
public enum UnprotectError
{
    None,
    /// <summary>The message is for another group.</summary>
    WrongGroup,
    /// <summary>The message is for another epoch than the keys given.</summary>
    WrongEpoch,
    /// <summary>A member's PublicMessage whose membership tag is missing or does not verify (§6.2).</summary>
    BadMembershipTag,
    /// <summary>The FramedContentTBS signature does not verify with the sender's key (§6.1).</summary>
    BadSignature,
    /// <summary>The sender is not a member known to the caller.</summary>
    UnknownSender,
    /// <summary>The encrypted sender data does not open (§6.3.2).</summary>
    SenderDataUndecryptable,
    /// <summary>The sender data opened but is not a SenderData, or names a leaf outside the tree.</summary>
    MalformedSenderData,
    /// <summary>The key generation was already used, or is outside the retained or forward window (§9.2).</summary>
    GenerationUnavailable,
    /// <summary>The content ciphertext does not open (§6.3.1).</summary>
    ContentUndecryptable,
    /// <summary>The content opened but is not a PrivateMessageContent of its content type (or has non-zero padding).</summary>
    MalformedContent,
    /// <summary>A commit without a confirmation tag, or another auth-data shape the content type forbids.</summary>
    MalformedAuthData,
    /// <summary>The sender type may not send this content type (e.g. application data in a PublicMessage from a non-member).</summary>
    SenderNotAllowed,
}

/// <summary>The authenticated content recovered from a protected message.</summary>
public sealed record UnprotectedMessage(FramedContent Content, FramedContentAuthData Auth, WireFormat WireFormat)
{
    public AuthenticatedContent ToAuthenticatedContent() => new(WireFormat, Content, Auth);
}

/// <summary>
/// Message framing and protection (RFC 9420 §6): signing content, PublicMessage membership tags, and
/// PrivateMessage encryption under the secret tree with encrypted sender data. Senders here are members; the
/// caller resolves a leaf index to its signature key.
/// </summary>
public static class MessageProtection
{
    private const string SignLabel = "FramedContentTBS";

    /// <summary>Signs <paramref name="content"/> for <paramref name="wireFormat"/> (the FramedContentTBS of §6.1).</summary>
    public static byte[] Sign(CipherSuite suite, FramedContent content, WireFormat wireFormat, GroupContext groupContext, ReadOnlySpan<byte> signaturePrivateKey)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(content);
        return suite.SignWithLabel(signaturePrivateKey, SignLabel, content.ToBeSigned(wireFormat, groupContext));
    }

    public static bool VerifySignature(CipherSuite suite, FramedContent content, FramedContentAuthData auth, WireFormat wireFormat, GroupContext groupContext, ReadOnlySpan<byte> signaturePublicKey)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(auth);
        return suite.VerifyWithLabel(signaturePublicKey, SignLabel, content.ToBeSigned(wireFormat, groupContext), auth.Signature);
    }

    /// <summary>
    /// Builds a PublicMessage: signature, then for member senders the membership tag over AuthenticatedContentTBM.
    /// <paramref name="confirmationTag"/> is required for commits and must be null otherwise. Application data is
    /// refused: RFC 9420 §6.2 requires it to travel as a PrivateMessage.
    /// </summary>
    public static PublicMessage ProtectPublic(CipherSuite suite, FramedContent content, GroupContext groupContext, ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> membershipKey, byte[]? confirmationTag = null)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(content);
        if (content.ContentType == ContentType.Application)
            throw new InvalidOperationException("Application data must be sent as a PrivateMessage (RFC 9420 §6.2).");
        if (CheckSenderForContent(content) != UnprotectError.None)
            throw new InvalidOperationException($"A {content.Sender.Type} sender cannot send {content.ContentType} content.");
        CheckConfirmationTag(content, confirmationTag);
        var auth = new FramedContentAuthData(Sign(suite, content, WireFormat.PublicMessage, groupContext, signaturePrivateKey), confirmationTag);
        var message = new PublicMessage(content, auth, null);
        if (content.Sender.Type != SenderType.Member) return message;
        return message with { MembershipTag = suite.Mac(membershipKey, message.ToBeMaced(groupContext)) };
    }

    /// <summary>
    /// Verifies a PublicMessage (§6.2): group and epoch, the sender type allowed for the content type, the
    /// membership tag for member senders, the confirmation tag's presence for commits, then the signature.
    /// <paramref name="signatureKeyOf"/> resolves the signer: a member's leaf, an entry of external_senders, or for
    /// new members the leaf in the commit's path or the Add's key package; null when the sender is unknown.
    /// </summary>
    public static bool TryUnprotectPublic(CipherSuite suite, PublicMessage message, GroupContext groupContext, ReadOnlySpan<byte> membershipKey, Func<FramedContent, byte[]?> signatureKeyOf, [NotNullWhen(true)] out UnprotectedMessage? result, out UnprotectError error)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(groupContext);
        ArgumentNullException.ThrowIfNull(signatureKeyOf);
        result = null;
        var content = message.Content;
        error = CheckGroupAndEpoch(content.GroupId, content.Epoch, groupContext);
        if (error != UnprotectError.None) return false;
        error = CheckSenderForContent(content);
        if (error != UnprotectError.None) return false;
        if (content.Sender.Type == SenderType.Member
            && (message.MembershipTag is null || !suite.VerifyMac(membershipKey, message.ToBeMaced(groupContext), message.MembershipTag)))
        {
            error = UnprotectError.BadMembershipTag;
            return false;
        }
        if ((content.ContentType == ContentType.Commit) != (message.Auth.ConfirmationTag is not null))
        {
            error = UnprotectError.MalformedAuthData;
            return false;
        }
        var key = signatureKeyOf(content);
        if (key is null)
        {
            error = UnprotectError.UnknownSender;
            return false;
        }
        if (!VerifySignature(suite, content, message.Auth, WireFormat.PublicMessage, groupContext, key))
        {
            error = UnprotectError.BadSignature;
            return false;
        }
        result = new UnprotectedMessage(content, message.Auth, WireFormat.PublicMessage);
        return true;
    }

    /// <summary>
    /// Encrypts a member's content as a PrivateMessage (§6.3): signs, takes the next key of the sender's handshake
    /// or application ratchet, seals PrivateMessageContent with a random reuse guard, then seals SenderData.
    /// </summary>
    public static PrivateMessage ProtectPrivate(CipherSuite suite, FramedContent content, GroupContext groupContext, ReadOnlySpan<byte> signaturePrivateKey, SecretTree secretTree, ReadOnlySpan<byte> senderDataSecret, byte[]? confirmationTag = null, int paddingLength = 0)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(secretTree);
        if (content.Sender.Type != SenderType.Member)
            throw new InvalidOperationException("Only members send PrivateMessages (RFC 9420 §6.3).");
        ArgumentOutOfRangeException.ThrowIfNegative(paddingLength);
        CheckConfirmationTag(content, confirmationTag);
        var auth = new FramedContentAuthData(Sign(suite, content, WireFormat.PrivateMessage, groupContext, signaturePrivateKey), confirmationTag);
        var plaintext = new PrivateMessageContent(content.Body, auth, paddingLength).Encode();

        var header = new PrivateMessage(content.GroupId, content.Epoch, content.ContentType, content.AuthenticatedData, [], []);
        var kind = content.ContentType == ContentType.Application ? RatchetKind.Application : RatchetKind.Handshake;
        using var secret = secretTree.Next(content.Sender.Index, kind);
        var reuseGuard = RandomNumberGenerator.GetBytes(4);
        var nonce = GuardNonce(secret.Nonce, reuseGuard);
        var ciphertext = suite.Seal(secret.Key, nonce, header.ContentAad(), plaintext);
        CryptographicOperations.ZeroMemory(plaintext);
        CryptographicOperations.ZeroMemory(nonce);

        var senderData = Tls.Encode(new SenderData(content.Sender.Index, secret.Generation, reuseGuard));
        var (senderDataKey, senderDataNonce) = SenderDataSecrets.Derive(suite, senderDataSecret, ciphertext);
        var encryptedSenderData = suite.Seal(senderDataKey, senderDataNonce, header.SenderDataAad(), senderData);
        CryptographicOperations.ZeroMemory(senderDataKey);
        return header with { EncryptedSenderData = encryptedSenderData, Ciphertext = ciphertext };
    }

    /// <summary>
    /// Decrypts and verifies a PrivateMessage: sender data, the sender's key for that generation (consumed from
    /// the secret tree), content, then signature with the key <paramref name="signatureKeyOf"/> gives the leaf.
    /// </summary>
    public static bool TryUnprotectPrivate(CipherSuite suite, PrivateMessage message, GroupContext groupContext, SecretTree secretTree, ReadOnlySpan<byte> senderDataSecret, Func<uint, byte[]?> signatureKeyOf, [NotNullWhen(true)] out UnprotectedMessage? result, out UnprotectError error)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(groupContext);
        ArgumentNullException.ThrowIfNull(secretTree);
        ArgumentNullException.ThrowIfNull(signatureKeyOf);
        result = null;
        error = CheckGroupAndEpoch(message.GroupId, message.Epoch, groupContext);
        if (error != UnprotectError.None) return false;

        var (senderDataKey, senderDataNonce) = SenderDataSecrets.Derive(suite, senderDataSecret, message.Ciphertext);
        var opened = suite.TryOpen(senderDataKey, senderDataNonce, message.SenderDataAad(), message.EncryptedSenderData, out var senderDataBytes);
        CryptographicOperations.ZeroMemory(senderDataKey);
        if (!opened)
        {
            error = UnprotectError.SenderDataUndecryptable;
            return false;
        }
        if (!Tls.TryDecode<SenderData>(senderDataBytes, out var senderData) || senderData.LeafIndex >= secretTree.LeafCount)
        {
            error = UnprotectError.MalformedSenderData;
            return false;
        }
        var kind = message.ContentType == ContentType.Application ? RatchetKind.Application : RatchetKind.Handshake;
        if (!secretTree.TryGet(senderData.LeafIndex, kind, senderData.Generation, out var secret))
        {
            error = UnprotectError.GenerationUnavailable;
            return false;
        }
        byte[]? plaintext;
        using (secret)
        {
            var nonce = GuardNonce(secret.Nonce, senderData.ReuseGuard);
            opened = suite.TryOpen(secret.Key, nonce, message.ContentAad(), message.Ciphertext, out plaintext);
            CryptographicOperations.ZeroMemory(nonce);
        }
        if (!opened)
        {
            error = UnprotectError.ContentUndecryptable;
            return false;
        }
        PrivateMessageContent decoded;
        try
        {
            decoded = PrivateMessageContent.Decode(plaintext, message.ContentType);
        }
        catch (MlsDecodeException)
        {
            error = UnprotectError.MalformedContent;
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
        var content = new FramedContent(message.GroupId, message.Epoch, Sender.Member(senderData.LeafIndex), message.AuthenticatedData, decoded.Body);
        var key = signatureKeyOf(senderData.LeafIndex);
        if (key is null)
        {
            error = UnprotectError.UnknownSender;
            return false;
        }
        if (!VerifySignature(suite, content, decoded.Auth, WireFormat.PrivateMessage, groupContext, key))
        {
            error = UnprotectError.BadSignature;
            return false;
        }
        result = new UnprotectedMessage(content, decoded.Auth, WireFormat.PrivateMessage);
        return true;
    }

    /// <summary>
    /// Who may send what (RFC 9420 §6.2, §12.1.8, §12.4.3.2): application data only from members, external senders
    /// only proposals, new_member_proposal only proposals, new_member_commit only commits.
    /// </summary>
    private static UnprotectError CheckSenderForContent(FramedContent content) => (content.Sender.Type, content.ContentType) switch
    {
        (SenderType.Member, _) => UnprotectError.None,
        (SenderType.External or SenderType.NewMemberProposal, ContentType.Proposal) => UnprotectError.None,
        (SenderType.NewMemberCommit, ContentType.Commit) => UnprotectError.None,
        _ => UnprotectError.SenderNotAllowed,
    };

    private static UnprotectError CheckGroupAndEpoch(ReadOnlySpan<byte> groupId, ulong epoch, GroupContext groupContext)
    {
        if (!groupId.SequenceEqual(groupContext.GroupId)) return UnprotectError.WrongGroup;
        return epoch == groupContext.Epoch ? UnprotectError.None : UnprotectError.WrongEpoch;
    }

    private static void CheckConfirmationTag(FramedContent content, byte[]? confirmationTag)
    {
        if ((content.ContentType == ContentType.Commit) != (confirmationTag is not null))
            throw new ArgumentException("A commit needs a confirmation tag and other content must not have one.", nameof(confirmationTag));
    }

    /// <summary>XORs the reuse guard into the first four bytes of the ratchet nonce (§6.3.1).</summary>
    private static byte[] GuardNonce(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> reuseGuard)
    {
        var guarded = nonce.ToArray();
        for (var i = 0; i < 4; i++) guarded[i] ^= reuseGuard[i];
        return guarded;
    }
}
