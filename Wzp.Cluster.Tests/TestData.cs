using Bogus;
using Wzp.Grains;

namespace Wzp.Cluster.Tests;

/// <summary>Seeded generators: a failing test reproduces with the same seed.</summary>
public sealed class TestData(int seed)
{
    private readonly Faker _faker = new() { Random = new Randomizer(seed) };

    public Randomizer Random => _faker.Random;

    public string RoomName() => $"{_faker.Lorem.Word()}-{_faker.Random.AlphaNumeric(10)}";

    public string GatewayId() => $"gw-{_faker.Internet.DomainWord()}-{_faker.Random.AlphaNumeric(8)}";

    public Fingerprint Fingerprint() => Grains.Fingerprint.FromBytes(_faker.Random.Bytes(Grains.Fingerprint.Length));

    public string Alias()
    {
        var alias = _faker.Name.FirstName();
        return alias.Length <= RoomLimits.MaxAliasLength ? alias : alias[..RoomLimits.MaxAliasLength];
    }

    public (Fingerprint Fingerprint, string Alias) Member() => (Fingerprint(), Alias());
}
