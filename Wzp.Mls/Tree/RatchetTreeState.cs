using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tree;

/// <summary>
/// The public ratchet tree of a group (RFC 9420 §4, §7): leaves and parents in array order, blanks as null, always
/// a power-of-two number of leaves (trailing blanks are implicit on the wire and explicit here). Tree hashes are
/// cached per node and invalidated only along the path of a node that changes, so an epoch that touches one path
/// of a 1,000-member tree rehashes about ten nodes.
/// </summary>
public sealed class RatchetTreeState
{
    private readonly CipherSuite _suite;
    private Node?[] _nodes;
    private byte[]?[] _hashes;

    public RatchetTreeState(CipherSuite suite, uint leafCount = 1)
    {
        ArgumentNullException.ThrowIfNull(suite);
        if (leafCount == 0 || !uint.IsPow2(leafCount)) throw new ArgumentOutOfRangeException(nameof(leafCount), "A tree has a power-of-two number of leaves.");
        _suite = suite;
        _nodes = new Node?[TreeMath.NodeWidth(leafCount)];
        _hashes = new byte[]?[_nodes.Length];
    }

    private RatchetTreeState(CipherSuite suite, Node?[] nodes, byte[]?[] hashes)
    {
        _suite = suite;
        _nodes = nodes;
        _hashes = hashes;
    }

    public CipherSuite Suite => _suite;

    /// <summary>How many node hashes this instance computed; for tests of the cache.</summary>
    internal long HashesComputed { get; private set; }

    public uint LeafCount => ((uint)_nodes.Length + 1) / 2;

    public uint NodeCount => (uint)_nodes.Length;

    public uint Root => TreeMath.Root(LeafCount);

