using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Mls.Crypto;

/// <summary>The result of single-shot HPKE: the KEM's encapsulated key and the AEAD ciphertext.</summary>
public readonly record struct HpkeSealed(byte[] KemOutput, byte[] Ciphertext);

/// <summary>
/// HPKE (RFC 9180) base mode for DHKEM(X25519, HKDF-SHA256) with HKDF-SHA256 and AES-128-GCM or ChaCha20-Poly1305,
/// the HPKE suites of MLS cipher suites 0x0001 and 0x0003. Only base mode: MLS never uses PSK or auth modes.
/// </summary>
public sealed class Hpke
{
    private const ushort KemId = 0x0020;
    private const ushort KdfId = 0x0001;
    private const int KeySize = 32;
    private const int NonceSize = 12;
    private const int SecretSize = 32;

    private static readonly byte[] Version = "HPKE-v1"u8.ToArray();
    private static readonly KeyAgreementAlgorithm X25519 = KeyAgreementAlgorithm.X25519;
    private static KeyCreationParameters ExportableKey => new() { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
    private static SharedSecretCreationParameters ExportableSecret => new() { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };

    private readonly byte[] _kemSuiteId;
    private readonly byte[] _hpkeSuiteId;

    internal Hpke(AeadId aead)
    {
        Aead = aead;
        _kemSuiteId = [(byte)'K', (byte)'E', (byte)'M', KemId >> 8, KemId & 0xFF];
        _hpkeSuiteId =
        [
            (byte)'H', (byte)'P', (byte)'K', (byte)'E',
            KemId >> 8, KemId & 0xFF, KdfId >> 8, KdfId & 0xFF, (byte)((ushort)aead >> 8), (byte)((ushort)aead & 0xFF),
        ];
    }

    public AeadId Aead { get; }

    /// <summary>Nk of the AEAD.</summary>
    public int AeadKeySize => Aead == AeadId.Aes128Gcm ? 16 : 32;

    /// <summary>DeriveKeyPair (RFC 9180 §7.1.3) for X25519: the private key is LabeledExpand(dkp_prk, "sk").</summary>
    public (byte[] PrivateKey, byte[] PublicKey) DeriveKeyPair(ReadOnlySpan<byte> ikm)
    {
        var dkpPrk = LabeledExtract(_kemSuiteId, [], "dkp_prk"u8, ikm);
        var sk = LabeledExpand(_kemSuiteId, dkpPrk, "sk"u8, [], KeySize);
        CryptographicOperations.ZeroMemory(dkpPrk);
        return (sk, PublicKeyOf(sk));
    }

    public (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair()
    {
        using var key = Key.Create(X25519, ExportableKey);
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>
    /// True if <paramref name="publicKey"/> can be encrypted to: 32 bytes, importable, and not of low order (a DH with
    /// it yields a non-zero secret, RFC 9180 §7.1.4). Costs one X25519 agreement.
    /// </summary>
    public bool IsUsablePublicKey(ReadOnlySpan<byte> publicKey)
    {
        if (!TryDh(ProbeKey.Value, publicKey, out var dh)) return false;
        CryptographicOperations.ZeroMemory(dh);
        return true;
    }

    // Any scalar serves for the probe; one per process avoids a key generation per check.
    private static readonly Lazy<byte[]> ProbeKey = new(() => RandomNumberGenerator.GetBytes(KeySize));

    /// <summary>The X25519 public key of a private key.</summary>
    public byte[] PublicKeyOf(ReadOnlySpan<byte> privateKey)
    {
        using var key = ImportPrivate(privateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>SetupBaseS with a fresh ephemeral key.</summary>
    public HpkeContext SetupBaseSender(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, out byte[] enc)
    {
        var (skE, pkE) = GenerateKeyPair();
        try
        {
            // The fresh pair's public half is enc; passing it saves Encap re-deriving it (a key import and a scalar multiplication).
            return SetupSenderWith(skE, pkE, recipientPublicKey, info, out enc);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(skE);
        }
    }

    /// <summary>
    /// SetupBaseS with the ephemeral key derived from <paramref name="ephemeralIkm"/> (RFC 9180 §7.1.3's DeriveKeyPair),
    /// the deterministic form the RFC's Appendix A test vectors use. Never use a fixed seed outside tests.
    /// </summary>
    internal HpkeContext SetupBaseSender(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> ephemeralIkm, out byte[] enc)
    {
        var (skE, _) = DeriveKeyPair(ephemeralIkm);
        try
        {
            return SetupSenderWith(skE, recipientPublicKey, info, out enc);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(skE);
        }
    }

    /// <summary>SetupBaseR; false if <paramref name="enc"/> is not a usable X25519 public key.</summary>
    public bool TrySetupBaseRecipient(ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPrivateKey, ReadOnlySpan<byte> info, [NotNullWhen(true)] out HpkeContext? context)
    {
        context = null;
        if (!TryDecap(enc, recipientPrivateKey, out var sharedSecret)) return false;
        context = KeySchedule(sharedSecret, info);
        CryptographicOperations.ZeroMemory(sharedSecret);
        return true;
    }

    /// <summary>Single-shot base-mode seal (RFC 9180 §6.1).</summary>
    public HpkeSealed SealBase(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        using var context = SetupBaseSender(recipientPublicKey, info, out var enc);
        return new HpkeSealed(enc, context.Seal(aad, plaintext));
    }

    internal HpkeSealed SealBase(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> ephemeralIkm)
    {
        using var context = SetupBaseSender(recipientPublicKey, info, ephemeralIkm, out var enc);
        return new HpkeSealed(enc, context.Seal(aad, plaintext));
    }

    /// <summary>Single-shot base-mode open; false on a bad encapsulation or authentication failure.</summary>
    public bool TryOpenBase(ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPrivateKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, [NotNullWhen(true)] out byte[]? plaintext)
    {
        plaintext = null;
        if (!TrySetupBaseRecipient(enc, recipientPrivateKey, info, out var context)) return false;
        using (context) return context.TryOpen(aad, ciphertext, out plaintext);
    }

    private HpkeContext SetupSenderWith(ReadOnlySpan<byte> skE, ReadOnlySpan<byte> pkR, ReadOnlySpan<byte> info, out byte[] enc)
        => SetupSenderWith(skE, PublicKeyOf(skE), pkR, info, out enc);

    private HpkeContext SetupSenderWith(ReadOnlySpan<byte> skE, byte[] pkE, ReadOnlySpan<byte> pkR, ReadOnlySpan<byte> info, out byte[] enc)
    {
        var sharedSecret = Encap(skE, pkE, pkR, out enc);
        var context = KeySchedule(sharedSecret, info);
        CryptographicOperations.ZeroMemory(sharedSecret);
        return context;
    }

    /// <summary>DHKEM Encap (RFC 9180 §4.1) with the given ephemeral private key.</summary>
    internal byte[] Encap(ReadOnlySpan<byte> skE, ReadOnlySpan<byte> pkR, out byte[] enc) => Encap(skE, PublicKeyOf(skE), pkR, out enc);

    private byte[] Encap(ReadOnlySpan<byte> skE, byte[] pkE, ReadOnlySpan<byte> pkR, out byte[] enc)
    {
        enc = pkE;
        if (!TryDh(skE, pkR, out var dh))
            throw new CryptographicException("The recipient's X25519 public key is invalid or of low order.");
        var sharedSecret = ExtractAndExpand(dh, enc, pkR);
        CryptographicOperations.ZeroMemory(dh);
        return sharedSecret;
    }

    /// <summary>DHKEM Decap (RFC 9180 §4.1); false if <paramref name="enc"/> is not a usable public key.</summary>
    internal bool TryDecap(ReadOnlySpan<byte> enc, ReadOnlySpan<byte> skR, [NotNullWhen(true)] out byte[]? sharedSecret)
    {
        sharedSecret = null;
        if (!TryDh(skR, enc, out var dh)) return false;
        sharedSecret = ExtractAndExpand(dh, enc, PublicKeyOf(skR));
        CryptographicOperations.ZeroMemory(dh);
        return true;
    }

    /// <summary>DHKEM's shared secret (RFC 9180 §4.1), exposed for the known-answer tests.</summary>
    internal byte[] ExtractAndExpand(ReadOnlySpan<byte> dh, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> pkR)
    {
        // Both halves are 32-byte X25519 keys by the time this runs (TryDh checked them), but the buffer is on the
        // heap anyway so no caller-controlled length ever sizes a stack allocation.
        var kemContext = new byte[enc.Length + pkR.Length];
        enc.CopyTo(kemContext);
        pkR.CopyTo(kemContext.AsSpan(enc.Length));
        var eaePrk = LabeledExtract(_kemSuiteId, [], "eae_prk"u8, dh);
        var sharedSecret = LabeledExpand(_kemSuiteId, eaePrk, "shared_secret"u8, kemContext, SecretSize);
        CryptographicOperations.ZeroMemory(eaePrk);
        return sharedSecret;
    }

    /// <summary>KeySchedule (RFC 9180 §5.1) in base mode: empty psk and psk_id.</summary>
    internal HpkeContext KeySchedule(ReadOnlySpan<byte> sharedSecret, ReadOnlySpan<byte> info)
    {
        var pskIdHash = LabeledExtract(_hpkeSuiteId, [], "psk_id_hash"u8, []);
        var infoHash = LabeledExtract(_hpkeSuiteId, [], "info_hash"u8, info);
        var keyScheduleContext = new byte[1 + pskIdHash.Length + infoHash.Length];
        keyScheduleContext[0] = 0x00; // mode_base
        pskIdHash.CopyTo(keyScheduleContext, 1);
        infoHash.CopyTo(keyScheduleContext, 1 + pskIdHash.Length);
        var secret = LabeledExtract(_hpkeSuiteId, sharedSecret, "secret"u8, []);
        var key = LabeledExpand(_hpkeSuiteId, secret, "key"u8, keyScheduleContext, AeadKeySize);
        var baseNonce = LabeledExpand(_hpkeSuiteId, secret, "base_nonce"u8, keyScheduleContext, NonceSize);
        var exporterSecret = LabeledExpand(_hpkeSuiteId, secret, "exp"u8, keyScheduleContext, SecretSize);
        CryptographicOperations.ZeroMemory(secret);
        return new HpkeContext(this, key, baseNonce, exporterSecret);
    }

    internal byte[] LabeledExpandHpke(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> label, ReadOnlySpan<byte> info, int length)
        => LabeledExpand(_hpkeSuiteId, prk, label, info, length);

    internal static bool TryDh(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKey, [NotNullWhen(true)] out byte[]? dh)
    {
        dh = null;
        if (publicKey.Length != KeySize) return false;
        if (!PublicKey.TryImport(X25519, publicKey, KeyBlobFormat.RawPublicKey, out var peer) || peer is null) return false;
        using var key = ImportPrivate(privateKey);
        // NSec refuses an all-zero result (a low-order peer key), which RFC 9180 §7.1.4 requires rejecting.
        using var shared = X25519.Agree(key, peer, ExportableSecret);
        if (shared is null) return false;
        dh = shared.Export(SharedSecretBlobFormat.RawSharedSecret);
        return true;
    }

    private static Key ImportPrivate(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != KeySize) throw new ArgumentException("X25519 private keys are 32 bytes.", nameof(privateKey));
        return Key.Import(X25519, privateKey, KeyBlobFormat.RawPrivateKey, ExportableKey);
    }

    private static byte[] LabeledExtract(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> label, ReadOnlySpan<byte> ikm)
    {
        var labeledIkm = new byte[Version.Length + suiteId.Length + label.Length + ikm.Length];
        var span = labeledIkm.AsSpan();
        Version.CopyTo(span);
        suiteId.CopyTo(span[Version.Length..]);
        label.CopyTo(span[(Version.Length + suiteId.Length)..]);
        ikm.CopyTo(span[(Version.Length + suiteId.Length + label.Length)..]);
        var prk = Kdf.Extract(salt, labeledIkm);
        CryptographicOperations.ZeroMemory(labeledIkm);
        return prk;
    }

    private static byte[] LabeledExpand(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> prk, ReadOnlySpan<byte> label, ReadOnlySpan<byte> info, int length)
    {
        var labeledInfo = new byte[2 + Version.Length + suiteId.Length + label.Length + info.Length];
        var span = labeledInfo.AsSpan();
        BinaryPrimitives.WriteUInt16BigEndian(span, checked((ushort)length));
        Version.CopyTo(span[2..]);
        suiteId.CopyTo(span[(2 + Version.Length)..]);
        label.CopyTo(span[(2 + Version.Length + suiteId.Length)..]);
        info.CopyTo(span[(2 + Version.Length + suiteId.Length + label.Length)..]);
        return Kdf.Expand(prk, labeledInfo, length);
    }
}

/// <summary>
/// An HPKE encryption context (RFC 9180 §5.2): key, base nonce, sequence number and exporter secret. One side
/// either seals or opens with it; the secrets are wiped on dispose.
/// </summary>
public sealed class HpkeContext : IDisposable
{
    private readonly Hpke _hpke;
    private readonly byte[] _key;
    private readonly byte[] _baseNonce;
    private readonly byte[] _exporterSecret;
    private ulong _sequence;
    private bool _disposed;

    internal HpkeContext(Hpke hpke, byte[] key, byte[] baseNonce, byte[] exporterSecret)
    {
        _hpke = hpke;
        _key = key;
        _baseNonce = baseNonce;
        _exporterSecret = exporterSecret;
    }

    /// <summary>The next sequence number; settable only by tests that reproduce the RFC's non-contiguous vectors.</summary>
    public ulong Sequence
    {
        get => _sequence;
        internal set => _sequence = value;
    }

    internal ReadOnlySpan<byte> Key => _key;

    internal ReadOnlySpan<byte> BaseNonce => _baseNonce;

    internal ReadOnlySpan<byte> ExporterSecret => _exporterSecret;

    public byte[] Seal(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Span<byte> nonce = stackalloc byte[12];
        ComputeNonce(nonce);
        var ciphertext = Aeads.Seal(_hpke.Aead, _key, nonce, aad, plaintext);
        _sequence++;
        return ciphertext;
    }

    public bool TryOpen(ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, [NotNullWhen(true)] out byte[]? plaintext)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Span<byte> nonce = stackalloc byte[12];
        ComputeNonce(nonce);
        if (!Aeads.TryOpen(_hpke.Aead, _key, nonce, aad, ciphertext, out plaintext)) return false;
        _sequence++;
        return true;
    }

    /// <summary>Export (RFC 9180 §5.3): LabeledExpand(exporter_secret, "sec", context, length).</summary>
    public byte[] Export(ReadOnlySpan<byte> exporterContext, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _hpke.LabeledExpandHpke(_exporterSecret, "sec"u8, exporterContext, length);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CryptographicOperations.ZeroMemory(_key);
        CryptographicOperations.ZeroMemory(_baseNonce);
        CryptographicOperations.ZeroMemory(_exporterSecret);
    }

    private void ComputeNonce(Span<byte> nonce)
    {
        // The sequence number must never wrap: a repeated nonce under one key breaks both AEADs (RFC 9180 §5.2).
        if (_sequence == ulong.MaxValue) throw new CryptographicException("HPKE sequence number exhausted.");
        _baseNonce.CopyTo(nonce);
        Span<byte> seq = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(seq, _sequence);
        for (var i = 0; i < 8; i++) nonce[4 + i] ^= seq[i];
    }
}
