using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Wzp.Quic;

/// <summary>TLS certificate files for the listener.</summary>
public static class QuicCertificate
{
    /// <summary>
    /// Writes a self-signed ECDSA P-256 certificate and its PKCS#8 key as PEM files unless both files
    /// exist already. The key file is created readable by the owner only. Returns true when it generated.
    /// </summary>
    public static bool EnsureSelfSigned(string certificatePath, string privateKeyPath, string subjectName = "CN=wzp-gateway")
    {
        ArgumentException.ThrowIfNullOrEmpty(certificatePath);
        ArgumentException.ThrowIfNullOrEmpty(privateKeyPath);
        if (File.Exists(certificatePath) && File.Exists(privateKeyPath))
        {
            return false;
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subjectName, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(10));

        WriteAtomically(privateKeyPath, key.ExportPkcs8PrivateKeyPem(), ownerOnly: true);
        WriteAtomically(certificatePath, certificate.ExportCertificatePem(), ownerOnly: false);
        return true;
    }

    private static void WriteAtomically(string path, string contents, bool ownerOnly)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        // A random temporary name created with CreateNew: a fixed one (path.tmp-PID) can be created beforehand by
        // another local user, or be a symbolic link, and FileMode.Create would then write the private key into a
        // file that user can read whatever mode we ask for. The key's file is 0600 from its creation.
        string temp = Path.Combine(dir ?? ".", $".{Path.GetFileName(path)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = ownerOnly
                ? UnixFileMode.UserRead | UnixFileMode.UserWrite
                : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(contents);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
