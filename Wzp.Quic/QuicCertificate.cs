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

        string temp = path + ".tmp-" + Environment.ProcessId;
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (ownerOnly && !OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temp, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(contents);
        }

        File.Move(temp, path, overwrite: true);
    }
}
