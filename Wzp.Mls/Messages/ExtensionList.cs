using System.Diagnostics.CodeAnalysis;
using Wzp.Mls.Codec;

namespace Wzp.Mls.Messages;

/// <summary>Lookups over an extension list (a GroupContext's, GroupInfo's, KeyPackage's or LeafNode's).</summary>
public static class ExtensionList
{
    /// <summary>The first extension of <paramref name="type"/>, or null.</summary>
    public static Extension? Find(this IReadOnlyList<Extension> extensions, ushort type)
    {
        ArgumentNullException.ThrowIfNull(extensions);
        foreach (var extension in extensions)
            if (extension.ExtensionType == type) return extension;
        return null;
    }

    /// <summary>
    /// Parses the extension of <paramref name="type"/> as <typeparamref name="T"/>. False if it is absent;
    /// an extension that is present but malformed throws <see cref="MlsDecodeException"/>, since that makes the
    /// whole object carrying it invalid rather than the extension merely missing.
    /// </summary>
    public static bool TryGet<T>(this IReadOnlyList<Extension> extensions, ushort type, [NotNullWhen(true)] out T? value)
        where T : ITlsCodec<T>
    {
        var extension = extensions.Find(type);
        value = extension is null ? default : extension.As<T>();
        return value is not null;
    }

    /// <summary>True if two extensions share a type, which RFC 9420 §13.4 forbids in any one list.</summary>
    public static bool HasDuplicateTypes(this IReadOnlyList<Extension> extensions)
    {
        ArgumentNullException.ThrowIfNull(extensions);
        var seen = new HashSet<ushort>();
        foreach (var extension in extensions)
            if (!seen.Add(extension.ExtensionType)) return true;
        return false;
    }
}
