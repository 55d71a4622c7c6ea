using System.Text;
using Wzp.Mls.Crypto;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Crypto;

/// <summary>crypto-basics.json: RefHash, ExpandWithLabel, DeriveSecret, DeriveTreeSecret, Sign/VerifyWithLabel, Encrypt/DecryptWithLabel.</summary>
public sealed class CryptoBasicsTests
{
    [Fact]
    public void CryptoBasics_EveryVectorCase_Matches()
    {
        foreach (var v in Vectors.Load("crypto-basics"))
        {
            var suite = CipherSuite.Get(v.Suite());

            var refHash = v.GetProperty("ref_hash");
            Vectors.Equal(refHash.Hex("out"), suite.RefHash(Label(refHash), refHash.Hex("value")), "RefHash");

            var expand = v.GetProperty("expand_with_label");
            Vectors.Equal(expand.Hex("out"), suite.ExpandWithLabel(expand.Hex("secret"), Label(expand), expand.Hex("context"), expand.GetProperty("length").GetInt32()), "ExpandWithLabel");

            var derive = v.GetProperty("derive_secret");
            Vectors.Equal(derive.Hex("out"), suite.DeriveSecret(derive.Hex("secret"), Label(derive)), "DeriveSecret");

            var tree = v.GetProperty("derive_tree_secret");
            Vectors.Equal(tree.Hex("out"), suite.DeriveTreeSecret(tree.Hex("secret"), Label(tree), tree.GetProperty("generation").GetUInt32(), tree.GetProperty("length").GetInt32()), "DeriveTreeSecret");

            var sign = v.GetProperty("sign_with_label");
            Assert.True(suite.VerifyWithLabel(sign.Hex("pub"), Label(sign), sign.Hex("content"), sign.Hex("signature")), "VerifyWithLabel of the vector's signature");
            var ours = suite.SignWithLabel(sign.Hex("priv"), Label(sign), sign.Hex("content"));
            // Ed25519 is deterministic, so our signature must be the vector's byte for byte.
            Vectors.Equal(sign.Hex("signature"), ours, "SignWithLabel");
            Assert.False(suite.VerifyWithLabel(sign.Hex("pub"), "other"u8, sign.Hex("content"), sign.Hex("signature")));

            var enc = v.GetProperty("encrypt_with_label");
            Assert.True(suite.TryDecryptWithLabel(enc.Hex("priv"), Label(enc), enc.Hex("context"), enc.Hex("kem_output"), enc.Hex("ciphertext"), out var plaintext), "DecryptWithLabel");
            Vectors.Equal(enc.Hex("plaintext"), plaintext, "DecryptWithLabel plaintext");
            var sealedAgain = suite.EncryptWithLabel(enc.Hex("pub"), Label(enc), enc.Hex("context"), enc.Hex("plaintext"));
            Assert.True(suite.TryDecryptWithLabel(enc.Hex("priv"), Label(enc), enc.Hex("context"), sealedAgain.KemOutput, sealedAgain.Ciphertext, out var again));
            Vectors.Equal(enc.Hex("plaintext"), again, "EncryptWithLabel round trip");
            Assert.False(suite.TryDecryptWithLabel(enc.Hex("priv"), "other"u8, enc.Hex("context"), enc.Hex("kem_output"), enc.Hex("ciphertext"), out _));
        }
    }

    private static byte[] Label(System.Text.Json.JsonElement e) => Encoding.ASCII.GetBytes(e.GetProperty("label").GetString()!);
}
