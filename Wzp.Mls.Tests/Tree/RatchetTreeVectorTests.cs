using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Tests.Tree;

/// <summary>tree-validation.json and tree-operations.json, every case (suites 1 and 3).</summary>
public sealed class RatchetTreeVectorTests
{
    [Fact]
    public void TreeValidation_EveryVectorCase_MatchesResolutionsTreeHashesParentHashesAndSignatures()
    {
        var cases = 0;
        foreach (var v in Vectors.Load("tree-validation"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var tree = Load(suite, v.Hex("tree"));
            var resolutions = v.GetProperty("resolutions");
            var hashes = v.GetProperty("tree_hashes");
            Assert.Equal(hashes.GetArrayLength(), resolutions.GetArrayLength());
            for (uint node = 0; node < resolutions.GetArrayLength(); node++)
            {
                var expected = resolutions[(int)node].EnumerateArray().Select(e => e.GetUInt32()).ToArray();
                Assert.Equal(expected, tree.Resolution(node).ToArray());
                Vectors.Equal(Vectors.Hex(hashes[(int)node].GetString()!), tree.TreeHash(node), $"tree hash of node {node}");
            }
            Assert.True(tree.VerifyParentHashes(), $"parent hashes of case {cases}");
            Assert.True(tree.VerifyUnmergedLeaves(), $"unmerged leaves of case {cases}");
            Assert.True(tree.VerifyLeafSignatures(v.Hex("group_id")), $"leaf signatures of case {cases}");
            cases++;
        }
        Assert.Equal(28, cases);
    }

    [Fact]
    public void TreeValidation_TamperedParentHash_IsRejected()
    {
        var v = Vectors.Load("tree-validation").First(c => c.GetProperty("resolutions").GetArrayLength() >= 7);
        var suite = CipherSuite.Get(v.Suite());
        var tree = Load(suite, v.Hex("tree"));
        var parent = tree.Parent(tree.Root)!;
        var key = (byte[])parent.EncryptionKey.Clone();
        key[0] ^= 1;
        tree.SetParent(tree.Root, parent with { EncryptionKey = key });
        Assert.False(tree.VerifyParentHashes());
    }

    [Fact]
    public void TreeValidation_UnmergedLeafOutsideItsParent_IsRejected()
    {
        var v = Vectors.Load("tree-validation").First(c => c.GetProperty("resolutions").GetArrayLength() >= 7);
        var tree = Load(CipherSuite.Get(v.Suite()), v.Hex("tree"));
        var parent = tree.Parent(1)!;
        // Leaf 3 is not below node 1, whose subtree holds leaves 0 and 1.
        tree.SetParent(1, parent with { UnmergedLeaves = [.. parent.UnmergedLeaves, 3] });
        Assert.False(tree.VerifyUnmergedLeaves());
        tree.SetParent(1, parent with { UnmergedLeaves = [.. parent.UnmergedLeaves, 1, 1] });
        Assert.False(tree.VerifyUnmergedLeaves());
    }

    [Fact]
    public void TreeOperations_EveryVectorCase_MatchesTreeAndTreeHashAfterTheProposal()
    {
        var cases = 0;
        foreach (var v in Vectors.Load("tree-operations"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var tree = Load(suite, v.Hex("tree_before"));
            Vectors.Equal(v.Hex("tree_hash_before"), tree.TreeHash(), "tree hash before");
            var sender = v.GetProperty("proposal_sender").GetUInt32();
            switch (Tls.Decode<Proposal>(v.Hex("proposal")))
            {
                case AddProposal add:
                    tree.AddLeaf(add.KeyPackage.LeafNode);
                    break;
                case UpdateProposal update:
                    tree.UpdateLeaf(sender, update.LeafNode);
                    break;
                case RemoveProposal remove:
                    tree.RemoveLeaf(remove.Removed);
                    tree.Truncate();
                    break;
                default:
                    Assert.Fail("tree-operations holds only add, update and remove");
                    break;
            }
            Vectors.Equal(v.Hex("tree_after"), Tls.Encode(tree.ToRatchetTree()), "tree after");
            Vectors.Equal(v.Hex("tree_hash_after"), tree.TreeHash(), "tree hash after");
            cases++;
        }
        Assert.Equal(5, cases);
    }

    internal static RatchetTreeState Load(CipherSuite suite, byte[] encoded)
    {
        Assert.True(RatchetTreeState.TryFrom(suite, Tls.Decode<RatchetTree>(encoded), out var tree));
        return tree;
    }
}
