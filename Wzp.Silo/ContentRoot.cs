using Wzp.Gateway;

namespace Wzp.Silo;

/// <summary>Finds the folder whose appsettings.json a host should read.</summary>
public static class ContentRoot
{
    /// <inheritdoc cref="HostContentRoot.Find"/>
    public static string Find() => HostContentRoot.Find();
}
