using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Wzp.Gateway;

/// <summary>
/// The access token check: a comparison that leaks neither content nor length, and a limit on wrong guesses per
/// source address.
/// </summary>
/// <remarks>
/// <see cref="CryptographicOperations.FixedTimeEquals"/> returns at once for inputs of different lengths, so
/// comparing the raw bytes tells a guesser the token's length. Both sides are hashed to 32 bytes first; the hash
/// of the configured token is computed once.
/// <para>
/// Failures are counted per IPv4 address or IPv6 /64 (one host typically holds a whole /64) in a fixed window.
/// The table is bounded: when it is full, entries whose window ended are pruned, and if none has, new addresses
/// are not tracked (so an attacker who owns many addresses cannot make the gateway grow without bound; those
/// addresses still pay a full handshake per guess).
/// </para>
/// </remarks>
internal sealed class TokenGuard
{
    internal const int MaxTracked = 16_384;

    private readonly byte[] _expected;
    private readonly int _maxFailures;
    private readonly TimeSpan _window;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<UInt128, Failures> _failures = new();
    private readonly GatewayCounters _counters;

    public TokenGuard(string token, int maxFailures, TimeSpan window, TimeProvider time, GatewayCounters counters)
    {
        _counters = counters;
        _expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        _maxFailures = maxFailures;
        _window = window;
        _time = time;
    }

    /// <summary>Addresses with wrong tokens on record (bounded by <see cref="MaxTracked"/>).</summary>
    public int Tracked => _failures.Count;

    /// <summary>Compares in time that depends on neither the token's content nor its length.</summary>
    public bool Matches(string token)
    {
        Span<byte> presented = stackalloc byte[SHA256.HashSizeInBytes];
        var bytes = Encoding.UTF8.GetBytes(token);
        SHA256.HashData(bytes, presented);
        CryptographicOperations.ZeroMemory(bytes);
        return CryptographicOperations.FixedTimeEquals(presented, _expected);
    }

    /// <summary>False (and counted) when <paramref name="address"/> used up its wrong guesses for the window.</summary>
    public bool Admits(IPAddress address)
    {
        if (!_failures.TryGetValue(Key(address), out var entry)) return true;
        lock (entry)
        {
            if (_time.GetElapsedTime(entry.WindowStart) >= _window || entry.Count < _maxFailures) return true;
        }
        _counters.OnTokenRefusal(TokenRefusal.RateLimited);
        return false;
    }

    /// <summary>Records a wrong token from <paramref name="address"/>.</summary>
    public void OnWrongToken(IPAddress address)
    {
        _counters.OnTokenRefusal(TokenRefusal.WrongToken);
        var key = Key(address);
        if (!_failures.TryGetValue(key, out var entry))
        {
            if (_failures.Count >= MaxTracked) Prune();
            if (_failures.Count >= MaxTracked) return;
            entry = _failures.GetOrAdd(key, _ => new Failures(_time.GetTimestamp()));
        }
        lock (entry)
        {
            var now = _time.GetTimestamp();
            if (_time.GetElapsedTime(entry.WindowStart, now) >= _window)
            {
                entry.WindowStart = now;
                entry.Count = 0;
            }
            entry.Count++;
        }
    }

    private void Prune()
    {
        foreach (var (key, entry) in _failures)
        {
            bool ended;
            lock (entry) ended = _time.GetElapsedTime(entry.WindowStart) >= _window;
            if (ended) _failures.TryRemove(new KeyValuePair<UInt128, Failures>(key, entry));
        }
    }

    private static UInt128 Key(IPAddress address) => AddressKey.Of(address);

    private sealed class Failures(long windowStart)
    {
        public long WindowStart = windowStart;
        public int Count;
    }
}
