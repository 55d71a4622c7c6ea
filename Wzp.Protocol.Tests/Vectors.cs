using System.Text.Json;

namespace Wzp.Protocol.Tests;

/// <summary>shared/vectors/protocol-v2.json, copied into TestData so the tests run without the shared folder.</summary>
internal static class Vectors
{
    private static readonly JsonElement Cases = Load();

    private static JsonElement Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "protocol-v2.json");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return doc.RootElement.GetProperty("cases").Clone();
    }

    public static JsonElement Case(string name) => Cases.GetProperty(name);

    public static byte[] Hex(this JsonElement element, string name) => Convert.FromHexString(element.GetProperty(name).GetString()!);

    public static string Str(this JsonElement element, string name) => element.GetProperty(name).GetString()!;

    public static string ToHex(this byte[] bytes) => Convert.ToHexStringLower(bytes);

    public static string ToHex(this ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);
}
