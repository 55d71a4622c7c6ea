using Wzp.Mls.Tree;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Tree;

/// <summary>tree-math.json: root, left, right, parent and sibling of every node (null where undefined).</summary>
public sealed class TreeMathTests
{
    [Fact]
    public void TreeMath_EveryVectorCase_MatchesEveryNode()
    {
        foreach (var v in Vectors.Load("tree-math"))
        {
            var n = v.GetProperty("n_leaves").GetUInt32();
            Assert.Equal(v.GetProperty("n_nodes").GetUInt32(), TreeMath.NodeWidth(n));
            Assert.Equal(v.GetProperty("root").GetUInt32(), TreeMath.Root(n));
            var width = TreeMath.NodeWidth(n);
            for (uint x = 0; x < width; x++)
            {
                Check(v, "left", x, () => TreeMath.Left(x));
                Check(v, "right", x, () => TreeMath.Right(x));
                Check(v, "parent", x, () => TreeMath.Parent(x, n));
                Check(v, "sibling", x, () => TreeMath.Sibling(x, n));
            }
        }
    }

    private static void Check(System.Text.Json.JsonElement v, string field, uint x, Func<uint> compute)
    {
        var expected = v.GetProperty(field)[(int)x];
        if (expected.ValueKind == System.Text.Json.JsonValueKind.Null)
            Assert.Throws<ArgumentException>(() => compute());
        else
            Assert.Equal(expected.GetUInt32(), compute());
    }
}
