using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wzp.Protocol;

/// <summary>
/// An Ed25519 identity (PROTOCOL.md §1). The signing key comes from a 32-byte seed through
/// <c>Expand(Extract("", seed), "warzone-ed25519", 32)</c>, the WarzonePhone derivation, so identities
/// created by that system keep their fingerprints.
/// </summary>
public sealed class Identity : IDisposable
{
    public const int SeedSize = 32;
    public const int PublicKeySize = 32;
    public const int SignatureSize = 64;

    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private Identity(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != SeedSize) throw new ArgumentException($"An identity seed is {SeedSize} bytes.", nameof(seed));
        Span<byte> prk = stackalloc byte[Primitives.HashSize];
        Span<byte> privateSeed = stackalloc byte[Primitives.KeySize];
        try
        {
            Primitives.Extract([], seed, prk);
            Primitives.Expand(prk, "warzone-ed25519"u8, privateSeed);
            _key = Key.Import(Ed25519, privateSeed, KeyBlobFormat.RawPrivateKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(privateSeed);
        }
        PublicKey = _key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Fingerprint = Fingerprint.Of(PublicKey);
    }

    public byte[] PublicKey { get; }

    public Fingerprint Fingerprint { get; }

    public static Identity FromSeed(ReadOnlySpan<byte> seed) => new(seed);

    public static Identity Generate()
    {
        Span<byte> seed = stackalloc byte[SeedSize];
        RandomNumberGenerator.Fill(seed);
        try
        {
            return new Identity(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    public byte[] Sign(ReadOnlySpan<byte> message) => Ed25519.Sign(_key, message);

    public void Sign(ReadOnlySpan<byte> message, Span<byte> signature) => Ed25519.Sign(_key, message, signature);

    /// <summary>Verifies an Ed25519 signature; any malformed input is simply not valid.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != PublicKeySize || signature.Length != SignatureSize) return false;
        if (!NSec.Cryptography.PublicKey.TryImport(Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
            return false;
        return Ed25519.Verify(key, message, signature);
    }

    public void Dispose() => _key.Dispose();

    public override string ToString() => $"Identity {Fingerprint}";
}

/// <summary>The first 16 bytes of SHA-256(public key); shown as 8 groups of 4 hex digits.</summary>
public readonly struct Fingerprint : IEquatable<Fingerprint>
{
    public const int Size = 16;
    private readonly byte[]? _bytes;

    private Fingerprint(byte[] bytes) => _bytes = bytes;

    public ReadOnlySpan<byte> Bytes => _bytes ?? new byte[Size];

    public static Fingerprint Of(ReadOnlySpan<byte> publicKey)
    {
        Span<byte> hash = stackalloc byte[Primitives.HashSize];
        Primitives.Sha256(publicKey, hash);
        return new Fingerprint(hash[..Size].ToArray());
    }

    public static Fingerprint FromBytes(ReadOnlySpan<byte> bytes) =>
        bytes.Length == Size ? new Fingerprint(bytes.ToArray()) : throw new ArgumentException($"A fingerprint is {Size} bytes.");

    /// <summary>Parses the display form (with colons) or 32 plain hex digits; case-insensitive.</summary>
    public static bool TryParse(string? text, out Fingerprint fingerprint)
    {
        fingerprint = default;
        if (text is null) return false;
        var hex = text.Trim().Replace(":", "", StringComparison.Ordinal);
        if (hex.Length != Size * 2) return false;
        try
        {
            fingerprint = new Fingerprint(Convert.FromHexString(hex));
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    public static Fingerprint Parse(string text) =>
        TryParse(text, out var f) ? f : throw new FormatException("A fingerprint is 32 hex digits, optionally in groups of 4 separated by ':'.");

    public string ToHex() => Convert.ToHexStringLower(Bytes);

    public override string ToString()
    {
        var hex = ToHex();
        return string.Join(':', Enumerable.Range(0, 8).Select(i => hex.Substring(i * 4, 4)));
    }

    public bool Equals(Fingerprint other) => Bytes.SequenceEqual(other.Bytes);

    public override bool Equals(object? obj) => obj is Fingerprint other && Equals(other);

    public override int GetHashCode() => BitConverter.ToInt32(Bytes);

    public static bool operator ==(Fingerprint left, Fingerprint right) => left.Equals(right);

    public static bool operator !=(Fingerprint left, Fingerprint right) => !left.Equals(right);
}

/// <summary>
/// Seed files: 64 hex digits (an optional trailing newline), created with mode 0600 on first use.
/// A file that exists but cannot be read or parsed is an error and is never replaced. They hold identity seeds
/// and the gateway's other 32-byte secrets alike.
/// </summary>
public static class SeedFile
{
    /// <summary>Loads the identity in <paramref name="path"/>, creating a new one if the file does not exist.</summary>
    /// <param name="path">The seed file.</param>
    /// <param name="created">True when a new identity was generated and written.</param>
    /// <exception cref="SeedFileException">The file exists but is unreadable or malformed, or cannot be created.</exception>
    public static Identity LoadOrCreate(string path, out bool created) => ToIdentity(LoadOrCreateSecret(path, out created));

    /// <summary>Loads the identity in <paramref name="path"/>.</summary>
    /// <exception cref="SeedFileException">Missing, unreadable or malformed.</exception>
    public static Identity Load(string path) => ToIdentity(LoadSecret(path));

    /// <summary>Loads the 32 secret bytes in <paramref name="path"/>, creating random ones if the file does not exist.</summary>
    /// <param name="path">The seed file.</param>
    /// <param name="created">True when new bytes were generated and written.</param>
    /// <exception cref="SeedFileException">The file exists but is unreadable or malformed, or cannot be created.</exception>
    public static byte[] LoadOrCreateSecret(string path, out bool created)
    {
        created = false;
        if (File.Exists(path)) return LoadSecret(path);
        var secret = RandomNumberGenerator.GetBytes(Identity.SeedSize);
        try
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var stream = new FileStream(path, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(Convert.ToHexStringLower(secret));
                writer.Write('\n');
            }
            created = true;
            return secret;
        }
        catch (IOException) when (File.Exists(path))
        {
            // Another process created it first: theirs wins, ours is discarded.
            CryptographicOperations.ZeroMemory(secret);
            return LoadSecret(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            CryptographicOperations.ZeroMemory(secret);
            throw new SeedFileException($"cannot create seed file '{path}': {e.Message}", e);
        }
    }

    /// <summary>Loads the 32 secret bytes in <paramref name="path"/>.</summary>
    /// <exception cref="SeedFileException">Missing, unreadable or malformed.</exception>
    public static byte[] LoadSecret(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SeedFileException($"cannot read seed file '{path}': {e.Message}", e);
        }
        var hex = text.TrimEnd('\n', '\r');
        if (hex.Length != Identity.SeedSize * 2 || !hex.All(Uri.IsHexDigit))
            throw new SeedFileException($"seed file '{path}' is malformed: expected {Identity.SeedSize * 2} hex digits");
        return Convert.FromHexString(hex);
    }

    private static Identity ToIdentity(byte[] seed)
    {
        try
        {
            return Identity.FromSeed(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }
}

/// <summary>A seed file that cannot be used; the message names the file and never its content.</summary>
public sealed class SeedFileException(string message, Exception? inner = null) : Exception(message, inner);
