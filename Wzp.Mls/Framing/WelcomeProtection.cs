using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Framing;

/// <summary>
/// The two encryption layers of a Welcome (RFC 9420 §12.4.3.1): GroupSecrets to each new member's init key with
/// EncryptWithLabel("Welcome", encrypted_group_info), and the GroupInfo under the welcome key and nonce.
/// </summary>
public static class WelcomeProtection
{
    private const string Label = "Welcome";

    /// <summary>Seals the GroupInfo with the welcome secret's key and nonce and an empty aad.</summary>
    public static byte[] EncryptGroupInfo(CipherSuite suite, ReadOnlySpan<byte> welcomeSecret, GroupInfo groupInfo)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(groupInfo);
        var (key, nonce) = EpochSecrets.WelcomeKeyAndNonce(suite, welcomeSecret);
        using var plaintext = new TlsWriter(groupInfo.EstimatedLength);
        groupInfo.Encode(plaintext);
        var sealedInfo = suite.Seal(key, nonce, [], plaintext.WrittenSpan);
        CryptographicOperations.ZeroMemory(key);
        return sealedInfo;
    }

    /// <summary>Encrypts one new member's GroupSecrets to its key package's init key.</summary>
    public static EncryptedGroupSecrets EncryptGroupSecrets(CipherSuite suite, KeyPackage keyPackage, ReadOnlySpan<byte> encryptedGroupInfo, GroupSecrets secrets)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(keyPackage);
        ArgumentNullException.ThrowIfNull(secrets);
        var plaintext = Tls.Encode(secrets);
        var sealedSecrets = suite.EncryptWithLabel(keyPackage.InitKey, Label, encryptedGroupInfo, plaintext);
        CryptographicOperations.ZeroMemory(plaintext);
        return new EncryptedGroupSecrets(keyPackage.Reference(suite), new HpkeCiphertext(sealedSecrets.KemOutput, sealedSecrets.Ciphertext));
    }

    /// <summary>
    /// Finds the entry for <paramref name="keyPackageRef"/> and decrypts it with the key package's init private key;
    /// false if there is no entry, it does not open, or it is not a GroupSecrets.
    /// </summary>
    public static bool TryDecryptGroupSecrets(CipherSuite suite, Welcome welcome, ReadOnlySpan<byte> keyPackageRef, ReadOnlySpan<byte> initPrivateKey, [NotNullWhen(true)] out GroupSecrets? secrets)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(welcome);
        secrets = null;
        EncryptedGroupSecrets? entry = null;
        foreach (var candidate in welcome.Secrets)
        {
            if (candidate.NewMember.AsSpan().SequenceEqual(keyPackageRef))
            {
                entry = candidate;
                break;
            }
        }
        if (entry is null) return false;
        if (!suite.TryDecryptWithLabel(initPrivateKey, Label, welcome.EncryptedGroupInfo, entry.EncryptedSecrets.KemOutput, entry.EncryptedSecrets.Ciphertext, out var plaintext))
            return false;
        var ok = Tls.TryDecode(plaintext, out secrets);
        CryptographicOperations.ZeroMemory(plaintext);
        return ok;
    }

    /// <summary>Opens the Welcome's GroupInfo with the welcome secret; false if it does not open or does not parse.</summary>
    public static bool TryDecryptGroupInfo(CipherSuite suite, Welcome welcome, ReadOnlySpan<byte> welcomeSecret, [NotNullWhen(true)] out GroupInfo? groupInfo)
    {
        ArgumentNullException.ThrowIfNull(suite);
        ArgumentNullException.ThrowIfNull(welcome);
        groupInfo = null;
        var (key, nonce) = EpochSecrets.WelcomeKeyAndNonce(suite, welcomeSecret);
        var opened = suite.TryOpen(key, nonce, [], welcome.EncryptedGroupInfo, out var plaintext);
        CryptographicOperations.ZeroMemory(key);
        return opened && Tls.TryDecode(plaintext, out groupInfo);
    }
}
