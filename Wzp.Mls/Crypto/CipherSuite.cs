using System.Security.Cryptography;
using NSec.Cryptography;
using Wzp.Mls.Codec;

namespace Wzp.Mls.Crypto;

/// <summary>The two AEADs the supported suites use; the numbers are HPKE's aead_id (RFC 9180 §7.3).</summary>
public enum AeadId : ushort
{
    Aes128Gcm = 0x0001,
    ChaCha20Poly1305 = 0x0003,
}

/// <summary>
/// An MLS cipher suite (RFC 9420 §5.1): the hash, KDF, AEAD, signature scheme and HPKE suite a group uses, and the
/// labelled derivations built from them. Only the X25519/SHA-256/Ed25519 suites 0x0001 and 0x0003 exist here; they
/// share everything but the AEAD.
/// </summary>
public sealed class CipherSuite
{
    /// <summary>MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.</summary>
    public static readonly CipherSuite X25519Aes128GcmSha256Ed25519 = new(0x0001, AeadId.Aes128Gcm);

    /// <summary>MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519.</summary>
    public static readonly CipherSuite X25519ChaCha20Poly1305Sha256Ed25519 = new(0x0003, AeadId.ChaCha20Poly1305);

    // "MLS 1.0 " prefixes every label of §5 and §8; kept as bytes so labels never go through a string encoder.
    private static readonly byte[] LabelPrefix = "MLS 1.0 "u8.ToArray();

    private CipherSuite(ushort id, AeadId aead)
    {
        Id = id;
        Aead = aead;
        Hpke = new Hpke(aead);
    }

    /// <summary>The suite's code point on the wire.</summary>
    public ushort Id { get; }

    public AeadId Aead { get; }

    /// <summary>HPKE with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and this suite's AEAD.</summary>
    public Hpke Hpke { get; }

    /// <summary>Nh: the output size of the hash and of the KDF's Extract.</summary>
    public int HashLength => 32;

    /// <summary>Nk: the AEAD key size.</summary>
    public int AeadKeyLength => Aead == AeadId.Aes128Gcm ? 16 : 32;

    /// <summary>Nn: the AEAD nonce size.</summary>
    public int AeadNonceLength => 12;

    /// <summary>The AEAD tag size.</summary>
    public int AeadTagLength => 16;

    /// <summary>Ed25519 signature size.</summary>
    public int SignatureLength => 64;

    public static CipherSuite? TryGet(ushort id) => id switch
    {
        0x0001 => X25519Aes128GcmSha256Ed25519,
        0x0003 => X25519ChaCha20Poly1305Sha256Ed25519,
        _ => null,
    };

    public static CipherSuite Get(ushort id)
        => TryGet(id) ?? throw new NotSupportedException($"MLS cipher suite 0x{id:x4} is not supported.");

    public byte[] Hash(ReadOnlySpan<byte> data) => NSec.Cryptography.HashAlgorithm.Sha256.Hash(data);

