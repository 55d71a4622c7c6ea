namespace Wzp.Protocol.Tests;

/// <summary>Known answers from the RFCs, pinning how this project uses NSec and libsodium.</summary>
public sealed class RfcTests
{
    private static byte[] H(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    // RFC 8439 §2.8.2: AEAD_CHACHA20_POLY1305 test vector.
    [Fact]
    public void ChaCha20Poly1305_Rfc8439_2_8_2()
    {
        var key = H("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        var iv = H("070000004041424344454647");
        var aad = H("50515253c0c1c2c3c4c5c6c7");
        var plaintext = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."u8.ToArray();
        var expected = H("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116" +
            "1ae10b594f09e26a7e902ecbd0600691");
        // Our nonce is iv XOR (8 zero bytes ‖ u32 pn): with pn 0 it is the RFC's nonce unchanged.
        using var k = new DirectionalKey(key, iv);
        var sealedBytes = new byte[plaintext.Length + 16];
        k.Seal(0, aad, plaintext, sealedBytes);
        Assert.Equal(expected, sealedBytes);
        var opened = new byte[plaintext.Length];
        Assert.True(k.TryOpen(0, aad, sealedBytes, opened));
        Assert.Equal(plaintext, opened);
    }

    // RFC 7748 §5.2: the two X25519 test vectors (scalar, u-coordinate, output).
    [Theory]
    [InlineData("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")]
    [InlineData("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")]
    public void X25519_Rfc7748_5_2(string scalar, string u, string output)
    {
        using var key = EphemeralKey.FromPrivateKey(H(scalar));
        var shared = new byte[32];
        Assert.True(Primitives.X25519Agree(key, H(u), shared));
        Assert.Equal(output, shared.ToHex());
    }

    // RFC 7748 §6.1: Diffie-Hellman between Alice and Bob.
    [Fact]
    public void X25519_Rfc7748_6_1()
    {
        using var alice = EphemeralKey.FromPrivateKey(H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        using var bob = EphemeralKey.FromPrivateKey(H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        Assert.Equal("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", alice.PublicKey.ToHex());
        Assert.Equal("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", bob.PublicKey.ToHex());
        var ab = new byte[32];
        var ba = new byte[32];
        Assert.True(Primitives.X25519Agree(alice, bob.PublicKey, ab));
        Assert.True(Primitives.X25519Agree(bob, alice.PublicKey, ba));
        Assert.Equal("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", ab.ToHex());
        Assert.Equal(ab, ba);
    }

    // RFC 7748 §6.1 notes that a low-order point gives an all-zero output; PROTOCOL.md requires refusing it.
    [Theory]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("0100000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]
    public void X25519_LowOrderPoint_AllZeroOutputIsRejected(string lowOrderPoint)
    {
        using var key = EphemeralKey.Generate();
        var shared = new byte[32];
        Assert.False(Primitives.X25519Agree(key, H(lowOrderPoint), shared));
    }

    // RFC 5869 A.1: HKDF-SHA256 basic test case.
    [Fact]
    public void Hkdf_Rfc5869_A_1()
    {
        var ikm = H("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
        var salt = H("000102030405060708090a0b0c");
        var info = H("f0f1f2f3f4f5f6f7f8f9");
        var prk = new byte[32];
        Primitives.Extract(salt, ikm, prk);
        Assert.Equal("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", prk.ToHex());
        Assert.Equal("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865", Primitives.Expand(prk, info, 42).ToHex());
    }

    // RFC 5869 A.3: zero-length salt is HashLen zero bytes (PROTOCOL.md's "empty salt").
    [Fact]
    public void Hkdf_Rfc5869_A_3_EmptySalt()
    {
        var prk = new byte[32];
        Primitives.Extract([], H("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), prk);
        Assert.Equal("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04", prk.ToHex());
        Assert.Equal("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", Primitives.Expand(prk, [], 42).ToHex());
    }

    // RFC 4231 §4.2: HMAC-SHA256 test case 1 (the MAC of confirm and rekeyAck). NSec takes 32-byte keys only;
    // HMAC zero-pads every key to the 64-byte block, so the RFC's 20-byte key padded to 32 gives the RFC's MAC.
    [Fact]
    public void HmacSha256_Rfc4231_4_2()
    {
        var key = new byte[32];
        H("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b").CopyTo(key, 0);
        var mac = new byte[32];
        Primitives.HmacSha256(key, "Hi There"u8, mac);
        Assert.Equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", mac.ToHex());
        Assert.True(Primitives.HmacSha256Verify(key, "Hi There"u8, mac));
        mac[31] ^= 1;
        Assert.False(Primitives.HmacSha256Verify(key, "Hi There"u8, mac));
    }

    // RFC 8032 §7.1 test 1: Ed25519 with the empty message. Identity derives its key from a seed through HKDF,
    // so this pins NSec's Ed25519 directly with the RFC's secret key.
    [Fact]
    public void Ed25519_Rfc8032_7_1_Test1()
    {
        var algorithm = NSec.Cryptography.SignatureAlgorithm.Ed25519;
        using var key = NSec.Cryptography.Key.Import(algorithm, H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
            NSec.Cryptography.KeyBlobFormat.RawPrivateKey);
        var publicKey = key.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
        Assert.Equal("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", publicKey.ToHex());
        var signature = algorithm.Sign(key, []);
        Assert.Equal("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b", signature.ToHex());
        Assert.True(Identity.Verify(publicKey, [], signature));
        signature[0] ^= 1;
        Assert.False(Identity.Verify(publicKey, [], signature));
    }
}
