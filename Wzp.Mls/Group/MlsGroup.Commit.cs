using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Group;

public sealed partial class MlsGroup
{
    /// <summary>
    /// Builds a commit (RFC 9420 §12.4.1) over the pending proposals (by reference) and <paramref name="options"/>'
    /// proposals (by value), with an UpdatePath when asked or required, and a Welcome for the members it adds. The
    /// new epoch is staged: <see cref="MergePendingCommit"/> installs it once the delivery service accepted the commit.
    /// </summary>
    public CommitOutput Commit(CommitOptions? options = null)
    {
        options ??= new CommitOptions();
        ThrowIfInactive();
        ThrowIfReInitPending();
        if (_pending is not null) throw new InvalidOperationException("A commit is already pending; merge or clear it first.");
        try
        {
            return CommitCore(options);
        }
        catch (Exception e) when (IsInputFault(e))
        {
            // What other members put in the tree (a key that imports but is of low order, say) can make encrypting
            // to it fail; the caller gets the rule-named error, and the group stays in its epoch.
            throw new MlsGroupException(MlsGroupError.InvalidLeafNode, e.Message);
        }
    }

    private CommitOutput CommitCore(CommitOptions options)
    {
        var own = OwnLeafIndex;
        var entries = new List<ProposalOrRef>();
        var list = new List<(Proposal Proposal, Sender Sender)>();
        if (options.IncludePendingProposals)
        {
            foreach (var cached in _proposals.Values)
            {
                // The committer's own Updates are superseded by its path (RFC 9420 §12.2 forbids including them).
                if (!_options.SkipCommitterValidation && cached.Proposal is UpdateProposal && cached.Sender.Type == SenderType.Member && cached.Sender.Index == own) continue;
                entries.Add(ProposalOrRef.ByReference(cached.Reference));
                list.Add((cached.Proposal, cached.Sender));
            }
        }
        foreach (var proposal in options.Proposals)
        {
            entries.Add(ProposalOrRef.ByValue(proposal));
            list.Add((proposal, Sender.Member(own)));
        }
        if (!_options.SkipCommitterValidation) (entries, list) = DropConflicts(entries, list);

        var state = _state;
        var tree = state.Tree.Clone();
        var keys = state.Keys.Clone();
        EpochSecrets? secrets = null;
        UpdatePathSecrets? pathSecrets = null;
        try
        {
            var applied = ApplyProposals(tree, list, own, external: false, validate: !_options.SkipCommitterValidation);
            PruneKeys(tree, keys);
            var extensions = applied.Extensions ?? state.Context.Extensions;
            var withPath = options.IncludePath ?? applied.PathRequired;
            if (!withPath && applied.PathRequired && !_options.SkipCommitterValidation) throw new MlsGroupException(MlsGroupError.PathRequired);
            UpdatePath? path = null;
            byte[] commitSecret;
            if (withPath)
            {
                (path, pathSecrets) = TreeKem.Encapsulate(tree, own, tree.Leaf(own)!, _signaturePrivateKey, GroupId,
                    hash => ProvisionalContext(state.Context, hash, extensions), applied.Added, keys);
                commitSecret = (byte[])pathSecrets.CommitSecret.Clone();
            }
            else
            {
                commitSecret = new byte[_suite.HashLength];
            }

            var content = new FramedContent(GroupId, Epoch, Sender.Member(own), options.AuthenticatedData, MessageBody.Of(new Commit([.. entries], path)));
            var wireFormat = _options.EncryptHandshake ? WireFormat.PrivateMessage : WireFormat.PublicMessage;
            // Ed25519 is deterministic, so this signature is the one Protect puts in the message below.
            var signature = MessageProtection.Sign(_suite, content, wireFormat, state.Context, _signaturePrivateKey);
            var confirmed = TranscriptHash.Confirmed(_suite, state.InterimTranscriptHash, new AuthenticatedContent(wireFormat, content, new FramedContentAuthData(signature, null)));
            var context = new GroupContext(ProtocolVersion.Mls10, _suite.Id, GroupId, Epoch + 1, tree.TreeHash(), confirmed, extensions);
            var pskSecret = PskSecretOf(applied.Psks);
            secrets = EpochSecrets.FromInitSecret(_suite, state.Secrets.InitSecret, commitSecret, pskSecret, context);
            CryptographicOperations.ZeroMemory(commitSecret);
            var tag = TranscriptHash.ConfirmationTag(_suite, secrets.ConfirmationKey, confirmed);
            var next = new EpochState(context, tree, keys, secrets, TranscriptHash.Interim(_suite, confirmed, tag));
            var (message, _) = Protect(content, tag);

            // The GroupInfo (with the whole tree, hundreds of kilobytes at 1,000 members) is built only for a Welcome;
            // external joiners get one from CreateGroupInfo after the merge.
            GroupInfo? groupInfo = null;
            MlsMessage? welcome = null;
            if (applied.AddedKeyPackages.Count > 0)
            {
                groupInfo = SignedGroupInfo(next, tag, _options.RatchetTreeInWelcome, withExternalPub: true);
                welcome = MlsMessage.Of(BuildWelcome(next, groupInfo, applied, pathSecrets, pskSecret));
            }
            CryptographicOperations.ZeroMemory(pskSecret);
            pathSecrets?.Dispose();
            _pending = new PendingCommit(next, applied.ReInit);
            return new CommitOutput(message, welcome, groupInfo);
        }
        catch
        {
            pathSecrets?.Dispose();
            secrets?.Dispose();
            keys.Dispose();
            throw;
        }
    }

