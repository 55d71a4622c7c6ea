using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;
using Wzp.Mls.Tree;

namespace Wzp.Mls.Tests.Tree;

/// <summary>The tree-hash cache: a change rehashes only its path, and the cached hash equals a fresh computation.</summary>
public sealed class RatchetTreeStateTests
{
    private static readonly CipherSuite Suite = CipherSuite.X25519Aes128GcmSha256Ed25519;

    private static LeafNode Leaf(int i)
    {
        var key = new byte[32];
        BitConverter.TryWriteBytes(key, i);
        return new LeafNode(key, key, Credential.Basic(key), new Capabilities([1], [1], [], [], [1]), LeafNodeSource.Update, null, null, [], new byte[64]);
    }

    [Fact]
    public void TreeHash_AfterOneLeafChangesIn1024_RehashesOnlyItsPath()
    {
        var tree = new RatchetTreeState(Suite);
        for (var i = 0; i < 1024; i++) tree.AddLeaf(Leaf(i));
        Assert.Equal(1024u, tree.LeafCount);
        tree.TreeHash();
        var before = tree.HashesComputed;
        tree.TreeHash();
        Assert.Equal(before, tree.HashesComputed);

        tree.SetLeaf(517, Leaf(5000));
        var updated = tree.TreeHash();
        Assert.Equal(before + 11, tree.HashesComputed); // the leaf and its ten ancestors

        Assert.True(RatchetTreeState.TryFrom(Suite, tree.ToRatchetTree(), out var fresh));
        Assert.Equal(fresh.TreeHash(), updated);
        Assert.Equal(2047, fresh.HashesComputed);
    }

    [Fact]
    public void TreeHash_OfAClone_SharesTheCacheButNotLaterChanges()
    {
        var tree = new RatchetTreeState(Suite);
        for (var i = 0; i < 8; i++) tree.AddLeaf(Leaf(i));
        var original = tree.TreeHash();
        var clone = tree.Clone();
        Assert.Equal(original, clone.TreeHash());
        Assert.Equal(0, clone.HashesComputed);
        clone.RemoveLeaf(7);
        clone.Truncate();
        Assert.NotEqual(original, clone.TreeHash());
        Assert.Equal(original, tree.TreeHash());
    }

    [Fact]
    public void RemoveLastLeaves_TruncatesToTheSmallestPowerOfTwo_AndAddReusesTheLeftmostBlank()
    {
        var tree = new RatchetTreeState(Suite);
        for (var i = 0; i < 5; i++) tree.AddLeaf(Leaf(i));
        Assert.Equal(8u, tree.LeafCount);
        tree.RemoveLeaf(4);
        tree.Truncate();
        Assert.Equal(4u, tree.LeafCount);
        tree.RemoveLeaf(1);
        tree.Truncate();
        Assert.Equal(4u, tree.LeafCount);
        Assert.Equal(1u, tree.AddLeaf(Leaf(9)));
        Assert.Equal(7, tree.ToRatchetTree().Nodes.Length);
    }

    [Fact]
    public void AddLeaf_IntoABlankLeftOfUnmergedLeaves_KeepsUnmergedLeavesSorted()
    {
        var tree = new RatchetTreeState(Suite);
        for (var i = 0; i < 4; i++) tree.AddLeaf(Leaf(i));
        tree.RemoveLeaf(1);
        // The root already lists leaf 3 (added after the root's last path); the new leaf fills blank leaf 1.
        tree.SetParent(3, new ParentNode(new byte[32], [], [3]));
        Assert.Equal(1u, tree.AddLeaf(Leaf(5)));
        Assert.Equal([1u, 3u], tree.Parent(3)!.UnmergedLeaves);
        Assert.True(tree.VerifyUnmergedLeaves());
        tree.SetParent(3, new ParentNode(new byte[32], [], [3, 1]));
        Assert.False(tree.VerifyUnmergedLeaves());
    }
}
