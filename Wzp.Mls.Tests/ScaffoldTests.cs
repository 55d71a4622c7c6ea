namespace Wzp.Mls.Tests;

public sealed class TestDataTests
{
    [Fact]
    public void Interop_vectors_are_present()
    {
        foreach (var name in new[] { "tree-math", "crypto-basics", "secret-tree", "key-schedule", "messages" })
            Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "TestData", "mls", name + ".json")), name);
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "TestData", "sframe", "test-vectors.json")));
    }
}
