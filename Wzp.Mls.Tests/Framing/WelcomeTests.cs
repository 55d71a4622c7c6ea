using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Framing;

/// <summary>
/// welcome.json: find our entry by KeyPackageRef, decrypt the GroupSecrets and the GroupInfo, verify the GroupInfo
/// signature with signer_pub and its confirmation tag against a key schedule started from the joiner secret.
/// </summary>
public sealed class WelcomeTests
{
    [Fact]
    public void Welcome_EveryVectorCase_DecryptsAndVerifiesGroupInfo()
    {
        foreach (var v in Vectors.Load("welcome"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var keyPackage = Tls.Decode<MlsMessage>(v.Hex("key_package")).KeyPackage!;
            Assert.True(keyPackage.VerifySignature(suite), "key package signature");
            var welcome = Tls.Decode<MlsMessage>(v.Hex("welcome")).Welcome!;
            Assert.Equal(suite.Id, welcome.CipherSuite);

            Assert.True(WelcomeProtection.TryDecryptGroupSecrets(suite, welcome, keyPackage.Reference(suite), v.Hex("init_priv"), out var secrets));
            Assert.Empty(secrets.Psks);
            var pskSecret = PskSecret.Compute(suite, []);
            var welcomeSecret = EpochSecrets.DeriveWelcomeSecret(suite, secrets.JoinerSecret, pskSecret);
            Assert.True(WelcomeProtection.TryDecryptGroupInfo(suite, welcome, welcomeSecret, out var groupInfo));
            Assert.True(groupInfo.VerifySignature(suite, v.Hex("signer_pub")), "GroupInfo signature");

            using var epoch = EpochSecrets.FromJoinerSecret(suite, secrets.JoinerSecret, pskSecret, Tls.Encode(groupInfo.GroupContext));
            Vectors.Equal(groupInfo.ConfirmationTag, TranscriptHash.ConfirmationTag(suite, epoch.ConfirmationKey, groupInfo.GroupContext.ConfirmedTranscriptHash), "confirmation_tag");

            var wrongKey = v.Hex("init_priv");
            wrongKey[5] ^= 1;
            Assert.False(WelcomeProtection.TryDecryptGroupSecrets(suite, welcome, keyPackage.Reference(suite), wrongKey, out _));
        }
    }

    [Fact]
    public void Welcome_OwnEncryption_RoundTrips()
    {
        foreach (var v in Vectors.Load("welcome"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var keyPackage = Tls.Decode<MlsMessage>(v.Hex("key_package")).KeyPackage!;
            var original = Tls.Decode<MlsMessage>(v.Hex("welcome")).Welcome!;
            Assert.True(WelcomeProtection.TryDecryptGroupSecrets(suite, original, keyPackage.Reference(suite), v.Hex("init_priv"), out var secrets));
            var welcomeSecret = EpochSecrets.DeriveWelcomeSecret(suite, secrets.JoinerSecret, new byte[suite.HashLength]);
            Assert.True(WelcomeProtection.TryDecryptGroupInfo(suite, original, welcomeSecret, out var groupInfo));

            var encryptedGroupInfo = WelcomeProtection.EncryptGroupInfo(suite, welcomeSecret, groupInfo);
            var entry = WelcomeProtection.EncryptGroupSecrets(suite, keyPackage, encryptedGroupInfo, secrets);
            var rebuilt = Tls.Decode<Welcome>(Tls.Encode(new Welcome(suite.Id, [entry], encryptedGroupInfo)));
            Assert.True(WelcomeProtection.TryDecryptGroupSecrets(suite, rebuilt, keyPackage.Reference(suite), v.Hex("init_priv"), out var again));
            Vectors.Equal(secrets.JoinerSecret, again.JoinerSecret, "joiner_secret");
            Assert.True(WelcomeProtection.TryDecryptGroupInfo(suite, rebuilt, welcomeSecret, out var info));
            Vectors.Equal(Tls.Encode(groupInfo), Tls.Encode(info), "GroupInfo");
        }
    }
}
