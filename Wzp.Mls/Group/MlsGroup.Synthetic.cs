using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Group;

public sealed partial class MlsGroup
{
    /// <summary>
    /// For benchmarks and tests: two real members, leaves 0 and 1, of a group of <paramref name="members"/> whose
    /// other members exist only as public leaves. Every parent is populated as if each member had committed once with
    /// a path (leaf n-1 first, leaf 1 last, so leaf 1 holds its whole path), which gives the full tree a group
    /// reaches when its members refresh their keys, without running n members through n commits. The tree passes
    /// every join-time check (tree hash, parent hashes, leaf signatures); the epoch is a fresh random one.
    /// </summary>
    internal static (MlsGroup Creator, MlsGroup Observer) CreateWithFullTree(CipherSuite suite, int members, MlsGroupOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentOutOfRangeException.ThrowIfLessThan(members, 2);
        options ??= new MlsGroupOptions();
        var groupId = RandomNumberGenerator.GetBytes(16);
        var tree = new RatchetTreeState(suite, (uint)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)members));
        var signatureKeys = new byte[members][];
        var bundles = new KeyPackageBundle[members];
        for (var i = 0; i < members; i++)
        {
            (signatureKeys[i], _) = suite.GenerateSignatureKeyPair();
            bundles[i] = KeyPackageBundle.Create(suite, Credential.Basic(System.Text.Encoding.ASCII.GetBytes($"member-{i}")), signatureKeys[i]);
            tree.SetLeaf((uint)i, bundles[i].KeyPackage.LeafNode);
        }
        var confirmed = RandomNumberGenerator.GetBytes(suite.HashLength);
        GroupContext ContextOf(byte[] treeHash) => new(ProtocolVersion.Mls10, suite.Id, groupId, 1, treeHash, confirmed, []);
        var order = Enumerable.Range(2, members - 2).Reverse().Append(0).Append(1);
        var keys = new TreePrivateKeys?[2];
        foreach (var i in order)
        {
            var own = new TreePrivateKeys((uint)i);
            own.Set(TreeMath.LeafToNode((uint)i), (byte[])bundles[i].EncryptionPrivateKey.Clone());
            var (_, secrets) = TreeKem.Encapsulate(tree, (uint)i, tree.Leaf((uint)i)!, signatureKeys[i], groupId, ContextOf, [], own, encrypt: false);
            secrets.Dispose();
            if (i < 2) keys[i] = own;
            else own.Dispose();
            bundles[i].Dispose();
        }
        // Leaf 1 committed last, replacing every parent above leaf 0; leaf 0 keeps only its leaf key.
        keys[0]!.KeepOnlyOwnPath(1);

        var context = ContextOf(tree.TreeHash());
        var joinerSecret = RandomNumberGenerator.GetBytes(suite.HashLength);
        var encoded = Tls.Encode(context);
        MlsGroup Member(int i)
        {
            var secrets = EpochSecrets.FromJoinerSecret(suite, joinerSecret, new byte[suite.HashLength], encoded);
            var tag = TranscriptHash.ConfirmationTag(suite, secrets.ConfirmationKey, confirmed);
            return new MlsGroup(suite, signatureKeys[i], options, new EpochState(context, tree.Clone(), keys[i]!, secrets, TranscriptHash.Interim(suite, confirmed, tag)));
        }
        var pair = (Member(0), Member(1));
        CryptographicOperations.ZeroMemory(joinerSecret);
        return pair;
    }
}
