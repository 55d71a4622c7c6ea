using System.Numerics;

namespace Wzp.Mls.Tree;

/// <summary>
/// Array-representation tree arithmetic (RFC 9420 §4.1, Appendix C). Nodes are numbered in-order: leaves even,
/// parents odd, a node's level the number of trailing one bits. RFC 9420 trees always have a power-of-two number
/// of leaves, so every parent has both children and parent/sibling need no truncation.
/// </summary>
public static class TreeMath
{
    /// <summary>The number of nodes of a tree of <paramref name="leafCount"/> leaves.</summary>
    public static uint NodeWidth(uint leafCount) => leafCount == 0 ? 0 : (2 * (leafCount - 1)) + 1;

    public static uint Level(uint node) => (uint)BitOperations.TrailingZeroCount(~node);

    public static bool IsLeaf(uint node) => (node & 1) == 0;

    public static uint LeafToNode(uint leafIndex) => 2 * leafIndex;

    public static uint NodeToLeaf(uint node)
    {
        if (!IsLeaf(node)) throw new ArgumentException($"Node {node} is not a leaf.", nameof(node));
        return node / 2;
    }

    /// <summary>The root of a tree of <paramref name="leafCount"/> leaves (a power of two).</summary>
    public static uint Root(uint leafCount)
    {
        if (leafCount == 0) throw new ArgumentOutOfRangeException(nameof(leafCount), "An empty tree has no root.");
        var width = NodeWidth(leafCount);
        return (1u << BitOperations.Log2(width)) - 1;
    }

    public static uint Left(uint node)
    {
        var k = Level(node);
        if (k == 0) throw new ArgumentException($"Leaf {node} has no children.", nameof(node));
        return node ^ (1u << (int)(k - 1));
    }

    public static uint Right(uint node)
    {
        var k = Level(node);
        if (k == 0) throw new ArgumentException($"Leaf {node} has no children.", nameof(node));
        return node ^ (3u << (int)(k - 1));
    }

    public static uint Parent(uint node, uint leafCount)
    {
        if (node == Root(leafCount)) throw new ArgumentException($"Node {node} is the root.", nameof(node));
        var k = Level(node);
        var b = (node >> (int)(k + 1)) & 1;
        return (node | (1u << (int)k)) ^ (b << (int)(k + 1));
    }

    public static uint Sibling(uint node, uint leafCount)
    {
        var parent = Parent(node, leafCount);
        return node < parent ? Right(parent) : Left(parent);
    }

    /// <summary>The nodes from <paramref name="node"/>'s parent up to the root.</summary>
    public static List<uint> DirectPath(uint node, uint leafCount)
    {
        var root = Root(leafCount);
        var path = new List<uint>();
        while (node != root)
        {
            node = Parent(node, leafCount);
            path.Add(node);
        }
        return path;
    }

    /// <summary>The siblings of the nodes on the path from <paramref name="node"/> to (excluding) the root.</summary>
    public static List<uint> Copath(uint node, uint leafCount)
    {
        var root = Root(leafCount);
        var copath = new List<uint>();
        while (node != root)
        {
            copath.Add(Sibling(node, leafCount));
            node = Parent(node, leafCount);
        }
        return copath;
    }

    /// <summary>True if <paramref name="ancestor"/>'s subtree contains <paramref name="node"/>.</summary>
    public static bool IsInSubtree(uint ancestor, uint node)
    {
        var k = (int)Level(ancestor);
        return (node >> (k + 1)) == (ancestor >> (k + 1));
    }
}