    /// <summary>HMAC-SHA256, the MAC of both suites (RFC 9420 §5.1).</summary>
    public byte[] Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data) => Kdf.Mac(key, data);

    /// <summary>Checks a MAC in constant time.</summary>
    public bool VerifyMac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> tag)
    {
        var expected = Mac(key, data);
        return CryptographicOperations.FixedTimeEquals(expected, tag);
    }

    /// <summary>HKDF-Extract with SHA-256.</summary>
    public byte[] Extract(ReadOnlySpan<byte> salt, ReadOnlySpan<byte> ikm) => Kdf.Extract(salt, ikm);

    /// <summary>HKDF-Expand with SHA-256.</summary>
    public byte[] Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, int length) => Kdf.Expand(prk, info, length);

    /// <summary>ExpandWithLabel (RFC 9420 §8): Expand with a KDFLabel of length, "MLS 1.0 " + label and context.</summary>
    public byte[] ExpandWithLabel(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, int length)
    {
        var info = new TlsWriter(16 + label.Length + context.Length);
        info.WriteUInt16(checked((ushort)length));
        WriteLabel(info, label);
        info.WriteOpaque(context);
        return Expand(secret, info.WrittenSpan, length);
    }

    public byte[] ExpandWithLabel(ReadOnlySpan<byte> secret, string label, ReadOnlySpan<byte> context, int length)
        => ExpandWithLabel(secret, System.Text.Encoding.ASCII.GetBytes(label), context, length);

    /// <summary>DeriveSecret (RFC 9420 §8): ExpandWithLabel with an empty context to Nh bytes.</summary>
    public byte[] DeriveSecret(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> label)
        => ExpandWithLabel(secret, label, [], HashLength);

    public byte[] DeriveSecret(ReadOnlySpan<byte> secret, string label)
        => ExpandWithLabel(secret, label, [], HashLength);

    /// <summary>DeriveTreeSecret (RFC 9420 §9): ExpandWithLabel with the generation as a big-endian uint32 context.</summary>
    public byte[] DeriveTreeSecret(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> label, uint generation, int length)
    {
        Span<byte> context = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(context, generation);
        return ExpandWithLabel(secret, label, context, length);
    }

    /// <summary>RefHash (RFC 9420 §5.2): the hash of RefHashInput { label&lt;V&gt;, value&lt;V&gt; }; the label is used as given.</summary>
    public byte[] RefHash(ReadOnlySpan<byte> label, ReadOnlySpan<byte> value)
    {
        var input = new TlsWriter(8 + label.Length + value.Length);
        input.WriteOpaque(label);
        input.WriteOpaque(value);
        return Hash(input.WrittenSpan);
    }

    /// <summary>SignWithLabel (RFC 9420 §5.1.2): Ed25519 over SignContent { "MLS 1.0 " + label, content }.</summary>
    public byte[] SignWithLabel(ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> label, ReadOnlySpan<byte> content)
    {
        using var signContent = SignContentWriter(label, content);
        return Signature.Sign(signaturePrivateKey, signContent.WrittenSpan);
    }

    public byte[] SignWithLabel(ReadOnlySpan<byte> signaturePrivateKey, string label, ReadOnlySpan<byte> content)
        => SignWithLabel(signaturePrivateKey, System.Text.Encoding.ASCII.GetBytes(label), content);

    /// <summary>VerifyWithLabel; false for a bad signature or a malformed key, never an exception.</summary>
    public bool VerifyWithLabel(ReadOnlySpan<byte> signaturePublicKey, ReadOnlySpan<byte> label, ReadOnlySpan<byte> content, ReadOnlySpan<byte> signature)
    {
        using var signContent = SignContentWriter(label, content);
        return Signature.Verify(signaturePublicKey, signContent.WrittenSpan, signature);
    }

    public bool VerifyWithLabel(ReadOnlySpan<byte> signaturePublicKey, string label, ReadOnlySpan<byte> content, ReadOnlySpan<byte> signature)
        => VerifyWithLabel(signaturePublicKey, System.Text.Encoding.ASCII.GetBytes(label), content, signature);

    /// <summary>
    /// EncryptWithLabel (RFC 9420 §5.1.3): single-shot HPKE base mode to <paramref name="publicKey"/> with
    /// EncryptContext { "MLS 1.0 " + label, context } as info and an empty aad.
    /// </summary>
    public HpkeSealed EncryptWithLabel(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, ReadOnlySpan<byte> plaintext)
        => Hpke.SealBase(publicKey, EncryptContext(label, context), [], plaintext);

    /// <summary>EncryptWithLabel with a caller-chosen ephemeral key seed, for known-answer tests.</summary>
    internal HpkeSealed EncryptWithLabel(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> ephemeralIkm)
        => Hpke.SealBase(publicKey, EncryptContext(label, context), [], plaintext, ephemeralIkm);

    /// <summary>DecryptWithLabel; false if the ciphertext does not open (wrong key, label, context or tampering).</summary>
    public bool TryDecryptWithLabel(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, ReadOnlySpan<byte> kemOutput, ReadOnlySpan<byte> ciphertext, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? plaintext)
        => Hpke.TryOpenBase(kemOutput, privateKey, EncryptContext(label, context), [], ciphertext, out plaintext);

    public HpkeSealed EncryptWithLabel(ReadOnlySpan<byte> publicKey, string label, ReadOnlySpan<byte> context, ReadOnlySpan<byte> plaintext)
        => EncryptWithLabel(publicKey, System.Text.Encoding.ASCII.GetBytes(label), context, plaintext);

    public bool TryDecryptWithLabel(ReadOnlySpan<byte> privateKey, string label, ReadOnlySpan<byte> context, ReadOnlySpan<byte> kemOutput, ReadOnlySpan<byte> ciphertext, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? plaintext)
        => TryDecryptWithLabel(privateKey, System.Text.Encoding.ASCII.GetBytes(label), context, kemOutput, ciphertext, out plaintext);

    /// <summary>Seals with the suite's AEAD; the tag is appended.</summary>
    public byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
        => Aeads.Seal(Aead, key, nonce, aad, plaintext);

    /// <summary>Opens with the suite's AEAD; false on authentication failure.</summary>
    public bool TryOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? plaintext)
        => Aeads.TryOpen(Aead, key, nonce, aad, ciphertext, out plaintext);

    /// <summary>Seals into <paramref name="ciphertext"/>, which is exactly the plaintext length plus the tag.</summary>
    public void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
        => Aeads.Seal(Aead, key, nonce, aad, plaintext, ciphertext);

    /// <summary>Opens into <paramref name="plaintext"/>, exactly the ciphertext length less the tag; false on authentication failure.</summary>
    public bool TryOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
        => Aeads.TryOpen(Aead, key, nonce, aad, ciphertext, plaintext);

    /// <summary>Ed25519 signature over raw bytes (no label).</summary>
    public byte[] Sign(ReadOnlySpan<byte> signaturePrivateKey, ReadOnlySpan<byte> message) => Signature.Sign(signaturePrivateKey, message);

    public bool Verify(ReadOnlySpan<byte> signaturePublicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
        => Signature.Verify(signaturePublicKey, message, signature);

    /// <summary>A fresh Ed25519 key pair: the 32-byte seed (the MLS private key form) and the public key.</summary>
    public (byte[] PrivateKey, byte[] PublicKey) GenerateSignatureKeyPair() => Signature.Generate();

    /// <summary>The Ed25519 public key of a 32-byte seed.</summary>
    public byte[] SignaturePublicKey(ReadOnlySpan<byte> signaturePrivateKey) => Signature.PublicKeyOf(signaturePrivateKey);

    /// <summary>DeriveKeyPair of the suite's KEM (RFC 9180 §7.1.3), used for path secrets and external_pub.</summary>
    public (byte[] PrivateKey, byte[] PublicKey) DeriveHpkeKeyPair(ReadOnlySpan<byte> ikm) => Hpke.DeriveKeyPair(ikm);

    public (byte[] PrivateKey, byte[] PublicKey) GenerateHpkeKeyPair() => Hpke.GenerateKeyPair();

    public override string ToString() => $"MLS cipher suite 0x{Id:x4}";

    private static void WriteLabel(TlsWriter writer, ReadOnlySpan<byte> label)
    {
        writer.WriteVarInt(checked((uint)(LabelPrefix.Length + label.Length)));
        writer.WriteFixed(LabelPrefix);
        writer.WriteFixed(label);
    }

    private static byte[] SignContent(ReadOnlySpan<byte> label, ReadOnlySpan<byte> content)
    {
        using var writer = SignContentWriter(label, content);
        return writer.ToArray();
    }

    private static TlsWriter SignContentWriter(ReadOnlySpan<byte> label, ReadOnlySpan<byte> content)
    {
        var writer = new TlsWriter(16 + label.Length + content.Length);
        WriteLabel(writer, label);
        writer.WriteOpaque(content);
        return writer;
    }

    private static byte[] EncryptContext(ReadOnlySpan<byte> label, ReadOnlySpan<byte> context) => SignContent(label, context);
}
