using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Orleans.Connections.Security;
using Wzp.Protocol;

namespace Wzp.Gateway;

/// <summary>Whether Orleans traffic (silo to silo, gateway to silo) runs over mutually authenticated TLS.</summary>
public enum ControlPlaneTlsMode
{
    /// <summary>Required in the scale-out mode (Redis clustering), off in the all-in-one mode (loopback only).</summary>
    Auto = 0,

    /// <summary>Always: a node without the cluster's certificate can neither connect nor be connected to.</summary>
    Required = 1,

    /// <summary>Never: Orleans traffic is plaintext and unauthenticated. Only for a private network you trust.</summary>
    Off = 2,
}

/// <summary>The <c>Orleans:Tls</c> section, read by silos and gateway processes alike.</summary>
public sealed class ControlPlaneTlsSettings
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Orleans:Tls";

    /// <summary><c>Auto</c> (default), <c>Required</c> or <c>Off</c>.</summary>
    public ControlPlaneTlsMode Mode { get; set; } = ControlPlaneTlsMode.Auto;

    /// <summary>
    /// The control plane's certificate and private key, one PEM file made by <c>wzp cluster tls</c>; every silo and
    /// gateway of the cluster is given the same file. No default: required when TLS is on.
    /// </summary>
    public string CertificateFile { get; set; } = "";

    /// <summary>
    /// Further certificates (PEM, certificate only) whose holders are accepted as well: the next certificate during
    /// a rotation (give every node the new one here, then switch <see cref="CertificateFile"/> node by node, then
    /// drop the old one). Defaults to none.
    /// </summary>
    public List<string> AcceptedCertificateFiles { get; set; } = [];

    /// <summary>Whether TLS is on for a node in this clustering mode.</summary>
    public bool IsOn(bool redisClustering) => Mode switch
    {
        ControlPlaneTlsMode.Required => true,
        ControlPlaneTlsMode.Off => false,
        _ => redisClustering,
    };

    /// <summary>Reads the section; throws <see cref="OptionsValidationException"/> with the fix when TLS is on without a certificate.</summary>
    public static ControlPlaneTlsSettings Read(IConfiguration configuration, bool redisClustering)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var settings = configuration.GetSection(SectionName).Get<ControlPlaneTlsSettings>() ?? new ControlPlaneTlsSettings();
        if (settings.IsOn(redisClustering) && string.IsNullOrWhiteSpace(settings.CertificateFile))
        {
            throw new OptionsValidationException(SectionName, typeof(ControlPlaneTlsSettings),
            [
                "Orleans traffic between silos and gateways is authenticated with TLS in the scale-out mode, and " +
                "Orleans:Tls:CertificateFile is not set. Create the cluster's certificate once with " +
                "'wzp cluster tls --out control-plane.pem', give the same file to every silo and gateway " +
                "(Orleans__Tls__CertificateFile=/path/control-plane.pem), or set Orleans:Tls:Mode=Off on a private network you trust.",
            ]);
        }
        return settings;
    }
}

/// <summary>
/// Mutual TLS for Orleans traffic with one certificate per cluster: every node presents it and accepts a peer only
/// if the peer presents it too (or one of <see cref="ControlPlaneTlsSettings.AcceptedCertificateFiles"/>), compared
/// by SHA-256 of the whole certificate. Holding the private key is what TLS makes a peer prove, so a node without
/// the file can neither join the cluster nor talk to it, and no CA or host names are involved.
/// </summary>
public sealed class ControlPlaneTls
{
    private readonly HashSet<string> _accepted;

    private ControlPlaneTls(X509Certificate2 certificate, HashSet<string> accepted)
    {
        Certificate = certificate;
        _accepted = accepted;
    }

    /// <summary>This node's certificate (with its private key).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>Loads the certificate and the accepted ones; throws <see cref="InvalidOperationException"/> naming the file and the fix.</summary>
    public static ControlPlaneTls Load(ControlPlaneTlsSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(settings.CertificateFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new InvalidOperationException(
                $"Orleans:Tls:CertificateFile '{settings.CertificateFile}' is not a readable PEM certificate with its private key " +
                $"({e.GetType().Name}); create one with 'wzp cluster tls --out FILE'.", e);
        }
        if (!certificate.HasPrivateKey)
            throw new InvalidOperationException($"Orleans:Tls:CertificateFile '{settings.CertificateFile}' holds no private key; use the file 'wzp cluster tls' wrote.");
        var accepted = new HashSet<string>(StringComparer.Ordinal) { Thumbprint(certificate) };
        foreach (var file in settings.AcceptedCertificateFiles)
        {
            try
            {
                using var other = X509Certificate2.CreateFromPem(File.ReadAllText(file));
                accepted.Add(Thumbprint(other));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                throw new InvalidOperationException($"Orleans:Tls:AcceptedCertificateFiles: '{file}' is not a readable PEM certificate ({e.GetType().Name}).", e);
            }
        }
        return new ControlPlaneTls(certificate, accepted);
    }

    /// <summary>The SHA-256 of the certificate (hex), as operators see it in <c>wzp cluster tls</c>'s output.</summary>
    public static string Thumbprint(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
    }

    /// <summary>Whether a peer presenting <paramref name="certificate"/> belongs to this cluster.</summary>
    public bool Accepts(X509Certificate2? certificate) => certificate is not null && _accepted.Contains(Thumbprint(certificate));

    /// <summary>Applies the rules to Orleans' TLS options (silo and client side).</summary>
    public void Configure(TlsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.LocalCertificate = Certificate;
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        // The chain and name errors of a self-signed certificate are expected; the pin decides.
        options.RemoteCertificateValidation = (certificate, _, _) => Accepts(certificate);
    }

    /// <summary>
    /// Creates a cluster certificate: ECDSA P-256, self-signed, valid for <paramref name="years"/>, written with its
    /// private key as one PEM file readable by its owner only. Returns its thumbprint.
    /// </summary>
    public static string Create(string path, int years)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=wzp-control-plane", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false)); // server and client authentication
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(years));
        var pem = certificate.ExportCertificatePem() + "\n" + key.ExportPkcs8PrivateKeyPem() + "\n";
        PrivateFile.WriteAtomically(path, pem);
        return Thumbprint(certificate);
    }
}
