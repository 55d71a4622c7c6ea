using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tree;

/// <summary>
/// The HPKE private keys one member holds for nodes of the tree: its leaf and the parents on its direct path it
/// learned path secrets for. Keys are wiped when replaced, removed or disposed.
/// </summary>
public sealed class TreePrivateKeys : IDisposable
{
    private readonly Dictionary<uint, byte[]> _keys = [];

    public TreePrivateKeys(uint leafIndex) => LeafIndex = leafIndex;

    public uint LeafIndex { get; set; }

    public IEnumerable<uint> Nodes => _keys.Keys;

    public bool TryGet(uint node, [NotNullWhen(true)] out byte[]? privateKey) => _keys.TryGetValue(node, out privateKey);

    /// <summary>Takes ownership of <paramref name="privateKey"/>; the key it replaces is wiped.</summary>
    public void Set(uint node, byte[] privateKey)
    {
        if (_keys.TryGetValue(node, out var old) && !ReferenceEquals(old, privateKey)) CryptographicOperations.ZeroMemory(old);
        _keys[node] = privateKey;
    }

    public void Remove(uint node)
    {
        if (_keys.Remove(node, out var old)) CryptographicOperations.ZeroMemory(old);
    }

    /// <summary>Drops every key not on the path from the own leaf to the root of a tree of <paramref name="leafCount"/> leaves.</summary>
    public void KeepOnlyOwnPath(uint leafCount)
    {
        var own = TreeMath.LeafToNode(LeafIndex);
        var keep = new HashSet<uint> { own };
        if (leafCount > 1) keep.UnionWith(TreeMath.DirectPath(own, leafCount));
        foreach (var node in _keys.Keys.Where(n => !keep.Contains(n)).ToList()) Remove(node);
    }

    /// <summary>A deep copy, so a commit can be staged and dropped without touching the current keys.</summary>
    public TreePrivateKeys Clone()
    {
        var copy = new TreePrivateKeys(LeafIndex);
        foreach (var (node, key) in _keys) copy._keys[node] = (byte[])key.Clone();
        return copy;
    }

    public void Dispose()
    {
        foreach (var key in _keys.Values) CryptographicOperations.ZeroMemory(key);
        _keys.Clear();
    }
}

/// <summary>Why an UpdatePath was refused (RFC 9420 §7.5, §12.4.2).</summary>
public enum TreeKemError
{
    None,
    /// <summary>The path has a different number of nodes than the sender's filtered direct path.</summary>
    PathLengthMismatch,
    /// <summary>The path's leaf is not a commit leaf, or its parent_hash is not the one the path implies.</summary>
    ParentHashMismatch,
    /// <summary>No node of the copath resolution holds a key this member has, or the ciphertext for it is missing.</summary>
    NoDecryptionKey,
    /// <summary>The encrypted path secret does not open.</summary>
    PathSecretUndecryptable,
    /// <summary>A public key in the path is not the one derived from the path secret.</summary>
    PublicKeyMismatch,
}

/// <summary>The secrets a committer keeps from generating an UpdatePath.</summary>
public sealed class UpdatePathSecrets : IDisposable
{
    internal UpdatePathSecrets(byte[] commitSecret, Dictionary<uint, byte[]> pathSecrets)
    {
        CommitSecret = commitSecret;
        PathSecrets = pathSecrets;
    }

    public byte[] CommitSecret { get; }

    /// <summary>The path secret of each node of the filtered direct path, for the Welcome of new members.</summary>
    public IReadOnlyDictionary<uint, byte[]> PathSecrets { get; }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(CommitSecret);
        foreach (var secret in PathSecrets.Values) CryptographicOperations.ZeroMemory(secret);
    }
}

/// <summary>
/// TreeKEM (RFC 9420 §7.4-7.6): generating an UpdatePath from a leaf and applying one as a receiver. Both mutate the
/// tree they are given (the caller stages on a clone) and update the member's private keys.
/// </summary>
public static class TreeKem
{
    private const string EncryptLabel = "UpdatePathNode";

    /// <summary>
    /// Generates an UpdatePath for <paramref name="leafIndex"/> and merges it into <paramref name="tree"/>: fresh leaf
    /// key, path secrets along the filtered direct path, parent hashes, the signed commit leaf, then each path secret
    /// encrypted to the copath resolution minus <paramref name="excludedLeaves"/> (members added by the same commit)
    /// under the GroupContext <paramref name="contextOf"/> builds from the new tree hash.
    /// </summary>
    public static (UpdatePath Path, UpdatePathSecrets Secrets) Encapsulate(
        RatchetTreeState tree, uint leafIndex, LeafNode leafTemplate, ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> groupId,
        Func<byte[], GroupContext> contextOf, IReadOnlyCollection<uint> excludedLeaves, TreePrivateKeys keys)
        => Encapsulate(tree, leafIndex, leafTemplate, signaturePrivateKey, groupId, contextOf, excludedLeaves, keys, encrypt: true);

