namespace Wzp.Protocol.Grants;

/// <summary>
/// What a grant (a JWT, RFC 7519) lets one member do: join rooms matching <see cref="Room"/> as the identity whose
/// fingerprint is <see cref="Subject"/>, between <see cref="NotBefore"/> and <see cref="Expires"/>. Bound to the
/// identity key, a grant is useless to anyone who steals it: the gateway also checks that <c>sub</c> is the
/// fingerprint of the key that signed the <c>hello</c>.
/// </summary>
/// <param name="Subject">Claim <c>sub</c>: the member's identity fingerprint (display form on the wire).</param>
/// <param name="Room">Claim <c>room</c>: a room name, or a prefix ending in <c>*</c> (<c>*</c> alone: every room).</param>
/// <param name="NotBefore">Claim <c>nbf</c> (required).</param>
/// <param name="Expires">Claim <c>exp</c> (required).</param>
/// <param name="Name">Claim <c>name</c>: the alias the gateway gives the member; null leaves the client's own.</param>
/// <param name="Publish">Claim <c>publish</c>: the member's media is forwarded. Absent means false.</param>
/// <param name="Subscribe">Claim <c>subscribe</c>: the member receives the room's media. Absent means false.</param>
/// <param name="Admin">Claim <c>admin</c>: the member may administer the room. Absent means false.</param>
/// <param name="KeyId">Header <c>kid</c>: the issuer key that signed it.</param>
public sealed record Grant(
    Fingerprint Subject,
    string Room,
    DateTimeOffset NotBefore,
    DateTimeOffset Expires,
    string? Name,
    bool Publish,
    bool Subscribe,
    bool Admin,
    string KeyId)
{
    /// <summary>
    /// A grant for <paramref name="subject"/> with the usual permissions of a speaking member. Its times are whole
    /// seconds, as the JWT carries them.
    /// </summary>
    public static Grant For(Fingerprint subject, string room, DateTimeOffset notBefore, TimeSpan lifetime, string keyId)
    {
        var start = DateTimeOffset.FromUnixTimeSeconds(notBefore.ToUnixTimeSeconds());
        return new(subject, room, start, start + TimeSpan.FromSeconds(Math.Ceiling(lifetime.TotalSeconds)), null, Publish: true, Subscribe: true, Admin: false, keyId);
    }

    /// <summary>True when <paramref name="room"/> is the grant's room, or starts with its prefix (a trailing <c>*</c>).</summary>
    public bool AllowsRoom(string room) => MatchesRoom(Room, room);

    internal static bool MatchesRoom(string pattern, string room) =>
        pattern.EndsWith('*')
            ? room.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal)
            : string.Equals(pattern, room, StringComparison.Ordinal);

    /// <summary>A <c>room</c> claim: a valid room name, or a prefix of one followed by a single trailing <c>*</c>.</summary>
    public static bool IsValidRoomPattern(string? pattern)
    {
        if (pattern is null) return false;
        if (pattern == "*") return true;
        var name = pattern.EndsWith('*') ? pattern[..^1] : pattern;
        return HelloLimits.IsValidRoom(name) && !name.Contains('*', StringComparison.Ordinal);
    }
}