    /// <summary>Installs the epoch of this member's pending commit.</summary>
    public void MergePendingCommit()
    {
        var pending = _pending ?? throw new InvalidOperationException("No commit is pending.");
        _pending = null;
        Install(pending.State);
        PendingReInit = pending.ReInit;
    }

    /// <summary>Drops the pending commit (the delivery service refused it); the group stays in its epoch.</summary>
    public void ClearPendingCommit()
    {
        _pending?.State.Dispose();
        _pending = null;
    }

    private Welcome BuildWelcome(EpochState next, GroupInfo groupInfo, AppliedProposals applied, UpdatePathSecrets? pathSecrets, byte[] pskSecret)
    {
        var welcomeSecret = EpochSecrets.DeriveWelcomeSecret(_suite, next.Secrets.JoinerSecret, pskSecret);
        var encryptedGroupInfo = WelcomeProtection.EncryptGroupInfo(_suite, welcomeSecret, groupInfo);
        CryptographicOperations.ZeroMemory(welcomeSecret);
        var entries = new List<EncryptedGroupSecrets>();
        foreach (var (leaf, keyPackage) in applied.AddedKeyPackages)
        {
            byte[]? pathSecret = null;
            if (pathSecrets is not null)
            {
                var ancestor = CommonAncestor(TreeMath.LeafToNode(next.OwnLeaf), TreeMath.LeafToNode(leaf));
                pathSecret = pathSecrets.PathSecrets[ancestor];
            }
            entries.Add(WelcomeProtection.EncryptGroupSecrets(_suite, keyPackage, encryptedGroupInfo, new GroupSecrets(next.Secrets.JoinerSecret, pathSecret, [.. applied.Psks])));
        }
        return new Welcome(_suite.Id, [.. entries], encryptedGroupInfo);
    }

    /// <summary>
    /// Processes another member's (or a new member's external) commit (RFC 9420 §12.4.2): resolves and validates
    /// the proposals, applies them, merges and decrypts the path, runs the key schedule and checks the
    /// confirmation tag. <paramref name="removed"/> is true when the commit removed this member.
    /// </summary>
    private CommitSummary ProcessCommit(AuthenticatedContent authenticated, out bool removed)
    {
        removed = false;
        var content = authenticated.Content;
        var commit = content.Body.Commit!;
        var external = content.Sender.Type == SenderType.NewMemberCommit;
        if (!external && content.Sender.Type != SenderType.Member) throw new MlsGroupException(MlsGroupError.SenderNotAllowed);
        var committer = external ? (uint?)null : content.Sender.Index;

        var list = new List<(Proposal Proposal, Sender Sender)>();
        foreach (var entry in commit.Proposals)
        {
            if (entry.Proposal is { } byValue)
            {
                list.Add((byValue, content.Sender));
                continue;
            }
            if (external) throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "an external commit cannot include proposals by reference");
            if (!_proposals.TryGetValue(Convert.ToHexString(entry.Reference!), out var cached))
                throw new MlsGroupException(MlsGroupError.UnknownProposalReference);
            list.Add((cached.Proposal, cached.Sender));
        }