    /// <summary>
    /// <paramref name="encrypt"/> false skips the HPKE encryptions (the path carries no ciphertexts): only for building
    /// synthetic trees in benchmarks and tests, where no member will decrypt.
    /// </summary>
    internal static (UpdatePath Path, UpdatePathSecrets Secrets) Encapsulate(
        RatchetTreeState tree, uint leafIndex, LeafNode leafTemplate, ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> groupId,
        Func<byte[], GroupContext> contextOf, IReadOnlyCollection<uint> excludedLeaves, TreePrivateKeys keys, bool encrypt)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(leafTemplate);
        ArgumentNullException.ThrowIfNull(contextOf);
        ArgumentNullException.ThrowIfNull(excludedLeaves);
        ArgumentNullException.ThrowIfNull(keys);
        var suite = tree.Suite;
        var path = tree.FilteredDirectPath(leafIndex);

        var pathSecrets = new byte[path.Count][];
        var publicKeys = new byte[path.Count][];
        var privateKeys = new byte[path.Count][];
        var seed = RandomNumberGenerator.GetBytes(suite.HashLength);
        for (var i = 0; i < path.Count; i++)
        {
            pathSecrets[i] = i == 0 ? seed : suite.DeriveSecret(pathSecrets[i - 1], "path"u8);
            (privateKeys[i], publicKeys[i]) = NodeKeyPair(suite, pathSecrets[i]);
        }
        var commitSecret = suite.DeriveSecret(path.Count == 0 ? seed : pathSecrets[^1], "path"u8);
        if (path.Count == 0) CryptographicOperations.ZeroMemory(seed);

        var leafParentHash = SetPathNodes(tree, leafIndex, path, publicKeys);
        var (leafPrivate, leafPublic) = suite.GenerateHpkeKeyPair();
        var leaf = (leafTemplate with
        {
            EncryptionKey = leafPublic,
            Source = LeafNodeSource.Commit,
            Lifetime = null,
            ParentHash = leafParentHash,
        }).Signed(suite, signaturePrivateKey, groupId, leafIndex);
        tree.SetLeaf(leafIndex, leaf);

        var context = Tls.Encode(contextOf(tree.TreeHash()));
        var excluded = excludedLeaves.Select(TreeMath.LeafToNode).ToHashSet();
        var nodes = new UpdatePathNode[path.Count];
        for (var i = 0; i < path.Count; i++)
        {
            var recipients = encrypt ? tree.Resolution(path[i].CopathChild).Where(n => !excluded.Contains(n)).ToList() : [];
            var ciphertexts = new HpkeCiphertext[recipients.Count];
            for (var r = 0; r < recipients.Count; r++)
            {
                var sealedSecret = suite.EncryptWithLabel(PublicKeyOf(tree, recipients[r]), EncryptLabel, context, pathSecrets[i]);
                ciphertexts[r] = new HpkeCiphertext(sealedSecret.KemOutput, sealedSecret.Ciphertext);
            }
            nodes[i] = new UpdatePathNode(publicKeys[i], ciphertexts);
        }

