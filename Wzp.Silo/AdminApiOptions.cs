using System.Net;
using Microsoft.Extensions.Options;

namespace Wzp.Silo;

/// <summary>The <c>Admin</c> section: the room administration API of a silo (docs/operations.md, "Room administration").</summary>
public sealed class AdminApiOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Admin";

    /// <summary>Where the API listens unless <see cref="ListenAddress"/> says otherwise.</summary>
    public const string DefaultListenAddress = "127.0.0.1:9470";

    /// <summary>Serve the API. Defaults to true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// TCP address (IP:port) of the HTTP listener. Defaults to <c>127.0.0.1:9470</c>: loopback only. The API is plain
    /// HTTP; anything but loopback belongs behind a TLS proxy, and the silo warns at start when it is not loopback.
    /// Port 0 picks a free port (tests).
    /// </summary>
    public string ListenAddress { get; set; } = DefaultListenAddress;

    /// <summary>
    /// The operator key: a secret file whose contents (one line) authenticate a request as
    /// <c>Authorization: Bearer &lt;key&gt;</c>. Defaults to <c>.wzp/admin.key</c> under the working directory
    /// (<c>wzp relay</c>: <c>{--data-dir}/admin.key</c>). Mode 0600; whoever reads it administers every room.
    /// </summary>
    public string OperatorKeyFile { get; set; } = Path.Combine(".wzp", "admin.key");

    /// <summary>
    /// Create <see cref="OperatorKeyFile"/> with a fresh random key when it does not exist. Defaults to true; with
    /// false and no file only admin grants are accepted.
    /// </summary>
    public bool CreateOperatorKey { get; set; } = true;
}

internal sealed class AdminApiOptionsValidator : IValidateOptions<AdminApiOptions>
{
    public ValidateOptionsResult Validate(string? name, AdminApiOptions options)
    {
        if (!options.Enabled) return ValidateOptionsResult.Success;
        var failures = new List<string>();
        if (!IPEndPoint.TryParse(options.ListenAddress, out var endpoint) || options.ListenAddress.IndexOf(':', StringComparison.Ordinal) < 0)
            failures.Add($"Admin:ListenAddress '{options.ListenAddress}' is not an IP:port.");
        else if (endpoint.Port is < 0 or > 65535)
            failures.Add("Admin:ListenAddress port must be 0 to 65535.");
        if (string.IsNullOrWhiteSpace(options.OperatorKeyFile) && options.CreateOperatorKey)
            failures.Add("Admin:OperatorKeyFile is empty but Admin:CreateOperatorKey is true.");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
