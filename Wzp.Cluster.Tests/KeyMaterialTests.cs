using System.Collections.Immutable;
using System.Reflection;
using System.Text.RegularExpressions;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

/// <summary>
/// PROTOCOL.md §9: keys never leave the process that derived them, so no grain message or grain state may hold
/// one. Every byte-bearing or key-named member of those types is listed here after review; a new one fails this
/// test until someone reviews it and adds it with the reason it is public.
/// </summary>
public sealed partial class KeyMaterialTests
{
    private static readonly ImmutableSortedDictionary<string, string> Reviewed = new Dictionary<string, string>
    {
        ["GatewayRegistration.Credential"] = "the gateway credential of PROTOCOL.md §2: public key and cluster signature",
        ["GatewayRegistration.ClusterKey"] = "display fingerprint of the public cluster key, the one clients pin",
        ["LinkMessage.Payload"] = "signed link offer/accept bytes of PROTOCOL.md §8: public ephemerals, nonces, signatures",
        ["RoomMember.Fingerprint"] = "identity fingerprint, shown to every member",
        ["JoinRequest.Fingerprint"] = "identity fingerprint, shown to every member",
    }.ToImmutableSortedDictionary(StringComparer.Ordinal);

    [Fact]
    public void GrainMessagesAndState_HoldNoUnreviewedByteOrKeyMembers()
    {
        var assemblies = new[] { typeof(IRoomGrain).Assembly, typeof(RoomGrain).Assembly };
        var types = assemblies
            .SelectMany(assembly => assembly.GetTypes())
            .Where(type => type.GetCustomAttribute<GenerateSerializerAttribute>() is not null || typeof(Grain).IsAssignableFrom(type))
            .ToList();
        Assert.Contains(typeof(RoomEvent), types);
        Assert.Contains(typeof(RoomGrain), types);

        var found = types.SelectMany(SensitiveMembers).Order(StringComparer.Ordinal).ToList();

        Assert.Equal(Reviewed.Keys, found);
    }

    [Fact]
    public void Detector_FlagsByteArraysAndKeyNames()
    {
        Assert.Equal(
            ["Leaky.Blob", "Leaky.Chain", "Leaky.SessionKey", "Leaky._ivBytes"],
            SensitiveMembers(typeof(Leaky)).Order(StringComparer.Ordinal));
    }

    internal static IEnumerable<string> SensitiveMembers(Type type)
    {
        const BindingFlags Flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        var members = type.GetFields(Flags)
            .Where(field => !field.Name.Contains("k__BackingField", StringComparison.Ordinal))
            .Select(field => (field.Name, Type: field.FieldType))
            .Concat(type.GetProperties(Flags).Select(property => (property.Name, Type: property.PropertyType)));
        return members
            .Where(member => IsByteBearing(member.Type) || member.Type == typeof(Fingerprint) || KeyName().IsMatch(member.Name))
            .Select(member => $"{type.Name}.{member.Name}")
            .Distinct();
    }

    private static bool IsByteBearing(Type type) =>
        type == typeof(byte[]) || type == typeof(ImmutableArray<byte>) || type == typeof(ReadOnlyMemory<byte>)
        || type == typeof(Memory<byte>) || type == typeof(ArraySegment<byte>) || type == typeof(List<byte>);

    // "rekey" names a schedule (a rekey deadline, a rekey report), not key material.
    [GeneratedRegex("(?<!re)key|secret|seed|chain|nonce|(^|_)iv|mac|password|token|credential|signature|payload", RegexOptions.IgnoreCase)]
    private static partial Regex KeyName();

    private sealed class Leaky
    {
        private readonly byte[] _ivBytes = [];

        public int Harmless { get; set; }

        public ImmutableArray<byte> Blob { get; set; }

        public string SessionKey { get; set; } = "";

        public long Chain { get; set; }

        public int Length => _ivBytes.Length;
    }
}