        ForgetDirectPath(keys, leafIndex, tree.LeafCount);
        keys.Set(TreeMath.LeafToNode(leafIndex), leafPrivate);
        var secretsByNode = new Dictionary<uint, byte[]>();
        for (var i = 0; i < path.Count; i++)
        {
            keys.Set(path[i].Node, privateKeys[i]);
            secretsByNode[path[i].Node] = pathSecrets[i];
        }
        return (new UpdatePath(leaf, nodes), new UpdatePathSecrets(commitSecret, secretsByNode));
    }

    /// <summary>
    /// Merges a received UpdatePath from <paramref name="sender"/> into <paramref name="tree"/> and recovers the commit
    /// secret: checks the path length and the leaf's parent hash, decrypts the path secret at the lowest node of the
    /// sender's filtered direct path above this member, derives the rest, and checks every public key.
    /// <paramref name="decryptedPathSecret"/> is the secret that was decrypted (for the test vectors).
    /// </summary>
    public static bool TryDecapsulate(
        RatchetTreeState tree, uint sender, UpdatePath updatePath, Func<byte[], GroupContext> contextOf,
        IReadOnlyCollection<uint> excludedLeaves, TreePrivateKeys keys,
        [NotNullWhen(true)] out byte[]? commitSecret, out byte[]? decryptedPathSecret, out TreeKemError error)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(updatePath);
        ArgumentNullException.ThrowIfNull(contextOf);
        ArgumentNullException.ThrowIfNull(excludedLeaves);
        ArgumentNullException.ThrowIfNull(keys);
        commitSecret = null;
        decryptedPathSecret = null;
        var suite = tree.Suite;
        var path = tree.FilteredDirectPath(sender);
        if (path.Count != updatePath.Nodes.Length)
        {
            error = TreeKemError.PathLengthMismatch;
            return false;
        }

        // The copath subtrees are disjoint from the sender's direct path, so the recipient position can be found
        // before the merge; it is the same after.
        var own = TreeMath.LeafToNode(keys.LeafIndex);
        var excluded = excludedLeaves.Select(TreeMath.LeafToNode).ToHashSet();
        var level = path.FindIndex(p => TreeMath.IsInSubtree(p.CopathChild, own));
        byte[]? recipientKey = null;
        var position = -1;
        if (level >= 0)
        {
            var recipients = tree.Resolution(path[level].CopathChild).Where(n => !excluded.Contains(n)).ToList();
            for (var r = 0; r < recipients.Count && recipientKey is null; r++)
            {
                if (keys.TryGet(recipients[r], out var key))
                {
                    recipientKey = key;
                    position = r;
                }
            }
        }
        if (recipientKey is null || position >= updatePath.Nodes[level].EncryptedPathSecret.Length)
        {
            error = TreeKemError.NoDecryptionKey;
            return false;
        }
        recipientKey = (byte[])recipientKey.Clone();

        var leafParentHash = SetPathNodes(tree, sender, path, updatePath.Nodes.Select(n => n.EncryptionKey).ToArray());
        if (updatePath.LeafNode.Source != LeafNodeSource.Commit || !leafParentHash.AsSpan().SequenceEqual(updatePath.LeafNode.ParentHash))
        {
            CryptographicOperations.ZeroMemory(recipientKey);
            error = TreeKemError.ParentHashMismatch;
            return false;
        }
        tree.SetLeaf(sender, updatePath.LeafNode);

        var context = Tls.Encode(contextOf(tree.TreeHash()));
        var ciphertext = updatePath.Nodes[level].EncryptedPathSecret[position];
        var opened = suite.TryDecryptWithLabel(recipientKey, EncryptLabel, context, ciphertext.KemOutput, ciphertext.Ciphertext, out var pathSecret);
        CryptographicOperations.ZeroMemory(recipientKey);
        if (!opened)
        {
            error = TreeKemError.PathSecretUndecryptable;
            return false;
        }
        decryptedPathSecret = (byte[])pathSecret!.Clone();

        var derived = new List<(uint Node, byte[] PrivateKey)>();
        var secret = pathSecret;
        for (var i = level; i < path.Count; i++)
        {
            if (i > level)
            {
                var next = suite.DeriveSecret(secret, "path"u8);
                CryptographicOperations.ZeroMemory(secret);
                secret = next;
            }
            var (privateKey, publicKey) = NodeKeyPair(suite, secret);
            if (!publicKey.AsSpan().SequenceEqual(updatePath.Nodes[i].EncryptionKey))
            {
                CryptographicOperations.ZeroMemory(secret);
                CryptographicOperations.ZeroMemory(privateKey);
                foreach (var (_, key) in derived) CryptographicOperations.ZeroMemory(key);
                error = TreeKemError.PublicKeyMismatch;
                return false;
            }
            derived.Add((path[i].Node, privateKey));
        }
        commitSecret = suite.DeriveSecret(secret, "path"u8);
        CryptographicOperations.ZeroMemory(secret);

        ForgetDirectPath(keys, sender, tree.LeafCount);
        foreach (var (node, key) in derived) keys.Set(node, key);
        error = TreeKemError.None;
        return true;
    }

    /// <summary>node_priv, node_pub = DeriveKeyPair(DeriveSecret(path_secret, "node")) (RFC 9420 §7.4).</summary>
    public static (byte[] PrivateKey, byte[] PublicKey) NodeKeyPair(CipherSuite suite, ReadOnlySpan<byte> pathSecret)
    {
        ArgumentNullException.ThrowIfNull(suite);
        var nodeSecret = suite.DeriveSecret(pathSecret, "node"u8);
        var pair = suite.DeriveHpkeKeyPair(nodeSecret);
        CryptographicOperations.ZeroMemory(nodeSecret);
        return pair;
    }

    /// <summary>
    /// Installs the path's parent nodes top down, each carrying the parent hash of the one above it (RFC 9420 §7.9),
    /// and returns the parent hash the leaf must carry (empty for an empty path). The nodes' unmerged lists are empty,
    /// so the original sibling tree hash is the copath child's current hash.
    /// </summary>
    private static byte[] SetPathNodes(RatchetTreeState tree, uint leafIndex, List<(uint Node, uint CopathChild)> path, byte[][] publicKeys)
    {
        tree.BlankDirectPath(leafIndex);
        byte[] parentHash = [];
        for (var i = path.Count - 1; i >= 0; i--)
        {
            var node = new ParentNode(publicKeys[i], parentHash, []);
            tree.SetParent(path[i].Node, node);
            parentHash = tree.ParentHash(node, tree.TreeHash(path[i].CopathChild));
        }
        return parentHash;
    }

    private static void ForgetDirectPath(TreePrivateKeys keys, uint leafIndex, uint leafCount)
    {
        if (leafCount == 1) return;
        foreach (var node in TreeMath.DirectPath(TreeMath.LeafToNode(leafIndex), leafCount)) keys.Remove(node);
    }

    private static byte[] PublicKeyOf(RatchetTreeState tree, uint node)
    {
        var value = tree.NodeAt(node) ?? throw new InvalidOperationException($"Node {node} in a resolution is blank.");
        return value.Leaf?.EncryptionKey ?? value.Parent!.EncryptionKey;
    }
}
