using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Wzp.Silo;

/// <summary>How silos find each other.</summary>
public enum ClusteringMode
{
    /// <summary>One silo on this machine, no external service (the default, all-in-one mode).</summary>
    Localhost = 0,

    /// <summary>Membership in Redis: N silos and M gateway processes (scale-out mode).</summary>
    Redis = 1,
}

/// <summary>The <c>Orleans</c> section of appsettings.json.</summary>
public sealed class WzpOrleansOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Orleans";

    /// <summary>Orleans cluster id; silos and clients of one cluster share it. Defaults to <c>wzp</c>.</summary>
    public string ClusterId { get; set; } = "wzp";

    /// <summary>Orleans service id, stable across deployments. Defaults to <c>wzp</c>.</summary>
    public string ServiceId { get; set; } = "wzp";

    /// <summary>The <c>Orleans:Clustering</c> section.</summary>
    public ClusteringSettings Clustering { get; set; } = new();

    /// <summary>Reads and validates the section; throws <see cref="OptionsValidationException"/> when invalid.</summary>
    public static WzpOrleansOptions Read(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(SectionName).Get<WzpOrleansOptions>() ?? new WzpOrleansOptions();
        var result = new WzpOrleansOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(SectionName, typeof(WzpOrleansOptions), result.Failures);
        }

        return options;
    }
}

/// <summary>The <c>Orleans:Clustering</c> section.</summary>
public sealed class ClusteringSettings
{
    /// <summary><c>Localhost</c> (default) or <c>Redis</c>.</summary>
    public ClusteringMode Mode { get; set; } = ClusteringMode.Localhost;

    /// <summary>
    /// StackExchange.Redis connection string, used when <see cref="Mode"/> is Redis. Defaults to
    /// <c>127.0.0.1:6379</c>. May carry a password: it is never logged.
    /// </summary>
    public string RedisConnectionString { get; set; } = "127.0.0.1:6379";

    /// <summary>Silo-to-silo port. Defaults to 11111. Keep it private: only the QUIC port faces clients.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port where Orleans clients (gateway processes) connect. Defaults to 30000. Private too.</summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>
    /// Address other silos and clients use to reach this silo in Redis mode. Defaults to <c>127.0.0.1</c>
    /// (one machine); set it to the host's private address when silos run on several machines.
    /// </summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";
}

/// <summary>Rejects an unusable <c>Orleans</c> section at start-up.</summary>
public sealed class WzpOrleansOptionsValidator : IValidateOptions<WzpOrleansOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, WzpOrleansOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ClusterId))
        {
            failures.Add("Orleans:ClusterId must not be empty.");
        }

        if (string.IsNullOrWhiteSpace(options.ServiceId))
        {
            failures.Add("Orleans:ServiceId must not be empty.");
        }

        var clustering = options.Clustering;
        if (!Enum.IsDefined(clustering.Mode))
        {
            failures.Add("Orleans:Clustering:Mode must be Localhost or Redis.");
        }

        if (clustering.Mode == ClusteringMode.Redis && string.IsNullOrWhiteSpace(clustering.RedisConnectionString))
        {
            failures.Add("Orleans:Clustering:RedisConnectionString is required in Redis mode.");
        }

        if (clustering.SiloPort is < 1 or > 65535 || clustering.GatewayPort is < 1 or > 65535 || clustering.SiloPort == clustering.GatewayPort)
        {
            failures.Add("Orleans:Clustering:SiloPort and GatewayPort must be distinct ports between 1 and 65535.");
        }

        if (!IPAddress.TryParse(clustering.AdvertisedAddress, out _))
        {
            failures.Add("Orleans:Clustering:AdvertisedAddress must be an IP address.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
