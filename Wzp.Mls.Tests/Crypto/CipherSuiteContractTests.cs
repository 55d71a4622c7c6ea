using System.Security.Cryptography;
using Wzp.Mls.Crypto;

namespace Wzp.Mls.Tests.Crypto;

/// <summary>Contract tests run against both cipher suites: what every suite must do whatever its AEAD.</summary>
public sealed class CipherSuiteContractTests
{
    public static TheoryData<ushort> Suites => [0x0001, 0x0003];

    [Theory]
    [MemberData(nameof(Suites))]
    public void Aead_SealThenOpen_RoundTripsAndRejectsTampering(ushort id)
    {
        var suite = CipherSuite.Get(id);
        var key = RandomNumberGenerator.GetBytes(suite.AeadKeyLength);
        var nonce = RandomNumberGenerator.GetBytes(suite.AeadNonceLength);
        var plaintext = RandomNumberGenerator.GetBytes(100);
        var ciphertext = suite.Seal(key, nonce, "aad"u8, plaintext);
        Assert.Equal(plaintext.Length + suite.AeadTagLength, ciphertext.Length);

        Assert.True(suite.TryOpen(key, nonce, "aad"u8, ciphertext, out var opened));
        Assert.Equal(plaintext, opened);
        var span = new byte[plaintext.Length];
        Assert.True(suite.TryOpen(key, nonce, "aad"u8, ciphertext, span.AsSpan()));
        Assert.Equal(plaintext, span);

        Assert.False(suite.TryOpen(key, nonce, "aae"u8, ciphertext, out _));
        ciphertext[^1] ^= 1;
        Assert.False(suite.TryOpen(key, nonce, "aad"u8, ciphertext, out _));
        Assert.False(suite.TryOpen(key, nonce, "aad"u8, ciphertext.AsSpan(0, 15), out _));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Aead_SpanSeal_MatchesAllocatingSeal(ushort id)
    {
        var suite = CipherSuite.Get(id);
        var key = RandomNumberGenerator.GetBytes(suite.AeadKeyLength);
        var nonce = RandomNumberGenerator.GetBytes(suite.AeadNonceLength);
        var plaintext = RandomNumberGenerator.GetBytes(33);
        var destination = new byte[plaintext.Length + suite.AeadTagLength];
        suite.Seal(key, nonce, [], plaintext, destination);
        Assert.Equal(suite.Seal(key, nonce, [], plaintext), destination);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Hpke_FreshEphemeral_RoundTripsAndBindsInfoAndAad(ushort id)
    {
        var suite = CipherSuite.Get(id);
        var (sk, pk) = suite.GenerateHpkeKeyPair();
        var sealedMessage = suite.Hpke.SealBase(pk, "info"u8, "aad"u8, "secret"u8);
        Assert.True(suite.Hpke.TryOpenBase(sealedMessage.KemOutput, sk, "info"u8, "aad"u8, sealedMessage.Ciphertext, out var plaintext));
        Assert.Equal("secret"u8.ToArray(), plaintext);
        Assert.False(suite.Hpke.TryOpenBase(sealedMessage.KemOutput, sk, "infO"u8, "aad"u8, sealedMessage.Ciphertext, out _));
        Assert.False(suite.Hpke.TryOpenBase(sealedMessage.KemOutput, sk, "info"u8, "aaD"u8, sealedMessage.Ciphertext, out _));
        Assert.False(suite.Hpke.TryOpenBase(new byte[32], sk, "info"u8, "aad"u8, sealedMessage.Ciphertext, out _));
        Assert.False(suite.Hpke.TryOpenBase(new byte[31], sk, "info"u8, "aad"u8, sealedMessage.Ciphertext, out _));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Hpke_LowOrderRecipientKey_IsRefused(ushort id)
    {
        var suite = CipherSuite.Get(id);
        // The all-zero point is of low order: X25519 with it yields zero, which RFC 9180 §7.1.4 requires refusing.
        Assert.Throws<CryptographicException>(() => suite.Hpke.SealBase(new byte[32], [], [], [1]));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Signature_GeneratedKeys_SignAndVerifyWithLabel(ushort id)
    {
        var suite = CipherSuite.Get(id);
        var (sk, pk) = suite.GenerateSignatureKeyPair();
        Assert.Equal(pk, suite.SignaturePublicKey(sk));
        var signature = suite.SignWithLabel(sk, "Label", "content"u8);
        Assert.True(suite.VerifyWithLabel(pk, "Label", "content"u8, signature));
        Assert.False(suite.VerifyWithLabel(pk, "Label", "contenT"u8, signature));
        Assert.False(suite.VerifyWithLabel(pk.AsSpan(1), "Label", "content"u8, signature));
        Assert.False(suite.VerifyWithLabel(pk, "Label", "content"u8, signature.AsSpan(1)));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Kdf_AnyIkm_ExtractsAsNSecHkdf(ushort id)
    {
        // Extract is the platform HMAC; NSec's HKDF-Extract is an independent implementation of the same function
        // (for IKM up to its 128-byte SharedSecret import limit), and the salt-less form must equal a zero salt.
        var suite = CipherSuite.Get(id);
        var salt = RandomNumberGenerator.GetBytes(32);
        var noExport = new NSec.Cryptography.SharedSecretCreationParameters { ExportPolicy = NSec.Cryptography.KeyExportPolicies.None };
        foreach (var length in new[] { 0, 1, 32, 128 })
        {
            var ikm = RandomNumberGenerator.GetBytes(length);
            using var secret = NSec.Cryptography.SharedSecret.Import(ikm, NSec.Cryptography.SharedSecretBlobFormat.RawSharedSecret, noExport);
            Assert.Equal(NSec.Cryptography.KeyDerivationAlgorithm.HkdfSha256.Extract(secret, salt), suite.Extract(salt, ikm));
            Assert.Equal(NSec.Cryptography.KeyDerivationAlgorithm.HkdfSha256.Extract(secret, []), suite.Extract(new byte[32], ikm));
            Assert.Equal(suite.Extract([], ikm), suite.Extract(new byte[32], ikm));
        }
        foreach (var length in new[] { 129, 1000 })
        {
            var ikm = RandomNumberGenerator.GetBytes(length);
            Assert.Equal(HMACSHA256.HashData(salt, ikm), suite.Extract(salt, ikm));
            Assert.Equal(HMACSHA256.HashData(salt, ikm), suite.Mac(salt, ikm));
        }
    }
}
