using System.Text.Json;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Tests.Tree;

/// <summary>treekem.json, every case and every update path: decapsulation by every receiver, then a fresh encapsulation.</summary>
public sealed class TreeKemVectorTests
{
    [Fact]
    public void TreeKem_EveryVectorCase_DecapsulatesEveryPathForEveryReceiverAndEncapsulatesAnew()
    {
        var cases = 0;
        var paths = 0;
        foreach (var v in Vectors.Load("treekem"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var groupId = v.Hex("group_id");
            var epoch = v.GetProperty("epoch").GetUInt64();
            var confirmed = v.Hex("confirmed_transcript_hash");
            var encodedTree = v.Hex("ratchet_tree");
            var tree = RatchetTreeVectorTests.Load(suite, encodedTree);
            Assert.True(tree.VerifyParentHashes());
            GroupContext ContextOf(byte[] treeHash) => new(ProtocolVersion.Mls10, suite.Id, groupId, epoch, treeHash, confirmed, []);

            var privates = new Dictionary<uint, JsonElement>();
            foreach (var leaf in v.GetProperty("leaves_private").EnumerateArray())
            {
                var index = leaf.GetProperty("index").GetUInt32();
                privates[index] = leaf;
                using var keys = PrivateState(suite, tree, leaf);
                Assert.Equal(index, keys.LeafIndex);
            }

            foreach (var update in v.GetProperty("update_paths").EnumerateArray())
            {
                var sender = update.GetProperty("sender").GetUInt32();
                var updatePath = Tls.Decode<UpdatePath>(update.Hex("update_path"));
                Assert.True(updatePath.LeafNode.VerifySignature(suite, groupId, sender));
                var secrets = update.GetProperty("path_secrets");
                byte[]? treeHashAfter = null;
                foreach (var (receiver, leaf) in privates)
                {
                    if (receiver == sender) continue;
                    var staged = RatchetTreeVectorTests.Load(suite, encodedTree);
                    using var keys = PrivateState(suite, staged, leaf);
                    Assert.True(
                        TreeKem.TryDecapsulate(staged, sender, updatePath, ContextOf, [], keys, out var commitSecret, out var pathSecret, out var error),
                        $"case {cases}, sender {sender}, receiver {receiver}: {error}");
                    Vectors.Equal(Vectors.Hex(secrets[(int)receiver].GetString()!), pathSecret, $"path secret for {receiver}");
                    Vectors.Equal(update.Hex("commit_secret"), commitSecret, $"commit secret for {receiver}");
                    Assert.True(staged.VerifyParentHashes());
                    treeHashAfter = staged.TreeHash();
                }
                Assert.NotNull(treeHashAfter);
                Vectors.Equal(update.Hex("tree_hash_after"), treeHashAfter, "tree hash after");

                // A fresh path from the same sender must be processable by every other member.
                var encapTree = RatchetTreeVectorTests.Load(suite, encodedTree);
                using var senderKeys = PrivateState(suite, encapTree, privates[sender]);
                var template = encapTree.Leaf(sender)!;
                var (newPath, newSecrets) = TreeKem.Encapsulate(encapTree, sender, template, privates[sender].Hex("signature_priv"), groupId, ContextOf, [], senderKeys);
                using (newSecrets)
                {
                    Assert.True(encapTree.VerifyParentHashes());
                    Assert.True(newPath.LeafNode.VerifySignature(suite, groupId, sender));
                    foreach (var (receiver, leaf) in privates)
                    {
                        if (receiver == sender) continue;
                        var staged = RatchetTreeVectorTests.Load(suite, encodedTree);
                        using var keys = PrivateState(suite, staged, leaf);
                        Assert.True(TreeKem.TryDecapsulate(staged, sender, newPath, ContextOf, [], keys, out var commitSecret, out _, out var error), $"new path to {receiver}: {error}");
                        Vectors.Equal(newSecrets.CommitSecret, commitSecret, $"new commit secret for {receiver}");
                        Vectors.Equal(encapTree.TreeHash(), staged.TreeHash(), "tree hash after the new path");
                    }
                }
                paths++;
            }
            cases++;
        }
        Assert.Equal(22, cases);
        Assert.True(paths >= cases);
    }

    /// <summary>A member's private keys from leaves_private, checked against the public tree.</summary>
    private static TreePrivateKeys PrivateState(CipherSuite suite, RatchetTreeState tree, JsonElement leaf)
    {
        var index = leaf.GetProperty("index").GetUInt32();
        var keys = new TreePrivateKeys(index);
        var encryptionPrivate = leaf.Hex("encryption_priv");
        Vectors.Equal(tree.Leaf(index)!.EncryptionKey, suite.Hpke.PublicKeyOf(encryptionPrivate), "leaf key");
        keys.Set(TreeMath.LeafToNode(index), encryptionPrivate);
        foreach (var entry in leaf.GetProperty("path_secrets").EnumerateArray())
        {
            var node = entry.GetProperty("node").GetUInt32();
            var (privateKey, publicKey) = TreeKem.NodeKeyPair(suite, entry.Hex("path_secret"));
            Vectors.Equal(tree.Parent(node)!.EncryptionKey, publicKey, $"key of node {node}");
            keys.Set(node, privateKey);
        }
        return keys;
    }
}
