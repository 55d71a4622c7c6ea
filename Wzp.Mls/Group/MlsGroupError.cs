namespace Wzp.Mls.Group;

/// <summary>
/// Why the group layer refused a message, a Welcome or an operation. Each value names the RFC 9420 rule that
/// failed; the section is in its comment.
/// </summary>
public enum MlsGroupError
{
    None,

    // Framing (§6).
    /// <summary>The bytes are not a well-formed MLS structure (§6, §2.1).</summary>
    MalformedMessage,
    /// <summary>The MLSMessage version is not mls10 (§6).</summary>
    UnsupportedVersion,
    /// <summary>The wire format cannot be processed here (e.g. a KeyPackage given as a group message).</summary>
    UnexpectedWireFormat,
    /// <summary>The message belongs to another group (§6).</summary>
    WrongGroup,
    /// <summary>The message belongs to another epoch than the current one (§6).</summary>
    WrongEpoch,
    /// <summary>The membership tag is missing or does not verify (§6.2).</summary>
    BadMembershipTag,
    /// <summary>The FramedContentTBS signature does not verify (§6.1).</summary>
    BadSignature,
    /// <summary>The sender is not a member, external sender or new member the group knows (§6).</summary>
    UnknownSender,
    /// <summary>The sender type may not send this content (§6.2, §12.1.8).</summary>
    SenderNotAllowed,
    /// <summary>A PrivateMessage does not decrypt, names an unknown generation, or decrypts to garbage (§6.3).</summary>
    Undecryptable,
    /// <summary>A commit whose confirmation tag is absent or wrong (§6.1, §8.1).</summary>
    BadConfirmationTag,
    /// <summary>This member's own commit came back; merge the pending commit instead (§12.4.2).</summary>
    OwnCommit,

    // Proposals and commits (§12.1, §12.2, §12.4).
    /// <summary>A commit refers to a proposal that was not received in this epoch (§12.4).</summary>
    UnknownProposalReference,
    /// <summary>An Add whose key package is invalid: version, suite, signature, or init key equal to the leaf key (§10.1, §12.1.1).</summary>
    InvalidKeyPackage,
    /// <summary>A leaf node fails validation: signature, source, lifetime, capabilities, extensions or credential (§7.3).</summary>
    InvalidLeafNode,
    /// <summary>A leaf node's encryption or signature key is already used by another member (§7.3).</summary>
    DuplicateLeafKey,
    /// <summary>An Add for a client already in the group or added twice by the commit (§12.2).</summary>
    DuplicateAdd,
    /// <summary>An Update proposal from the committer (§12.2).</summary>
    CommitterUpdate,
    /// <summary>A Remove of the committer (§12.2).</summary>
    CommitterRemoved,
    /// <summary>A Remove of a blank or out-of-range leaf (§12.1.3).</summary>
    RemoveOfNonMember,
    /// <summary>Two Update or Remove proposals for the same leaf (§12.2).</summary>
    ConflictingLeafProposals,
    /// <summary>Two PreSharedKey proposals with the same id, or a PSK id this member does not know or may not use (§8.4, §12.2).</summary>
    InvalidPsk,
    /// <summary>More than one GroupContextExtensions proposal (§12.2).</summary>
    MultipleGroupContextExtensions,
    /// <summary>Extensions a member does not support, or required capabilities it lacks (§12.1.7, §11.1).</summary>
    UnsupportedCapabilities,
    /// <summary>A ReInit together with other proposals (§12.2).</summary>
    ReInitNotAlone,
    /// <summary>A ReInit whose version is below the group's, or whose cipher suite this library does not implement (§12.1.5).</summary>
    InvalidReInit,
    /// <summary>
    /// The group committed a ReInit: it may send and accept no more messages, only give way to the new group (§11.2);
    /// or a reinit Welcome does not match the ReInit (group id, version, cipher suite, extensions, epoch 1, the
    /// resumption PSK of the old group's last epoch).
    /// </summary>
    ReInitPending,
    /// <summary>An ExternalInit in a member's commit, or an external commit without exactly one (§12.2, §12.4.3.2).</summary>
    InvalidExternalInit,
    /// <summary>A proposal the sender type may not make (e.g. an Update from an external sender) (§12.1.8).</summary>
    ProposalNotAllowed,
    /// <summary>A commit without a path where the RFC requires one (§12.4).</summary>
    PathRequired,
    /// <summary>The UpdatePath does not fit the tree, does not decrypt, or derives other keys than it carries (§7.5, §12.4.2).</summary>
    InvalidUpdatePath,
    /// <summary>This member is no longer in the group (it was removed) (§12.1.3).</summary>
    NotAMember,

    // Joining (§12.4.3).
    /// <summary>The Welcome has no entry for this key package, or it does not decrypt (§12.4.3.1).</summary>
    WelcomeNotForThisKeyPackage,
    /// <summary>The Welcome's cipher suite or version is not the key package's (§12.4.3.1).</summary>
    WelcomeSuiteMismatch,
    /// <summary>The GroupInfo does not decrypt or parse (§12.4.3.1).</summary>
    GroupInfoUndecryptable,
    /// <summary>The GroupInfo signature does not verify with the signer's leaf (§12.4.3.1).</summary>
    BadGroupInfoSignature,
    /// <summary>No ratchet tree in the GroupInfo and none given out of band (§12.4.3.3).</summary>
    MissingRatchetTree,
    /// <summary>The ratchet tree is malformed, its hash differs from the GroupContext's, or a parent is not parent-hash valid (§7.9.2, §12.4.3.1).</summary>
    InvalidRatchetTree,
    /// <summary>The joiner's key package leaf is not in the tree (§12.4.3.1).</summary>
    OwnLeafNotFound,
    /// <summary>The path secret in GroupSecrets does not derive the tree's public keys (§12.4.3.1).</summary>
    InvalidPathSecret,
}

/// <summary>A refusal by the group layer, carrying the rule that failed.</summary>
public sealed class MlsGroupException : Exception
{
    public MlsGroupException(MlsGroupError error, string? detail = null)
        : base(detail is null ? error.ToString() : $"{error}: {detail}")
    {
        Error = error;
    }

    public MlsGroupException()
        : this(MlsGroupError.None)
    {
    }

    public MlsGroupException(string message)
        : base(message)
    {
    }

    public MlsGroupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public MlsGroupError Error { get; }
}
