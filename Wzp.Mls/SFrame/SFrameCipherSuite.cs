using System.Security.Cryptography;

namespace Wzp.Mls.SFrame;

/// <summary>The cipher suites of RFC 9605 §4.5, by their registered two-byte value (§8.1).</summary>
public enum SFrameCipherSuite : ushort
{
    /// <summary>AES_128_CTR_HMAC_SHA256_80: AES-128-CTR then HMAC-SHA256 truncated to 10 bytes (§4.5.1).</summary>
    Aes128CtrHmacSha256_80 = 0x0001,

    /// <summary>AES_128_CTR_HMAC_SHA256_64: as above with an 8-byte tag.</summary>
    Aes128CtrHmacSha256_64 = 0x0002,

    /// <summary>AES_128_CTR_HMAC_SHA256_32: as above with a 4-byte tag.</summary>
    Aes128CtrHmacSha256_32 = 0x0003,

    /// <summary>AES_128_GCM_SHA256_128.</summary>
    Aes128GcmSha256_128 = 0x0004,

    /// <summary>AES_256_GCM_SHA512_128.</summary>
    Aes256GcmSha512_128 = 0x0005,
}

/// <summary>The constants of RFC 9605 Table 1 for each suite.</summary>
public static class SFrameCipherSuites
{
    /// <summary>Nn: every suite of RFC 9605 uses a 12-byte nonce.</summary>
    public const int NonceSize = 12;

    public static bool IsSupported(this SFrameCipherSuite suite) =>
        suite is >= SFrameCipherSuite.Aes128CtrHmacSha256_80 and <= SFrameCipherSuite.Aes256GcmSha512_128;

    /// <summary>Nk: the AEAD key size, which for the CTR suites is the AES key and the HMAC key together.</summary>
    public static int KeySize(this SFrameCipherSuite suite) => suite switch
    {
        SFrameCipherSuite.Aes128CtrHmacSha256_80 or SFrameCipherSuite.Aes128CtrHmacSha256_64 or SFrameCipherSuite.Aes128CtrHmacSha256_32 => 48,
        SFrameCipherSuite.Aes128GcmSha256_128 => 16,
        SFrameCipherSuite.Aes256GcmSha512_128 => 32,
        _ => throw Unsupported(suite),
    };

    /// <summary>Nt: the bytes the AEAD adds to the plaintext.</summary>
    public static int TagSize(this SFrameCipherSuite suite) => suite switch
    {
        SFrameCipherSuite.Aes128CtrHmacSha256_80 => 10,
        SFrameCipherSuite.Aes128CtrHmacSha256_64 => 8,
        SFrameCipherSuite.Aes128CtrHmacSha256_32 => 4,
        SFrameCipherSuite.Aes128GcmSha256_128 or SFrameCipherSuite.Aes256GcmSha512_128 => 16,
        _ => throw Unsupported(suite),
    };

    /// <summary>Nh: the output size of the suite's hash.</summary>
    public static int HashSize(this SFrameCipherSuite suite) => suite switch
    {
        SFrameCipherSuite.Aes256GcmSha512_128 => 64,
        _ when suite.IsSupported() => 32,
        _ => throw Unsupported(suite),
    };

    /// <summary>The hash of the suite's HKDF (and, for the CTR suites, of its HMAC).</summary>
    public static HashAlgorithmName Hash(this SFrameCipherSuite suite) => suite switch
    {
        SFrameCipherSuite.Aes256GcmSha512_128 => HashAlgorithmName.SHA512,
        _ when suite.IsSupported() => HashAlgorithmName.SHA256,
        _ => throw Unsupported(suite),
    };

    internal static bool IsCtrHmac(this SFrameCipherSuite suite) =>
        suite is >= SFrameCipherSuite.Aes128CtrHmacSha256_80 and <= SFrameCipherSuite.Aes128CtrHmacSha256_32;

    internal static void ThrowIfUnsupported(SFrameCipherSuite suite, string paramName)
    {
        if (!suite.IsSupported()) throw new ArgumentOutOfRangeException(paramName, suite, "Not a cipher suite of RFC 9605.");
    }

    private static ArgumentOutOfRangeException Unsupported(SFrameCipherSuite suite) =>
        new(nameof(suite), suite, "Not a cipher suite of RFC 9605.");
}
