using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Wzp.Protocol;

/// <summary>
/// Writing and checking files that hold secrets or trust records (seeds, keys, credentials, known clusters).
/// </summary>
public static class PrivateFile
{
    private const int EExist = 17; // the same on Linux and macOS

    [DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link([MarshalAs(UnmanagedType.LPUTF8Str)] string existing, [MarshalAs(UnmanagedType.LPUTF8Str)] string created);

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="contents"/> so that a reader sees the old file or the
    /// new one, never a part: written to a temporary file in the same folder, flushed, then renamed over it.
    /// </summary>
    /// <remarks>
    /// The temporary name is random and created with <see cref="FileMode.CreateNew"/>: a fixed name (<c>path.tmp</c>)
    /// lets another local user create it first (or a symbolic link by that name) and read or redirect the secret,
    /// and two writers at once would interleave. It is created with mode 0600 from the start, never widened later.
    /// </remarks>
    /// <exception cref="IOException">The folder is missing or not writable, or the rename failed.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission denied.</exception>
    public static void WriteAtomically(string path, string contents, bool ownerOnly = true) => Write(path, contents, ownerOnly, overwrite: true);

    /// <summary>
    /// Creates <paramref name="path"/> with <paramref name="contents"/> (owner-only, all or nothing, as
    /// <see cref="WriteAtomically"/>) unless it exists; false when another writer created it first, whose file stays.
    /// Processes that start at once and share a file each create it this way, then all read the one that won.
    /// </summary>
    /// <exception cref="IOException">The folder is missing or not writable.</exception>
    /// <exception cref="UnauthorizedAccessException">Permission denied.</exception>
    public static bool TryCreateAtomically(string path, string contents) => Write(path, contents, ownerOnly: true, overwrite: false);

    private static bool Write(string path, string contents, bool ownerOnly, bool overwrite)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        var temporary = Path.Combine(directory, $".{Path.GetFileName(full)}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = ownerOnly ? OwnerOnly : OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        try
        {
            using (var stream = new FileStream(temporary, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(contents);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }
            if (overwrite)
            {
                File.Move(temporary, full, overwrite: true);
                return true;
            }
            if (OperatingSystem.IsWindows())
            {
                // MoveFileEx without MOVEFILE_REPLACE_EXISTING fails when the name exists, atomically.
                try
                {
                    File.Move(temporary, full, overwrite: false);
                }
                catch (IOException) when (File.Exists(full))
                {
                    File.Delete(temporary);
                    return false;
                }
                return true;
            }
            // link(2) makes the name only if it does not exist, in one step. File.Move(overwrite: false) is not
            // enough here: .NET checks for the name and then renames, so two writers at once can both win.
            var linked = Link(temporary, full) == 0;
            var errno = Marshal.GetLastPInvokeError();
            File.Delete(temporary);
            if (linked) return true;
            if (errno == EExist) return false;
            throw new IOException($"Could not create {full}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
        }
        catch
        {
            try
            {
                File.Delete(temporary);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Nothing more to do: the temporary file is owner-only and the original is untouched.
            }
            throw;
        }
    }

    /// <summary>
    /// True when someone other than the file's owner may read or write <paramref name="path"/> (any group or other
    /// permission bit): a seed in such a file may already be known to others. False on Windows, whose ACLs this
    /// does not judge, and when the file cannot be inspected.
    /// </summary>
    public static bool IsExposed(string path)
    {
        if (OperatingSystem.IsWindows()) return false;
        try
        {
            return (File.GetUnixFileMode(path) & GroupOrOther) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
