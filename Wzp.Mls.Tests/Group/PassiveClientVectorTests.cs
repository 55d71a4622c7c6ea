using System.Text.Json;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Group;

/// <summary>
/// passive-client-welcome.json, passive-client-handling-commit.json and passive-client-random.json, every case:
/// join from the Welcome with the given private keys, then process every epoch's proposals and commit; the epoch
/// authenticator must match the vector's after the join and after every commit.
/// </summary>
public sealed class PassiveClientVectorTests
{
    [Theory]
    [InlineData("passive-client-welcome", 16)]
    [InlineData("passive-client-handling-commit", 26)]
    [InlineData("passive-client-random", 1)]
    public void PassiveClient_EveryVectorCase_FollowsEveryEpoch(string file, int expectedCases)
    {
        var cases = 0;
        var failures = new List<string>();
        foreach (var v in Vectors.Load(file))
        {
            try
            {
                Run(v);
            }
            catch (Exception e) when (e is MlsGroupException or Xunit.Sdk.XunitException)
            {
                failures.Add($"case {cases}: {e.Message}");
            }
            cases++;
        }
        Assert.Equal(expectedCases, cases);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static void Run(JsonElement v)
    {
        var suite = CipherSuite.Get(v.Suite());
        var keyPackage = Tls.Decode<MlsMessage>(v.Hex("key_package")).KeyPackage!;
        var signaturePrivate = v.Hex("signature_priv");
        var encryptionPrivate = v.Hex("encryption_priv");
        var initPrivate = v.Hex("init_priv");
        Vectors.Equal(keyPackage.LeafNode.SignatureKey, suite.SignaturePublicKey(signaturePrivate), "signature key");
        Vectors.Equal(keyPackage.LeafNode.EncryptionKey, suite.Hpke.PublicKeyOf(encryptionPrivate), "encryption key");
        Vectors.Equal(keyPackage.InitKey, suite.Hpke.PublicKeyOf(initPrivate), "init key");

        var psks = new Dictionary<string, byte[]>();
        foreach (var psk in v.GetProperty("external_psks").EnumerateArray())
            psks[MlsGroupOptions.PskKey(psk.Hex("psk_id"))] = psk.Hex("psk");
        // The vectors' key packages carry fixed lifetimes from when they were generated.
        var options = new MlsGroupOptions { Clock = null, ExternalPsks = psks };
        RatchetTree? tree = v.GetProperty("ratchet_tree").ValueKind == JsonValueKind.Null ? null : Tls.Decode<RatchetTree>(v.Hex("ratchet_tree"));
        using var bundle = new KeyPackageBundle(keyPackage, initPrivate, encryptionPrivate, signaturePrivate);
        using var group = MlsGroup.Join(Tls.Decode<MlsMessage>(v.Hex("welcome")).Welcome!, bundle, tree, options);
        Vectors.Equal(v.Hex("initial_epoch_authenticator"), group.EpochAuthenticator, "initial epoch authenticator");

        var epoch = 0;
        foreach (var e in v.GetProperty("epochs").EnumerateArray())
        {
            foreach (var proposal in e.GetProperty("proposals").EnumerateArray())
            {
                var processed = group.Process(Tls.Decode<MlsMessage>(Vectors.Hex(proposal.GetString()!)));
                Assert.Equal(ProcessedKind.Proposal, processed.Kind);
            }
            var commit = group.Process(Tls.Decode<MlsMessage>(e.Hex("commit")));
            Assert.Equal(ProcessedKind.Commit, commit.Kind);
            Vectors.Equal(e.Hex("epoch_authenticator"), group.EpochAuthenticator, $"epoch authenticator after commit {epoch}");
            epoch++;
        }
    }
}