        var state = _state;
        var tree = state.Tree.Clone();
        var keys = state.Keys.Clone();
        EpochSecrets? secrets = null;
        try
        {
            var applied = ApplyProposals(tree, list, committer, external, validate: true);
            if (applied.PathRequired && commit.Path is null) throw new MlsGroupException(MlsGroupError.PathRequired);
            if (applied.Removed.Contains(OwnLeafIndex))
            {
                // A removed member cannot derive the new epoch (the path is not encrypted to it), so it stops here
                // and wipes what it holds: nothing it keeps could serve the group any more.
                keys.Dispose();
                IsActive = false;
                WipeAll();
                removed = true;
                return Summary(applied, committer ?? uint.MaxValue);
            }
            PruneKeys(tree, keys);
            foreach (var (leaf, node) in applied.Updated)
            {
                if (leaf == OwnLeafIndex && _pendingUpdateKeys.TryGetValue(Convert.ToHexString(node.EncryptionKey), out var updateKey))
                    keys.Set(TreeMath.LeafToNode(leaf), (byte[])updateKey.Clone());
            }
            var extensions = applied.Extensions ?? state.Context.Extensions;

            byte[] commitSecret;
            var committerLeaf = committer ?? uint.MaxValue;
            if (commit.Path is { } path)
            {
                uint sender;
                if (external)
                {
                    sender = tree.AddLeaf(path.LeafNode);
                }
                else
                {
                    sender = committer!.Value;
                }
                committerLeaf = sender;
                var leafError = LeafNodeValidation.Validate(tree, path.LeafNode, LeafNodeSource.Commit, GroupId, sender, extensions, null, sender);
                if (leafError != LeafNodeError.None) throw new MlsGroupException(leafError is LeafNodeError.DuplicateEncryptionKey or LeafNodeError.DuplicateSignatureKey ? MlsGroupError.DuplicateLeafKey : MlsGroupError.InvalidLeafNode, $"commit leaf: {leafError}");
                if (!external && path.LeafNode.EncryptionKey.AsSpan().SequenceEqual(state.Tree.Leaf(sender)!.EncryptionKey))
                    throw new MlsGroupException(MlsGroupError.InvalidLeafNode, "the commit leaf reuses the committer's encryption key");
                if (!TreeKem.TryDecapsulate(tree, sender, path, hash => ProvisionalContext(state.Context, hash, extensions), applied.Added, keys,
                        out var decapsulated, out var pathSecret, out var treeKemError))
                    throw new MlsGroupException(MlsGroupError.InvalidUpdatePath, treeKemError.ToString());
                if (pathSecret is not null) CryptographicOperations.ZeroMemory(pathSecret);
                commitSecret = decapsulated;
            }
            else
            {
                commitSecret = new byte[_suite.HashLength];
            }

            var confirmed = TranscriptHash.Confirmed(_suite, state.InterimTranscriptHash, authenticated);
            var context = new GroupContext(ProtocolVersion.Mls10, _suite.Id, GroupId, Epoch + 1, tree.TreeHash(), confirmed, extensions);
            var pskSecret = PskSecretOf(applied.Psks);
            var initSecret = external ? ExternalInitSecret(applied.ExternalInit!) : (byte[])state.Secrets.InitSecret.Clone();
            secrets = EpochSecrets.FromInitSecret(_suite, initSecret, commitSecret, pskSecret, context);
            CryptographicOperations.ZeroMemory(initSecret);
            CryptographicOperations.ZeroMemory(commitSecret);
            CryptographicOperations.ZeroMemory(pskSecret);
            var tag = authenticated.Auth.ConfirmationTag ?? throw new MlsGroupException(MlsGroupError.BadConfirmationTag);
            if (!_suite.VerifyMac(secrets.ConfirmationKey, confirmed, tag)) throw new MlsGroupException(MlsGroupError.BadConfirmationTag);
            Install(new EpochState(context, tree, keys, secrets, TranscriptHash.Interim(_suite, confirmed, tag)));
            PendingReInit = applied.ReInit;
            var summary = Summary(applied, committerLeaf);
            if (commit.Path is null) return summary;
            return external ? summary with { Added = [.. summary.Added, committerLeaf] } : summary with { Updated = [.. summary.Updated, committerLeaf] };
        }
        catch
        {
            secrets?.Dispose();
            keys.Dispose();
            throw;
        }
    }

    private static CommitSummary Summary(AppliedProposals applied, uint committer)
        => new([.. applied.Added], [.. applied.Removed.Order()], [.. applied.Updated.Select(u => u.Index)], committer);

    /// <summary>init_secret of an external commit: the HPKE export from the ExternalInit's kem_output (RFC 9420 §8.3).</summary>
    private byte[] ExternalInitSecret(ExternalInitProposal init)
    {
        var (privateKey, _) = _state.Secrets.ExternalKeyPair();
        try
        {
            if (!_suite.Hpke.TrySetupBaseRecipient(init.KemOutput, privateKey, [], out var context))
                throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "kem_output is not a usable public key");
            using (context) return context.Export("MLS 1.0 external init secret"u8, _suite.HashLength);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(privateKey);
        }
    }

    private GroupContext ProvisionalContext(GroupContext current, byte[] treeHash, Extension[] extensions)
        => current with { Epoch = current.Epoch + 1, TreeHash = treeHash, Extensions = extensions };

    /// <summary>Drops keys of nodes the proposals blanked (or truncated away).</summary>
    private static void PruneKeys(RatchetTreeState tree, TreePrivateKeys keys)
    {
        foreach (var node in keys.Nodes.ToList())
            if (node >= tree.NodeCount || tree.NodeAt(node) is null) keys.Remove(node);
    }

    /// <summary>The lowest common ancestor of two nodes (RFC 9420 Appendix C, common_ancestor_direct).</summary>
    internal static uint CommonAncestor(uint x, uint y)
    {
        var lx = (int)TreeMath.Level(x) + 1;
        var ly = (int)TreeMath.Level(y) + 1;
        if (lx <= ly && x >> ly == y >> ly) return y;
        if (ly <= lx && x >> lx == y >> lx) return x;
        var k = 0;
        while (x != y)
        {
            x >>= 1;
            y >>= 1;
            k++;
        }
        return (x << k) + (1u << (k - 1)) - 1;
    }

    private byte[] PskSecretOf(IReadOnlyList<PreSharedKeyId> ids)
    {
        var inputs = new List<PskInput>();
        foreach (var id in ids) inputs.Add(new PskInput(id, ResolvePsk(id)));
        return PskSecret.Compute(_suite, inputs);
    }

    private byte[] ResolvePsk(PreSharedKeyId id)
    {
        if (id.PskNonce.Length != _suite.HashLength) throw new MlsGroupException(MlsGroupError.InvalidPsk, "psk_nonce length");
        switch (id.PskType)
        {
            case PskType.External when _options.ExternalPsks.TryGetValue(MlsGroupOptions.PskKey(id.PskId!), out var psk):
                return psk;
            case PskType.Resumption when id.Usage == ResumptionPskUsage.Application && id.PskGroupId.AsSpan().SequenceEqual(GroupId)
                                         && _resumptionPsks.TryGetValue(id.PskEpoch, out var resumption):
                return resumption;
            case PskType.Resumption when id.Usage == ResumptionPskUsage.ReInit && _reInitPsk is { } reInit
                                         && id.PskGroupId.AsSpan().SequenceEqual(reInit.GroupId) && id.PskEpoch == reInit.Epoch:
                return reInit.Psk;
            default:
                throw new MlsGroupException(MlsGroupError.InvalidPsk, "unknown PSK");
        }
    }

    /// <summary>For the committer: keeps the first of conflicting proposals so its own commit obeys RFC 9420 §12.2.</summary>
    private (List<ProposalOrRef>, List<(Proposal, Sender)>) DropConflicts(List<ProposalOrRef> entries, List<(Proposal Proposal, Sender Sender)> list)
    {
        var keptEntries = new List<ProposalOrRef>();
        var kept = new List<(Proposal, Sender)>();
        var touched = new HashSet<uint>();
        var added = new HashSet<string>();
        var psks = new HashSet<string>();
        var gce = false;
        for (var i = 0; i < list.Count; i++)
        {
            var (proposal, sender) = list[i];
            var keep = proposal switch
            {
                RemoveProposal remove => remove.Removed != OwnLeafIndex && _state.Tree.Leaf(remove.Removed) is not null && touched.Add(remove.Removed),
                UpdateProposal => sender.Type == SenderType.Member && touched.Add(sender.Index),
                AddProposal add => added.Add(Convert.ToHexString(add.KeyPackage.LeafNode.SignatureKey)),
                PreSharedKeyProposal psk => psks.Add(Convert.ToHexString(Tls.Encode(psk.Psk))),
                GroupContextExtensionsProposal => !gce && (gce = true),
                _ => true,
            };
            if (!keep) continue;
            keptEntries.Add(entries[i]);
            kept.Add(list[i]);
        }
        return (keptEntries, kept);
    }

    private sealed class AppliedProposals
    {
        public List<uint> Added { get; } = [];

        public List<(uint Leaf, KeyPackage KeyPackage)> AddedKeyPackages { get; } = [];

        public List<(uint Index, LeafNode Leaf)> Updated { get; } = [];

        public HashSet<uint> Removed { get; } = [];

        public List<PreSharedKeyId> Psks { get; } = [];

        public Extension[]? Extensions { get; set; }

        public ExternalInitProposal? ExternalInit { get; set; }

        public ReInitProposal? ReInit { get; set; }

        public bool PathRequired { get; set; }
    }

    /// <summary>
    /// Validates a commit's proposal list (RFC 9420 §12.1, §12.2) and applies it to <paramref name="tree"/> in the
    /// RFC's order: GroupContextExtensions, Update, Remove, Add, then PSKs are collected.
    /// </summary>
    private AppliedProposals ApplyProposals(RatchetTreeState tree, List<(Proposal Proposal, Sender Sender)> list, uint? committer, bool external, bool validate)
    {
        var applied = new AppliedProposals { PathRequired = list.Count == 0 };
        var touched = new HashSet<uint>();
        var pskIds = new HashSet<string>();
        var gceCount = 0;
        var externalInits = 0;
        foreach (var (proposal, sender) in list)
        {
            if (proposal.ProposalType is not (ProposalTypes.Add or ProposalTypes.Psk or ProposalTypes.ReInit)) applied.PathRequired = true;
            if (proposal is ReInitProposal reInit) applied.ReInit = reInit;
            if (!validate) continue;
            if (proposal is ExternalInitProposal && !external) throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "ExternalInit in a member's commit");
            if (sender.Type != SenderType.NewMemberCommit) CheckProposalSender(proposal, sender);
            switch (proposal)
            {
                case UpdateProposal:
                    if (sender.Type != SenderType.Member) throw new MlsGroupException(MlsGroupError.ProposalNotAllowed);
                    if (sender.Index == committer) throw new MlsGroupException(MlsGroupError.CommitterUpdate);
                    if (!touched.Add(sender.Index)) throw new MlsGroupException(MlsGroupError.ConflictingLeafProposals);
                    break;
                case RemoveProposal remove:
                    if (tree.Leaf(remove.Removed) is null) throw new MlsGroupException(MlsGroupError.RemoveOfNonMember);
                    if (remove.Removed == committer) throw new MlsGroupException(MlsGroupError.CommitterRemoved);
                    if (!touched.Add(remove.Removed)) throw new MlsGroupException(MlsGroupError.ConflictingLeafProposals);
                    break;
                case PreSharedKeyProposal psk:
                    if (!pskIds.Add(Convert.ToHexString(Tls.Encode(psk.Psk)))) throw new MlsGroupException(MlsGroupError.InvalidPsk, "duplicate PSK id");
                    ResolvePsk(psk.Psk);
                    break;
                case GroupContextExtensionsProposal:
                    if (++gceCount > 1) throw new MlsGroupException(MlsGroupError.MultipleGroupContextExtensions);
                    break;
                case ReInitProposal reInitProposal:
                    if (list.Count != 1) throw new MlsGroupException(MlsGroupError.ReInitNotAlone);
                    CheckReInit(reInitProposal);
                    break;
                case ExternalInitProposal:
                    if (!external) throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "ExternalInit in a member's commit");
                    externalInits++;
                    break;
            }
            if (external && proposal.ProposalType is not (ProposalTypes.ExternalInit or ProposalTypes.Remove or ProposalTypes.Psk))
                throw new MlsGroupException(MlsGroupError.InvalidExternalInit, $"proposal type {proposal.ProposalType} in an external commit");
        }
        if (validate && external && externalInits != 1) throw new MlsGroupException(MlsGroupError.InvalidExternalInit, "an external commit needs exactly one ExternalInit");

        foreach (var (proposal, _) in list)
        {
            if (proposal is not GroupContextExtensionsProposal gce) continue;
            if (validate)
            {
                if (gce.Extensions.HasDuplicateTypes()) throw new MlsGroupException(MlsGroupError.UnsupportedCapabilities, "duplicate extension types");
                foreach (var (_, leaf) in tree.Members())
                    if (!LeafNodeValidation.SupportsExtensions(leaf, gce.Extensions) || !LeafNodeValidation.MeetsRequiredCapabilities(leaf, gce.Extensions))
                        throw new MlsGroupException(MlsGroupError.UnsupportedCapabilities);
            }
            applied.Extensions = gce.Extensions;
        }
        var extensions = applied.Extensions ?? _state.Context.Extensions;
        var now = _options.Clock?.GetUtcNow();

        foreach (var (proposal, sender) in list)
        {
            if (proposal is not UpdateProposal update) continue;
            if (validate)
            {
                var error = LeafNodeValidation.Validate(tree, update.LeafNode, LeafNodeSource.Update, GroupId, sender.Index, extensions, null, sender.Index);
                if (error != LeafNodeError.None) throw new MlsGroupException(LeafError(error), $"update leaf: {error}");
                CheckFreshEncryptionKey(tree, sender.Index, update.LeafNode);
            }
            tree.UpdateLeaf(sender.Index, update.LeafNode);
            applied.Updated.Add((sender.Index, update.LeafNode));
        }
        foreach (var (proposal, _) in list)
        {
            // Unvalidated (test) commits may remove a leaf an earlier Remove already truncated away.
            if (proposal is not RemoveProposal remove || remove.Removed >= tree.LeafCount) continue;
            tree.RemoveLeaf(remove.Removed);
            tree.Truncate();
            applied.Removed.Add(remove.Removed);
        }
        var addedSignatureKeys = new HashSet<string>();
        foreach (var (proposal, _) in list)
        {
            if (proposal is not AddProposal add) continue;
            var keyPackage = add.KeyPackage;
            if (validate)
            {
                if (keyPackage.Version != ProtocolVersion.Mls10 || keyPackage.CipherSuite != _suite.Id || !keyPackage.VerifySignature(_suite)
                    || keyPackage.InitKey.AsSpan().SequenceEqual(keyPackage.LeafNode.EncryptionKey))
                    throw new MlsGroupException(MlsGroupError.InvalidKeyPackage);
                if (!addedSignatureKeys.Add(Convert.ToHexString(keyPackage.LeafNode.SignatureKey))
                    || tree.FindLeaf(l => l.SignatureKey.AsSpan().SequenceEqual(keyPackage.LeafNode.SignatureKey)) is not null)
                    throw new MlsGroupException(MlsGroupError.DuplicateAdd);
                var error = LeafNodeValidation.Validate(tree, keyPackage.LeafNode, LeafNodeSource.KeyPackage, GroupId, 0, extensions, now, null);
                if (error != LeafNodeError.None) throw new MlsGroupException(LeafError(error), $"added leaf: {error}");
            }
            var index = tree.AddLeaf(keyPackage.LeafNode);
            applied.Added.Add(index);
            applied.AddedKeyPackages.Add((index, keyPackage));
        }
        foreach (var (proposal, _) in list)
        {
            if (proposal is PreSharedKeyProposal psk) applied.Psks.Add(psk.Psk);
            if (proposal is ExternalInitProposal init) applied.ExternalInit = init;
        }
        return applied;
    }

    /// <summary>
    /// Checks a proposal on its own when it arrives (RFC 9420 §12.1), so an invalid one is never cached and cannot
    /// block the next commit; the list-level rules of §12.2 are checked again when a commit uses it.
    /// </summary>
    private void ValidateOnReceipt(Proposal proposal, Sender sender)
    {
        var tree = _state.Tree;
        var extensions = _state.Context.Extensions;
        switch (proposal)
        {
            case AddProposal add:
                var keyPackage = add.KeyPackage;
                if (keyPackage.Version != ProtocolVersion.Mls10 || keyPackage.CipherSuite != _suite.Id || !keyPackage.VerifySignature(_suite)
                    || keyPackage.InitKey.AsSpan().SequenceEqual(keyPackage.LeafNode.EncryptionKey))
                    throw new MlsGroupException(MlsGroupError.InvalidKeyPackage);
                var addError = LeafNodeValidation.Validate(tree, keyPackage.LeafNode, LeafNodeSource.KeyPackage, GroupId, 0, extensions, _options.Clock?.GetUtcNow(), null);
                if (addError == LeafNodeError.DuplicateSignatureKey) throw new MlsGroupException(MlsGroupError.DuplicateAdd);
                if (addError != LeafNodeError.None) throw new MlsGroupException(LeafError(addError), $"added leaf: {addError}");
                break;
            case UpdateProposal update:
                var updateError = LeafNodeValidation.Validate(tree, update.LeafNode, LeafNodeSource.Update, GroupId, sender.Index, extensions, null, sender.Index);
                if (updateError != LeafNodeError.None) throw new MlsGroupException(LeafError(updateError), $"update leaf: {updateError}");
                CheckFreshEncryptionKey(tree, sender.Index, update.LeafNode);
                break;
            case RemoveProposal remove:
                if (tree.Leaf(remove.Removed) is null) throw new MlsGroupException(MlsGroupError.RemoveOfNonMember);
                break;
            case PreSharedKeyProposal psk:
                ResolvePsk(psk.Psk);
                break;
            case ReInitProposal reInit:
                CheckReInit(reInit);
                break;
            case GroupContextExtensionsProposal gce:
                foreach (var (_, leaf) in tree.Members())
                    if (!LeafNodeValidation.SupportsExtensions(leaf, gce.Extensions) || !LeafNodeValidation.MeetsRequiredCapabilities(leaf, gce.Extensions))
                        throw new MlsGroupException(MlsGroupError.UnsupportedCapabilities);
                break;
        }
    }

    /// <summary>An Update must bring a new encryption key (RFC 9420 §12.1.2).</summary>
    private static void CheckFreshEncryptionKey(RatchetTreeState tree, uint leafIndex, LeafNode leaf)
    {
        if (tree.Leaf(leafIndex) is { } current && current.EncryptionKey.AsSpan().SequenceEqual(leaf.EncryptionKey))
            throw new MlsGroupException(MlsGroupError.InvalidLeafNode, "the update reuses the member's encryption key");
    }

    private static MlsGroupError LeafError(LeafNodeError error) => error switch
    {
        LeafNodeError.DuplicateEncryptionKey or LeafNodeError.DuplicateSignatureKey => MlsGroupError.DuplicateLeafKey,
        LeafNodeError.MissingRequiredCapability or LeafNodeError.UnsupportedGroupExtension => MlsGroupError.UnsupportedCapabilities,
        _ => MlsGroupError.InvalidLeafNode,
    };
}
