using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Group;

public sealed partial class MlsGroup
{
    /// <summary>
    /// Joins by external commit (RFC 9420 §12.4.3.2) from a GroupInfo carrying external_pub: validates the GroupInfo
    /// and its tree as a Welcome join would, derives the init secret through ExternalInit, takes the leftmost free
    /// leaf and commits with a path. <paramref name="resyncLeaf"/> removes this client's previous leaf in the same
    /// commit (resynchronisation). The returned group is already in the new epoch; the commit goes to the members.
    /// </summary>
    public static (MlsGroup Group, MlsMessage Commit) JoinByExternalCommit(
        GroupInfo groupInfo, Credential credential, byte[] signaturePrivateKey, RatchetTree? ratchetTree = null,
        Capabilities? capabilities = null, uint? resyncLeaf = null, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(groupInfo);
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentNullException.ThrowIfNull(signaturePrivateKey);
        try
        {
            return ExternalJoinCore(groupInfo, credential, signaturePrivateKey, ratchetTree, capabilities, resyncLeaf, options ?? new MlsGroupOptions());
        }
        catch (Exception e) when (IsInputFault(e))
        {
            throw new MlsGroupException(MlsGroupError.MalformedMessage, e.Message);
        }
    }

    private static (MlsGroup, MlsMessage) ExternalJoinCore(
        GroupInfo groupInfo, Credential credential, byte[] signaturePrivateKey, RatchetTree? ratchetTree, Capabilities? capabilities, uint? resyncLeaf, MlsGroupOptions options)
    {
        var context = groupInfo.GroupContext;
        var suite = CipherSuite.TryGet(context.CipherSuite);
        if (suite is null || context.Version != ProtocolVersion.Mls10) throw new MlsGroupException(MlsGroupError.WelcomeSuiteMismatch);
        var tree = ValidatedTree(suite, groupInfo, ratchetTree);
        if (!groupInfo.Extensions.TryGet<ExternalPubExtension>(ExtensionTypes.ExternalPub, out var externalPub))
            throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "the GroupInfo has no external_pub");

        using var hpke = suite.Hpke.SetupBaseSender(externalPub.ExternalPub, [], out var kemOutput);
        var initSecret = hpke.Export("MLS 1.0 external init secret"u8, suite.HashLength);
        var proposals = new List<ProposalOrRef> { ProposalOrRef.ByValue(new ExternalInitProposal(kemOutput)) };
        if (resyncLeaf is { } old)
        {
            if (tree.Leaf(old) is null) throw new MlsGroupException(MlsGroupError.RemoveOfNonMember);
            proposals.Add(ProposalOrRef.ByValue(new RemoveProposal(old)));
            tree.RemoveLeaf(old);
            tree.Truncate();
        }