    /// <summary>
    /// Builds the tree from a ratchet_tree (extension or out of band). False if the node list cannot be a tree:
    /// empty, of even length, ending in a blank, or with a leaf where a parent belongs or the other way round.
    /// </summary>
    public static bool TryFrom(CipherSuite suite, RatchetTree tree, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out RatchetTreeState? state)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(tree);
        state = null;
        var count = tree.Nodes.Length;
        if (count == 0 || count % 2 == 0 || tree.Nodes[^1] is null) return false;
        var leaves = uint.Max(1, (uint)((count + 1) / 2));
        leaves = uint.IsPow2(leaves) ? leaves : (uint)System.Numerics.BitOperations.RoundUpToPowerOf2(leaves);
        var nodes = new Node?[TreeMath.NodeWidth(leaves)];
        for (var i = 0; i < count; i++)
        {
            var node = tree.Nodes[i];
            if (node is not null && (node.Type == NodeType.Leaf) != TreeMath.IsLeaf((uint)i)) return false;
            nodes[i] = node;
        }
        state = new RatchetTreeState(suite, nodes, new byte[]?[nodes.Length]);
        return true;
    }

    /// <summary>The ratchet_tree form: the node list without trailing blanks (RFC 9420 §12.4.3.3).</summary>
    public RatchetTree ToRatchetTree()
    {
        var last = _nodes.Length - 1;
        while (last > 0 && _nodes[last] is null) last--;
        return new RatchetTree(_nodes[..(last + 1)]);
    }

    /// <summary>A copy sharing the immutable node records and hashes, for staging a commit.</summary>
    public RatchetTreeState Clone() => new(_suite, (Node?[])_nodes.Clone(), (byte[]?[])_hashes.Clone());

    public Node? NodeAt(uint node) => _nodes[node];

    public LeafNode? Leaf(uint leafIndex) => leafIndex < LeafCount ? _nodes[TreeMath.LeafToNode(leafIndex)]?.Leaf : null;

    public ParentNode? Parent(uint node) => _nodes[node]?.Parent;

    /// <summary>The non-blank leaves, with their indices.</summary>
    public IEnumerable<(uint Index, LeafNode Leaf)> Members()
    {
        for (uint i = 0; i < LeafCount; i++)
            if (Leaf(i) is { } leaf) yield return (i, leaf);
    }

    public int MemberCount => Members().Count();

    public void SetLeaf(uint leafIndex, LeafNode? leaf) => Set(TreeMath.LeafToNode(leafIndex), leaf is null ? null : Node.OfLeaf(leaf));

    public void SetParent(uint node, ParentNode? parent)
    {
        if (TreeMath.IsLeaf(node)) throw new ArgumentException($"Node {node} is a leaf.", nameof(node));
        Set(node, parent is null ? null : Node.OfParent(parent));
    }

    /// <summary>Blanks every parent on the leaf's direct path (an Update, a Remove or a new UpdatePath).</summary>
    public void BlankDirectPath(uint leafIndex)
    {
        if (LeafCount == 1) return;
        foreach (var node in TreeMath.DirectPath(TreeMath.LeafToNode(leafIndex), LeafCount)) Set(node, null);
    }

    /// <summary>
    /// Add (RFC 9420 §12.1.1): the leftmost blank leaf, or a new leaf after doubling the tree; the new leaf joins the
    /// unmerged leaves of every non-blank parent above it.
    /// </summary>
    public uint AddLeaf(LeafNode leaf)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        uint index = 0;
        while (index < LeafCount && Leaf(index) is not null) index++;
        if (index == LeafCount) Extend();
        SetLeaf(index, leaf);
        if (LeafCount > 1)
        {
            foreach (var node in TreeMath.DirectPath(TreeMath.LeafToNode(index), LeafCount))
            {
                // RFC 9420 §7.1: unmerged_leaves is sorted in increasing order; a new leaf may fill a blank to the
                // left of leaves already listed, so it is inserted in place rather than appended.
                if (_nodes[node]?.Parent is { } parent)
                    Set(node, Node.OfParent(parent with { UnmergedLeaves = [.. parent.UnmergedLeaves.Append(index).Order()] }));
            }
        }
        return index;
    }

    /// <summary>Update (RFC 9420 §12.1.2): the new leaf replaces the old and the direct path is blanked.</summary>
    public void UpdateLeaf(uint leafIndex, LeafNode leaf)
    {
        SetLeaf(leafIndex, leaf);
        BlankDirectPath(leafIndex);
    }

    /// <summary>Remove (RFC 9420 §12.1.3): blanks the leaf and its direct path. The caller truncates after all removes.</summary>
    public void RemoveLeaf(uint leafIndex)
    {
        SetLeaf(leafIndex, null);
        BlankDirectPath(leafIndex);
    }

    /// <summary>Halves the tree while its right half is entirely blank (RFC 9420 §7.7).</summary>
    public void Truncate()
    {
        while (LeafCount > 1)
        {
            var half = LeafCount / 2;
            var rightBlank = true;
            for (var i = half; i < LeafCount && rightBlank; i++) rightBlank = Leaf(i) is null;
            if (!rightBlank) return;
            var width = TreeMath.NodeWidth(half);
            _nodes = _nodes[..(int)width];
            _hashes = _hashes[..(int)width];
        }
    }

    /// <summary>Doubles the number of leaves; existing nodes keep their indices and cached hashes.</summary>
    public void Extend()
    {
        var width = TreeMath.NodeWidth(LeafCount * 2);
        Array.Resize(ref _nodes, (int)width);
        Array.Resize(ref _hashes, (int)width);
        // Only the old root's ancestors are new parents, and they start blank with no hash.
    }

    /// <summary>The resolution of a node (RFC 9420 §4.1.1) in left-to-right order.</summary>
    public List<uint> Resolution(uint node)
    {
        var result = new List<uint>();
        AppendResolution(node, result);
        return result;
    }

    /// <summary>
    /// The filtered direct path of a leaf (RFC 9420 §4.1.2) and the copath child of each of its nodes: direct-path
    /// nodes whose copath child has an empty resolution are dropped.
    /// </summary>
    public List<(uint Node, uint CopathChild)> FilteredDirectPath(uint leafIndex)
    {
        var result = new List<(uint, uint)>();
        if (LeafCount == 1) return result;
        var node = TreeMath.LeafToNode(leafIndex);
        var root = Root;
        while (node != root)
        {
            var sibling = TreeMath.Sibling(node, LeafCount);
            var parent = TreeMath.Parent(node, LeafCount);
            if (HasNonBlankDescendantOrSelf(sibling)) result.Add((parent, sibling));
            node = parent;
        }
        return result;
    }

    /// <summary>The tree hash of the root (RFC 9420 §7.8).</summary>
    public byte[] TreeHash() => TreeHash(Root);

    /// <summary>The tree hash of the subtree at <paramref name="node"/>, cached until a node below it changes.</summary>
    public byte[] TreeHash(uint node)
    {
        if (_hashes[node] is { } cached) return cached;
        byte[] hash;
        if (TreeMath.IsLeaf(node))
        {
            hash = LeafHash(node, _nodes[node]?.Leaf);
        }
        else
        {
            var left = TreeHash(TreeMath.Left(node));
            var right = TreeHash(TreeMath.Right(node));
            hash = ParentHashOfSubtree(_nodes[node]?.Parent, left, right);
        }
        _hashes[node] = hash;
        return hash;
    }

    /// <summary>
    /// The parent hash of <paramref name="parent"/> as seen from its child on the other side of
    /// <paramref name="copathChild"/> (RFC 9420 §7.9): its key, its own parent hash, and the tree hash of the copath
    /// child with the parent's unmerged leaves taken out.
    /// </summary>
    public byte[] ParentHash(uint parent, uint copathChild)
    {
        var node = _nodes[parent]?.Parent ?? throw new InvalidOperationException($"Parent node {parent} is blank.");
        return ParentHash(node, OriginalSiblingTreeHash(copathChild, node.UnmergedLeaves));
    }

    public byte[] ParentHash(ParentNode node, ReadOnlySpan<byte> originalSiblingTreeHash)
    {
        ArgumentNullException.ThrowIfNull(node);
        var writer = new TlsWriter(128);
        writer.WriteOpaque(node.EncryptionKey);
        writer.WriteOpaque(node.ParentHash);
        writer.WriteOpaque(originalSiblingTreeHash);
        return _suite.Hash(writer.WrittenSpan);
    }

    /// <summary>
    /// Checks that every non-blank parent is parent-hash valid (RFC 9420 §7.9.2), top down: exactly one descendant
    /// D per parent P, in the resolution of one child C with P's unmerged leaves under C being the rest of that
    /// resolution, carries the parent hash of P with the other child as copath child. Sibling tree hashes come from
    /// the cache, so the whole check costs about two hashes per parent.
    /// </summary>
    public bool VerifyParentHashes()
    {
        if (LeafCount == 1) return true;
        for (uint p = 1; p < _nodes.Length; p += 2)
        {
            if (_nodes[p]?.Parent is not { } parent) continue;
            var covered = 0;
            var left = TreeMath.Left(p);
            var right = TreeMath.Right(p);
            foreach (var (child, sibling) in new[] { (left, right), (right, left) })
            {
                if (LinkedDescendant(parent, child) is not { } d) continue;
                var expected = ParentHash(parent, OriginalSiblingTreeHash(sibling, parent.UnmergedLeaves));
                if (ParentHashField(d) is { } actual && actual.AsSpan().SequenceEqual(expected)) covered++;
            }
            if (covered != 1) return false;
        }
        return true;
    }

    /// <summary>
    /// Checks the unmerged_leaves lists (RFC 9420 §7.1, §7.9.2's precondition): strictly increasing, each a non-blank
    /// leaf below the parent, and every non-blank parent between that leaf and this one lists it too.
    /// </summary>
    public bool VerifyUnmergedLeaves()
    {
        for (uint p = 1; p < _nodes.Length; p += 2)
        {
            if (_nodes[p]?.Parent is not { } parent) continue;
            long previous = -1;
            foreach (var leaf in parent.UnmergedLeaves)
            {
                if (leaf <= previous || leaf >= LeafCount || Leaf(leaf) is null) return false;
                previous = leaf;
                var node = TreeMath.LeafToNode(leaf);
                if (!TreeMath.IsInSubtree(p, node)) return false;
                for (var between = TreeMath.Parent(node, LeafCount); between != p; between = TreeMath.Parent(between, LeafCount))
                    if (_nodes[between]?.Parent is { } middle && !middle.UnmergedLeaves.Contains(leaf)) return false;
            }
        }
        return true;
    }

    /// <summary>True if every non-blank leaf's signature verifies with <paramref name="groupId"/> and its index.</summary>
    public bool VerifyLeafSignatures(ReadOnlySpan<byte> groupId)
    {
        foreach (var (index, leaf) in Members())
            if (!leaf.VerifySignature(_suite, groupId, index)) return false;
        return true;
    }

    /// <summary>
    /// Per-node tree hashes of nodes below <paramref name="node"/> with the leaves in <paramref name="removed"/>
    /// blanked and dropped from unmerged lists: the "original" tree hash of §7.9. Uses the cache where no removed
    /// leaf lies below.
    /// </summary>
    public byte[] OriginalSiblingTreeHash(uint node, IReadOnlyList<uint> removed)
    {
        if (removed.Count == 0) return TreeHash(node);
        var any = false;
        foreach (var leaf in removed) any |= TreeMath.IsInSubtree(node, TreeMath.LeafToNode(leaf));
        if (!any) return TreeHash(node);
        if (TreeMath.IsLeaf(node)) return LeafHash(node, null);
        var left = OriginalSiblingTreeHash(TreeMath.Left(node), removed);
        var right = OriginalSiblingTreeHash(TreeMath.Right(node), removed);
        var parent = _nodes[node]?.Parent;
        if (parent is not null) parent = parent with { UnmergedLeaves = [.. parent.UnmergedLeaves.Where(l => !removed.Contains(l))] };
        return ParentHashOfSubtree(parent, left, right);
    }

    /// <summary>The leaf index holding a leaf with this encryption or signature key, if any.</summary>
    public uint? FindLeaf(Func<LeafNode, bool> predicate)
    {
        foreach (var (index, leaf) in Members())
            if (predicate(leaf)) return index;
        return null;
    }

    private void Set(uint node, Node? value)
    {
        _nodes[node] = value;
        Invalidate(node);
    }

    private void Invalidate(uint node)
    {
        var root = Root;
        while (true)
        {
            _hashes[node] = null;
            if (node == root) return;
            node = TreeMath.Parent(node, LeafCount);
        }
    }

    private void AppendResolution(uint node, List<uint> result)
    {
        var value = _nodes[node];
        if (value?.Leaf is not null)
        {
            result.Add(node);
        }
        else if (value?.Parent is { } parent)
        {
            result.Add(node);
            foreach (var leaf in parent.UnmergedLeaves) result.Add(TreeMath.LeafToNode(leaf));
        }
        else if (!TreeMath.IsLeaf(node))
        {
            AppendResolution(TreeMath.Left(node), result);
            AppendResolution(TreeMath.Right(node), result);
        }
    }

    private bool HasNonBlankDescendantOrSelf(uint node)
    {
        if (_nodes[node] is not null) return true;
        if (TreeMath.IsLeaf(node)) return false;
        return HasNonBlankDescendantOrSelf(TreeMath.Left(node)) || HasNonBlankDescendantOrSelf(TreeMath.Right(node));
    }

    /// <summary>The unique D in C's resolution that P's unmerged leaves under C do not account for, if there is one.</summary>
    private uint? LinkedDescendant(ParentNode parent, uint child)
    {
        var resolution = Resolution(child);
        var unmergedUnder = new HashSet<uint>();
        foreach (var leaf in parent.UnmergedLeaves)
        {
            var n = TreeMath.LeafToNode(leaf);
            if (TreeMath.IsInSubtree(child, n)) unmergedUnder.Add(n);
        }
        uint? d = null;
        var accounted = 0;
        foreach (var n in resolution)
        {
            if (unmergedUnder.Contains(n))
            {
                accounted++;
                continue;
            }
            if (d is not null) return null;
            d = n;
        }
        return accounted == unmergedUnder.Count ? d : null;
    }

    private byte[]? ParentHashField(uint node)
    {
        var value = _nodes[node];
        if (value?.Leaf is { } leaf) return leaf.Source == LeafNodeSource.Commit ? leaf.ParentHash : null;
        return value?.Parent?.ParentHash;
    }

    private byte[] LeafHash(uint node, LeafNode? leaf)
    {
        HashesComputed++;
        var writer = new TlsWriter(512);
        writer.WriteUInt8((byte)NodeType.Leaf);
        writer.WriteUInt32(TreeMath.NodeToLeaf(node));
        writer.WriteOptional(leaf);
        return _suite.Hash(writer.WrittenSpan);
    }

    private byte[] ParentHashOfSubtree(ParentNode? parent, ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        HashesComputed++;
        var writer = new TlsWriter(256);
        writer.WriteUInt8((byte)NodeType.Parent);
        writer.WriteOptional(parent);
        writer.WriteOpaque(left);
        writer.WriteOpaque(right);
        return _suite.Hash(writer.WrittenSpan);
    }
}
