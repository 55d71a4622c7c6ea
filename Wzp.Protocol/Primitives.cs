using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Protocol;

/// <summary>
/// The few primitives PROTOCOL.md builds on, each pinned by an RFC known-answer test:
/// HKDF-SHA256 and HMAC-SHA256 (NSec), X25519 with the all-zero output rejected (NSec), SHA-256.
/// </summary>
public static class Primitives
{
    public const int KeySize = 32;
    public const int HashSize = 32;
    public const int MacSize = 32;

    private static readonly HkdfSha256 Hkdf = KeyDerivationAlgorithm.HkdfSha256;
    private static readonly KeyAgreementAlgorithm X25519 = KeyAgreementAlgorithm.X25519;

    /// <summary>HKDF-Extract (RFC 5869 §2.2); an empty salt is 32 zero bytes.</summary>
    public static void Extract(ReadOnlySpan<byte> salt, ReadOnlySpan<byte> ikm, Span<byte> prk) =>
        Hkdf.Extract(ikm, salt, prk);

    /// <summary>HKDF-Expand (RFC 5869 §2.3) into <paramref name="output"/>, whose length is the L of the RFC.</summary>
    public static void Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, Span<byte> output) =>
        Hkdf.Expand(prk, info, output);

    public static byte[] Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, int length)
    {
        var output = new byte[length];
        Hkdf.Expand(prk, info, output);
        return output;
    }

    public static void Sha256(ReadOnlySpan<byte> data, Span<byte> hash) => SHA256.HashData(data, hash);

    public static byte[] Sha256(ReadOnlySpan<byte> data) => SHA256.HashData(data);

    public static void HmacSha256(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        using var k = Key.Import(MacAlgorithm.HmacSha256, key, KeyBlobFormat.RawSymmetricKey);
        MacAlgorithm.HmacSha256.Mac(k, data, mac);
    }

    public static bool HmacSha256Verify(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> mac)
    {
        if (mac.Length != MacSize) return false;
        using var k = Key.Import(MacAlgorithm.HmacSha256, key, KeyBlobFormat.RawSymmetricKey);
        return MacAlgorithm.HmacSha256.Verify(k, data, mac); // constant time (libsodium)
    }

    /// <summary>
    /// X25519 (RFC 7748) of our private scalar and their public key into <paramref name="shared"/>.
    /// Returns false for a malformed public key and for an all-zero output (a low-order point),
    /// which PROTOCOL.md requires every side to reject.
    /// </summary>
    public static bool X25519Agree(EphemeralKey ours, ReadOnlySpan<byte> theirPublic, Span<byte> shared)
    {
        if (theirPublic.Length != KeySize || shared.Length != KeySize) return false;
        if (!PublicKey.TryImport(X25519, theirPublic, KeyBlobFormat.RawPublicKey, out var publicKey) || publicKey is null)
            return false;
        try
        {
            var exportable = new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };
            using var secret = X25519.Agree(ours.Key, publicKey, in exportable);
            if (secret is null || !secret.TryExport(SharedSecretBlobFormat.RawSharedSecret, shared, out var written) || written != KeySize)
                return false;
        }
        catch (CryptographicException)
        {
            return false;
        }
        // libsodium already refuses an all-zero result; this keeps the rule independent of that detail.
        return !IsAllZero(shared);
    }

    internal static bool IsAllZero(ReadOnlySpan<byte> bytes)
    {
        var acc = 0;
        foreach (var b in bytes) acc |= b;
        return acc == 0;
    }

    internal static Key ImportX25519Private(ReadOnlySpan<byte> privateKey) =>
        Key.Import(X25519, privateKey, KeyBlobFormat.RawPrivateKey);

    internal static Key CreateX25519() => Key.Create(X25519);

    internal static void WriteU16(Span<byte> destination, int value) =>
        BinaryPrimitives.WriteUInt16BigEndian(destination, checked((ushort)value));

    /// <summary>Appends lp(x): a u16 length then the UTF-8 bytes of <paramref name="value"/>.</summary>
    internal static void AppendLengthPrefixed(List<byte> buffer, ReadOnlySpan<byte> value)
    {
        if (value.Length > ushort.MaxValue) throw new ArgumentException("Field longer than 65535 bytes.");
        buffer.Add((byte)(value.Length >> 8));
        buffer.Add((byte)value.Length);
        buffer.AddRange(value);
    }
}

/// <summary>An X25519 key pair used for one exchange; its private half is wiped on dispose.</summary>
public sealed class EphemeralKey : IDisposable
{
    internal Key Key { get; }

    public byte[] PublicKey { get; }

    private EphemeralKey(Key key)
    {
        Key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    public static EphemeralKey Generate() => new(Primitives.CreateX25519());

    /// <summary>A key from fixed private bytes: for known-answer tests and vectors only.</summary>
    public static EphemeralKey FromPrivateKey(ReadOnlySpan<byte> privateKey) => new(Primitives.ImportX25519Private(privateKey));

    public void Dispose() => Key.Dispose();
}
