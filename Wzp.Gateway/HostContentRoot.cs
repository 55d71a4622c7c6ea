namespace Wzp.Gateway;

/// <summary>Finds the folder whose appsettings.json a Wzp host (silo or gateway process) should read.</summary>
public static class HostContentRoot
{
    private const string SettingsFile = "appsettings.json";

    /// <summary>
    /// The executable's folder when appsettings.json was copied there (a build or publish output); otherwise the
    /// nearest folder upwards from the working directory holding both appsettings.json and Wzp.sln (a checkout);
    /// otherwise the working directory.
    /// </summary>
    public static string Find()
    {
        if (File.Exists(Path.Combine(AppContext.BaseDirectory, SettingsFile)))
        {
            return AppContext.BaseDirectory;
        }

        for (var folder = new DirectoryInfo(Directory.GetCurrentDirectory()); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, SettingsFile)) && File.Exists(Path.Combine(folder.FullName, "Wzp.sln")))
            {
                return folder.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
