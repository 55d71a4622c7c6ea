using System.Diagnostics.CodeAnalysis;
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
    /// Joins a group from a Welcome (RFC 9420 §12.4.3.1) with the key package it was made for. The ratchet tree comes
    /// from the GroupInfo's ratchet_tree extension or, when absent there, <paramref name="ratchetTree"/>. The whole
    /// tree is validated: its hash against the GroupContext, every parent hash, every leaf.
    /// </summary>
    public static MlsGroup Join(Welcome welcome, KeyPackageBundle bundle, RatchetTree? ratchetTree = null, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(welcome);
        ArgumentNullException.ThrowIfNull(bundle);
        try
        {
            return JoinCore(welcome, bundle, ratchetTree, options);
        }
        catch (Exception e) when (IsInputFault(e))
        {
            throw new MlsGroupException(MlsGroupError.MalformedMessage, e.Message);
        }
    }

    private static MlsGroup JoinCore(Welcome welcome, KeyPackageBundle bundle, RatchetTree? ratchetTree, MlsGroupOptions? options, MlsGroup? reInitFrom = null)
    {
        options ??= new MlsGroupOptions();
        var suite = CipherSuite.TryGet(welcome.CipherSuite);
        if (suite is null || welcome.CipherSuite != bundle.KeyPackage.CipherSuite) throw new MlsGroupException(MlsGroupError.WelcomeSuiteMismatch);
        if (!WelcomeProtection.TryDecryptGroupSecrets(suite, welcome, bundle.KeyPackage.Reference(suite), bundle.InitPrivateKey, out var groupSecrets))
            throw new MlsGroupException(MlsGroupError.WelcomeNotForThisKeyPackage);

        var psks = new List<PskInput>();
        var reInitPsk = false;
        foreach (var id in groupSecrets.Psks)
        {
            if (reInitFrom?.ReInitPskFor(id) is { } resumption && id.PskNonce.Length == suite.HashLength && !reInitPsk)
            {
                reInitPsk = true;
                psks.Add(new PskInput(id, resumption));
                continue;
            }
            if (id.PskType != PskType.External || id.PskNonce.Length != suite.HashLength
                || !options.ExternalPsks.TryGetValue(MlsGroupOptions.PskKey(id.PskId!), out var psk))
                throw new MlsGroupException(MlsGroupError.InvalidPsk, "a joiner can only use external PSKs it holds");
            psks.Add(new PskInput(id, psk));
        }
        var pskSecret = PskSecret.Compute(suite, psks);
        var welcomeSecret = EpochSecrets.DeriveWelcomeSecret(suite, groupSecrets.JoinerSecret, pskSecret);
        var opened = WelcomeProtection.TryDecryptGroupInfo(suite, welcome, welcomeSecret, out var groupInfo);
        CryptographicOperations.ZeroMemory(welcomeSecret);
        if (!opened) throw new MlsGroupException(MlsGroupError.GroupInfoUndecryptable);
        var context = groupInfo!.GroupContext;
        if (context.Version != ProtocolVersion.Mls10 || context.CipherSuite != suite.Id) throw new MlsGroupException(MlsGroupError.WelcomeSuiteMismatch);
        if (reInitFrom is not null && (!reInitPsk || !MatchesReInit(context, reInitFrom.PendingReInit!)))
            throw new MlsGroupException(MlsGroupError.ReInitPending, "the Welcome is not the one the ReInit asked for");

        var tree = ValidatedTree(suite, groupInfo, ratchetTree);

        var ownLeafBytes = Tls.Encode(bundle.KeyPackage.LeafNode);
        var own = tree.FindLeaf(l => Tls.Encode(l).AsSpan().SequenceEqual(ownLeafBytes))
            ?? throw new MlsGroupException(MlsGroupError.OwnLeafNotFound);
        var keys = new TreePrivateKeys(own);
        keys.Set(TreeMath.LeafToNode(own), (byte[])bundle.EncryptionPrivateKey.Clone());
        EpochSecrets? secrets = null;
        try
        {
            if (groupSecrets.PathSecret is { } pathSecret)
            {
                InstallPathSecret(suite, tree, keys, own, groupInfo.Signer, pathSecret);
                CryptographicOperations.ZeroMemory(pathSecret);
            }
            secrets = EpochSecrets.FromJoinerSecret(suite, groupSecrets.JoinerSecret, pskSecret, Tls.Encode(context));
            CryptographicOperations.ZeroMemory(pskSecret);
            CryptographicOperations.ZeroMemory(groupSecrets.JoinerSecret);
            if (!suite.VerifyMac(secrets.ConfirmationKey, context.ConfirmedTranscriptHash, groupInfo.ConfirmationTag))
                throw new MlsGroupException(MlsGroupError.BadConfirmationTag);
            var interim = TranscriptHash.Interim(suite, context.ConfirmedTranscriptHash, groupInfo.ConfirmationTag);
            return new MlsGroup(suite, bundle.SignaturePrivateKey, options, new EpochState(context, tree, keys, secrets, interim));
        }
        catch
        {
            secrets?.Dispose();
            keys.Dispose();
            throw;
        }
    }

    /// <summary>Join that reports the failed rule instead of throwing.</summary>
    public static bool TryJoin(Welcome welcome, KeyPackageBundle bundle, RatchetTree? ratchetTree, MlsGroupOptions? options, [NotNullWhen(true)] out MlsGroup? group, out MlsGroupError error)
    {
        try
        {
            group = Join(welcome, bundle, ratchetTree, options);
            error = MlsGroupError.None;
            return true;
        }
        catch (MlsGroupException e)
        {
            group = null;
            error = e.Error;
            return false;
        }
    }

    /// <summary>
    /// The path secret of a Welcome belongs to the lowest common ancestor of the joiner and the committer; the
    /// secrets above it follow the committer's filtered direct path, and each must derive the key the tree holds.
    /// </summary>
    private static void InstallPathSecret(CipherSuite suite, RatchetTreeState tree, TreePrivateKeys keys, uint own, uint committer, byte[] pathSecret)
    {
        var ancestor = CommonAncestor(TreeMath.LeafToNode(own), TreeMath.LeafToNode(committer));
        var path = tree.FilteredDirectPath(committer);
        var start = path.FindIndex(p => p.Node == ancestor);
        if (start < 0) throw new MlsGroupException(MlsGroupError.InvalidPathSecret, "the common ancestor is not on the committer's filtered direct path");
        var secret = (byte[])pathSecret.Clone();
        for (var i = start; i < path.Count; i++)
        {
            if (i > start)
            {
                var next = suite.DeriveSecret(secret, "path"u8);
                CryptographicOperations.ZeroMemory(secret);
                secret = next;
            }
            var (privateKey, publicKey) = TreeKem.NodeKeyPair(suite, secret);
            if (tree.Parent(path[i].Node) is not { } node || !node.EncryptionKey.AsSpan().SequenceEqual(publicKey))
            {
                CryptographicOperations.ZeroMemory(privateKey);
                CryptographicOperations.ZeroMemory(secret);
                throw new MlsGroupException(MlsGroupError.InvalidPathSecret);
            }
            keys.Set(path[i].Node, privateKey);
        }
        CryptographicOperations.ZeroMemory(secret);
    }
}