        // A placeholder leaf claims the position; Encapsulate replaces it with the signed commit leaf.
        var signaturePublic = suite.SignaturePublicKey(signaturePrivateKey);
        var placeholder = new LeafNode([], signaturePublic, credential, capabilities ?? KeyPackageBundle.DefaultCapabilities(suite),
            LeafNodeSource.Commit, null, [], [], []);
        var own = tree.AddLeaf(placeholder);
        var keys = new TreePrivateKeys(own);
        EpochSecrets? secrets = null;
        try
        {
            var (path, pathSecrets) = TreeKem.Encapsulate(tree, own, placeholder, signaturePrivateKey, context.GroupId,
                hash => context with { Epoch = context.Epoch + 1, TreeHash = hash }, [], keys);
            var content = new FramedContent(context.GroupId, context.Epoch, Sender.NewMemberCommit, [], MessageBody.Of(new Commit([.. proposals], path)));
            var signature = MessageProtection.Sign(suite, content, WireFormat.PublicMessage, context, signaturePrivateKey);
            var interimBefore = TranscriptHash.Interim(suite, context.ConfirmedTranscriptHash, groupInfo.ConfirmationTag);
            var confirmed = TranscriptHash.Confirmed(suite, interimBefore, new AuthenticatedContent(WireFormat.PublicMessage, content, new FramedContentAuthData(signature, null)));
            var next = new GroupContext(ProtocolVersion.Mls10, suite.Id, context.GroupId, context.Epoch + 1, tree.TreeHash(), confirmed, context.Extensions);
            secrets = EpochSecrets.FromInitSecret(suite, initSecret, pathSecrets.CommitSecret, new byte[suite.HashLength], next);
            CryptographicOperations.ZeroMemory(initSecret);
            pathSecrets.Dispose();
            var tag = TranscriptHash.ConfirmationTag(suite, secrets.ConfirmationKey, confirmed);
            var message = MessageProtection.ProtectPublic(suite, content, context, signaturePrivateKey, [], tag);
            var group = new MlsGroup(suite, signaturePrivateKey, options, new EpochState(next, tree, keys, secrets, TranscriptHash.Interim(suite, confirmed, tag)));
            return (group, MlsMessage.Of(message));
        }
        catch
        {
            secrets?.Dispose();
            keys.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Frames a proposal from an external sender (RFC 9420 §12.1.8): index <paramref name="senderIndex"/> of the
    /// group's external_senders extension, signed with that sender's key, as a PublicMessage without membership tag.
    /// </summary>
    public static MlsMessage ExternalProposal(CipherSuite suite, byte[] groupId, ulong epoch, uint senderIndex, byte[] signaturePrivateKey, Proposal proposal)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(groupId);
        ArgumentNullException.ThrowIfNull(proposal);
        var content = new FramedContent(groupId, epoch, Sender.External(senderIndex), [], MessageBody.Of(proposal));
        // FramedContentTBS carries no GroupContext for external senders (RFC 9420 §6.1).
        var auth = new FramedContentAuthData(suite.SignWithLabel(signaturePrivateKey, "FramedContentTBS", content.ToBeSigned(WireFormat.PublicMessage, null)), null);
        return MlsMessage.Of(new PublicMessage(content, auth, null));
    }

    /// <summary>The tree of a GroupInfo (its extension or out of band), validated as a joiner must (RFC 9420 §12.4.3.1).</summary>
    private static RatchetTreeState ValidatedTree(CipherSuite suite, GroupInfo groupInfo, RatchetTree? ratchetTree)
    {
        var context = groupInfo.GroupContext;
        var treeData = groupInfo.Extensions.Find(ExtensionTypes.RatchetTree) is { } extension ? Tls.Decode<RatchetTree>(extension.ExtensionData) : ratchetTree;
        if (treeData is null) throw new MlsGroupException(MlsGroupError.MissingRatchetTree);
        if (!RatchetTreeState.TryFrom(suite, treeData, out var tree)) throw new MlsGroupException(MlsGroupError.InvalidRatchetTree, "not a tree");
        if (!tree.TreeHash().AsSpan().SequenceEqual(context.TreeHash)) throw new MlsGroupException(MlsGroupError.InvalidRatchetTree, "tree hash");
        if (!tree.VerifyUnmergedLeaves()) throw new MlsGroupException(MlsGroupError.InvalidRatchetTree, "unmerged leaves");
        if (!tree.VerifyParentHashes()) throw new MlsGroupException(MlsGroupError.InvalidRatchetTree, "parent hashes");
        var leafError = LeafNodeValidation.ValidateTree(tree, context.GroupId, context.Extensions);
        if (leafError != LeafNodeError.None) throw new MlsGroupException(MlsGroupError.InvalidRatchetTree, $"leaf: {leafError}");
        if (tree.Leaf(groupInfo.Signer) is not { } signer || !groupInfo.VerifySignature(suite, signer.SignatureKey))
            throw new MlsGroupException(MlsGroupError.BadGroupInfoSignature);
        return tree;
    }
}
