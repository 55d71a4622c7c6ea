using System.Text.Json;

namespace Wzp.Mls.Tests.Support;

/// <summary>Reads the mlswg interop vectors copied under TestData/mls (format: mls-implementations test-vectors.md).</summary>
internal static class Vectors
{
    public static JsonElement[] Load(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "mls", name + ".json");
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var cases = document.RootElement.EnumerateArray().Select(e => e.Clone()).ToArray();
        Assert.NotEmpty(cases);
        return cases;
    }

    public static byte[] Hex(this JsonElement element, string property) => Convert.FromHexString(element.GetProperty(property).GetString()!);

    public static byte[] Hex(string hex) => Convert.FromHexString(hex);

    public static string ToHex(byte[] bytes) => Convert.ToHexStringLower(bytes);

    public static ushort Suite(this JsonElement element) => element.GetProperty("cipher_suite").GetUInt16();

    /// <summary>Asserts hex equality so a failure prints both values readably.</summary>
    public static void Equal(byte[] expected, ReadOnlySpan<byte> actual, string what)
        => Assert.True(expected.AsSpan().SequenceEqual(actual), $"{what}: expected {ToHex(expected)}, got {ToHex(actual.ToArray())}");
}
