using System.Security.Cryptography;
using System.Text.Json;
using Wzp.Mls.SFrame;

namespace Wzp.Mls.Tests;

/// <summary>
/// The SFrame working group's test vectors (RFC 9605 Appendix C, [TestVectors]), every case of every section:
/// header encodings, the AES-CTR+HMAC AEAD (Appendix C.2), and the whole SFrame encryption for every suite (C.3).
/// </summary>
public sealed class SFrameVectorTests
{
    private static readonly Lazy<JsonElement> Vectors = new(() =>
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "TestData", "sframe", "test-vectors.json"))).RootElement);

    public static TheoryData<int> HeaderCases => Indices("header");

    public static TheoryData<int> AesCtrHmacCases => Indices("aes_ctr_hmac");

    public static TheoryData<int> Aes256CtrHmacCases => Indices("aes_256_ctr_hmac");

    public static TheoryData<int> SFrameCases => Indices("sframe");

    [Fact]
    public void Vectors_CoverEverySuite()
    {
        var suites = Vectors.Value.GetProperty("sframe").EnumerateArray().Select(c => c.GetProperty("cipher_suite").GetInt32()).Order();
        Assert.Equal([1, 2, 3, 4, 5], suites);
        Assert.Equal(289, Vectors.Value.GetProperty("header").GetArrayLength());
    }

    // Appendix C.1: the header of every (KID, CTR) pair, encoded and decoded.
    [Theory]
    [MemberData(nameof(HeaderCases))]
    public void Header_EncodesAndDecodesAsInVector(int index)
    {
        var c = Case("header", index);
        var kid = c.GetProperty("kid").GetUInt64();
        var ctr = c.GetProperty("ctr").GetUInt64();
        var encoded = Hex(c, "encoded");

        var header = new SFrameHeader(kid, ctr);
        Assert.Equal(encoded.Length, header.Size);
        var written = new byte[SFrameHeader.MaxSize];
        Assert.Equal(encoded.Length, header.WriteTo(written));
        Assert.Equal(encoded, written[..encoded.Length]);

        // Trailing bytes belong to the ciphertext and must not change the decoding.
        var withPayload = encoded.Concat(new byte[] { 0xff, 0x00, 0x80 }).ToArray();
        Assert.Equal(SFrameError.None, SFrameHeader.TryRead(withPayload, out var decoded, out var size));
        Assert.Equal(header, decoded);
        Assert.Equal(encoded.Length, size);
    }

    // Appendix C.2: AEAD.Encrypt and AEAD.Decrypt of §4.5.1 for suites 1-3.
    [Theory]
    [MemberData(nameof(AesCtrHmacCases))]
    public void AesCtrHmac_MatchesVector(int index)
    {
        var c = Case("aes_ctr_hmac", index);
        var suite = (SFrameCipherSuite)c.GetProperty("cipher_suite").GetUInt16();
        var key = Hex(c, "key");
        Assert.Equal(suite.KeySize(), key.Length);
        // derive_subkeys: enc_key is the first Nka (16) bytes, auth_key the remaining Nh.
        Assert.Equal(Hex(c, "enc_key"), key[..16]);
        Assert.Equal(Hex(c, "auth_key"), key[16..]);
        using var aead = SFrameAead.Create(suite, key);
        CheckAead(aead, c);
    }

    // Not in the RFC: the AES-256 variants of draft-barnes-sframe-iana-256 (suites 6-8: Nka 32, SHA-512,
    // tags of 10, 8 and 4 bytes), which the vector file carries as well; the AEAD construction is the same.
    [Theory]
    [MemberData(nameof(Aes256CtrHmacCases))]
    public void Aes256CtrHmac_MatchesVector(int index)
    {
        var c = Case("aes_256_ctr_hmac", index);
        var tagSize = c.GetProperty("cipher_suite").GetInt32() switch { 6 => 10, 7 => 8, 8 => 4, var s => throw new InvalidDataException($"suite {s}") };
        var key = Hex(c, "key");
        Assert.Equal(Hex(c, "enc_key"), key[..32]);
        Assert.Equal(Hex(c, "auth_key"), key[32..]);
        using var aead = new AesCtrHmacAead(key, 32, HashAlgorithmName.SHA512, tagSize);
        CheckAead(aead, c);
    }

    // Appendix C.3: key schedule, nonce, AAD and the whole SFrame ciphertext, for every suite.
    [Theory]
    [MemberData(nameof(SFrameCases))]
    public void SFrame_DerivationAndEncryptionMatchVector(int index)
    {
        var c = Case("sframe", index);
        var suite = (SFrameCipherSuite)c.GetProperty("cipher_suite").GetUInt16();
        var kid = c.GetProperty("kid").GetUInt64();
        var ctr = c.GetProperty("ctr").GetUInt64();
        var baseKey = Hex(c, "base_key");
        var metadata = Hex(c, "metadata");
        var plaintext = Hex(c, "pt");
        var expected = Hex(c, "ct");

        var label = new byte[SFrameKeyDerivation.MaxLabelSize];
        var n = SFrameKeyDerivation.WriteLabel(SFrameKeyDerivation.KeyLabelPrefix, kid, suite, label);
        Assert.Equal(Hex(c, "sframe_key_label"), label[..n]);
        n = SFrameKeyDerivation.WriteLabel(SFrameKeyDerivation.SaltLabelPrefix, kid, suite, label);
        Assert.Equal(Hex(c, "sframe_salt_label"), label[..n]);

        var secret = new byte[suite.HashSize()];
        SFrameKeyDerivation.ExtractSecret(suite, baseKey, secret);
        Assert.Equal(Hex(c, "sframe_secret"), secret);

        var key = new byte[suite.KeySize()];
        var salt = new byte[SFrameCipherSuites.NonceSize];
        SFrameKeyDerivation.DeriveKeyAndSalt(suite, kid, baseKey, key, salt);
        Assert.Equal(Hex(c, "sframe_key"), key);
        Assert.Equal(Hex(c, "sframe_salt"), salt);

        using (var sendKey = SFrameKey.FromBaseKey(suite, kid, baseKey, 64, send: true))
        {
            var nonce = new byte[SFrameCipherSuites.NonceSize];
            sendKey.Nonce(ctr, nonce);
            Assert.Equal(Hex(c, "nonce"), nonce);
        }

        var header = new byte[SFrameHeader.MaxSize];
        var headerSize = new SFrameHeader(kid, ctr).WriteTo(header);
        Assert.Equal(Hex(c, "aad"), header[..headerSize].Concat(metadata).ToArray());

        // Sealing through the context, whose send key resumes at the vector's CTR.
        using var sender = new SFrameContext(suite);
        sender.AddSendKey(kid, baseKey, firstCounter: ctr);
        Assert.Equal(expected.Length, sender.SealedSize(kid, plaintext.Length));
        var sealedFrame = new byte[SFrameContext.MaxSealedSize(suite, plaintext.Length)];
        Assert.Equal(SFrameError.None, sender.Seal(kid, metadata, plaintext, sealedFrame, out var written));
        Assert.Equal(expected, sealedFrame[..written]);

        using var receiver = new SFrameContext(suite);
        receiver.AddReceiveKey(kid, baseKey);
        var opened = new byte[expected.Length];
        Assert.Equal(SFrameError.None, receiver.Open(metadata, expected, opened, out var length, out var decoded));
        Assert.Equal(plaintext, opened[..length]);
        Assert.Equal(new SFrameHeader(kid, ctr), decoded);

        // The metadata is authenticated: any other metadata fails.
        var otherMetadata = metadata.ToArray();
        otherMetadata[0] ^= 1;
        using var receiver2 = new SFrameContext(suite);
        receiver2.AddReceiveKey(kid, baseKey);
        Assert.Equal(SFrameError.Authentication, receiver2.Open(otherMetadata, expected, opened, out _, out _));
    }

    private static void CheckAead(SFrameAead aead, JsonElement c)
    {
        var nonce = Hex(c, "nonce");
        var aad = Hex(c, "aad");
        var plaintext = Hex(c, "pt");
        var expected = Hex(c, "ct");
        var ciphertext = new byte[plaintext.Length + aead.TagSize];
        // The AAD in two parts, split anywhere, is the same AAD.
        aead.Seal(nonce, aad.AsSpan(0, 3), aad.AsSpan(3), plaintext, ciphertext);
        Assert.Equal(expected, ciphertext);
        var opened = new byte[plaintext.Length];
        Assert.True(aead.Open(nonce, aad, ReadOnlySpan<byte>.Empty, expected, opened));
        Assert.Equal(plaintext, opened);
        var forged = expected.ToArray();
        forged[^1] ^= 0x80;
        Assert.False(aead.Open(nonce, aad, ReadOnlySpan<byte>.Empty, forged, opened));
    }

    private static TheoryData<int> Indices(string section)
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < Vectors.Value.GetProperty(section).GetArrayLength(); i++) data.Add(i);
        return data;
    }

    private static JsonElement Case(string section, int index) => Vectors.Value.GetProperty(section)[index];

    private static byte[] Hex(JsonElement c, string name) => Convert.FromHexString(c.GetProperty(name).GetString()!);
}
