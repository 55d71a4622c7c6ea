using System.Text;
using Wzp.Protocol;

namespace Wzp.Client;

/// <summary>What trust on first use decided about a gateway's cluster key.</summary>
public enum TrustDecision
{
    /// <summary>The user pinned this cluster fingerprint.</summary>
    Pinned,
    /// <summary>Never seen before: recorded now.</summary>
    FirstUse,
    /// <summary>Matches the recorded fingerprint.</summary>
    Known,
    /// <summary>Differed from the recorded fingerprint; the user allowed the change and the record was replaced.</summary>
    Replaced,
}

/// <summary>
/// The known-clusters file of trust on first use (PROTOCOL.md §2): one line per gateway (<c>host:port</c>) or
/// cluster name, then its cluster fingerprint; <c>#</c> starts a comment. A changed key is refused unless the
/// caller explicitly allows it, and then the line is replaced. Writes go through a temporary file and a rename,
/// so a crash never leaves half a file.
/// </summary>
public sealed class KnownClusters
{
    private static readonly Lock FileLock = new();

    public KnownClusters(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
    }

    /// <summary><c>$XDG_CONFIG_HOME/wzp/known_clusters</c>, by default <c>~/.config/wzp/known_clusters</c>.</summary>
    public static string DefaultPath => System.IO.Path.Combine(WzpPaths.ConfigDirectory, "known_clusters");

    public string Path { get; }

    /// <summary>The recorded fingerprint of <paramref name="name"/>, if any.</summary>
    /// <exception cref="KnownClustersException">The file exists but cannot be read or has a malformed line.</exception>
    public Fingerprint? Find(string name)
    {
        lock (FileLock)
        {
            return Read().TryGetValue(name, out var fingerprint) ? fingerprint : null;
        }
    }

    /// <summary>
    /// Applies trust on first use to <paramref name="presented"/> for <paramref name="name"/>.
    /// </summary>
    /// <param name="name">The gateway's <c>host:port</c> or a cluster name; no whitespace.</param>
    /// <param name="presented">The cluster fingerprint the gateway's verified credential carries.</param>
    /// <param name="allowChange">Accept and record a fingerprint that differs from the recorded one.</param>
    /// <exception cref="ClusterKeyChangedException">The fingerprint changed and <paramref name="allowChange"/> is false.</exception>
    /// <exception cref="KnownClustersException">The file cannot be read, parsed or written.</exception>
    public TrustDecision Check(string name, Fingerprint presented, bool allowChange)
    {
        ValidateName(name);
        lock (FileLock)
        {
            var entries = Read();
            if (entries.TryGetValue(name, out var known))
            {
                if (known == presented) return TrustDecision.Known;
                if (!allowChange) throw new ClusterKeyChangedException(name, known, presented, Path);
                entries[name] = presented;
                Write(entries);
                return TrustDecision.Replaced;
            }
            entries[name] = presented;
            Write(entries);
            return TrustDecision.FirstUse;
        }
    }

    private static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c == '#'))
            throw new ArgumentException("A known-clusters name has no whitespace, control characters or '#'.", nameof(name));
    }

    private Dictionary<string, Fingerprint> Read()
    {
        var entries = new Dictionary<string, Fingerprint>(StringComparer.Ordinal);
        string[] lines;
        try
        {
            if (!File.Exists(Path)) return entries;
            lines = File.ReadAllLines(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KnownClustersException($"cannot read known-clusters file '{Path}': {e.Message}", e);
        }
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0) line = line[..hash];
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            if (parts.Length != 2 || !Fingerprint.TryParse(parts[1], out var fingerprint))
                throw new KnownClustersException($"known-clusters file '{Path}' line {i + 1} is malformed: expected 'NAME FINGERPRINT'");
            entries[parts[0]] = fingerprint;
        }
        return entries;
    }

    private void Write(Dictionary<string, Fingerprint> entries)
    {
        var text = new StringBuilder("# wzp known clusters: gateway host:port or cluster name, then the cluster fingerprint\n");
        foreach (var (name, fingerprint) in entries.OrderBy(e => e.Key, StringComparer.Ordinal))
            text.Append(name).Append(' ').Append(fingerprint.ToString()).Append('\n');
        try
        {
            var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path));
            if (!string.IsNullOrEmpty(directory)) WzpPaths.CreatePrivateDirectory(directory);
            // A unique owner-only temporary name, renamed over the file: another local user can neither read nor
            // plant the trust records, and two clients saving at once cannot interleave.
            PrivateFile.WriteAtomically(Path, text.ToString());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KnownClustersException($"cannot write known-clusters file '{Path}': {e.Message}", e);
        }
    }
}

/// <summary>Where the <c>wzp</c> tools keep their files.</summary>
public static class WzpPaths
{
    /// <summary><c>$XDG_CONFIG_HOME/wzp</c>, else <c>~/.config/wzp</c>.</summary>
    public static string ConfigDirectory
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
            return Path.Combine(root, "wzp");
        }
    }

    /// <summary>The user's identity seed file: <c>~/.config/wzp/identity</c>.</summary>
    public static string DefaultIdentityPath => Path.Combine(ConfigDirectory, "identity");

    /// <summary>Creates a directory readable by its owner only (it holds secrets and trust records).</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (Directory.Exists(path)) return;
        if (OperatingSystem.IsWindows()) Directory.CreateDirectory(path);
        else Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
