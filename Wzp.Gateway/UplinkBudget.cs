namespace Wzp.Gateway;

/// <summary>
/// A token bucket over one member's uplink datagrams. Without it one member's QUIC packets (about 31 minimal
/// datagrams each) make the gateway open every datagram and seal it for every recipient on the receive thread,
/// which starves every other room of this gateway. The bucket is checked before the datagram is even opened, so
/// the excess costs one comparison.
/// </summary>
/// <remarks>
/// Only the member's connection handler touches it (one receive thread per connection; the queue drain at join
/// happens before the handler runs, or overlaps it for a few datagrams at most). The fields are therefore plain:
/// a race can at worst grant or refuse one token, never corrupt the bucket, and the hot path stays free of
/// interlocked operations. Tokens are kept in fixed point (millionths of a datagram) so no floating point
/// rounding accumulates over a long call.
/// </remarks>
internal sealed class UplinkBudget
{
    private const long Scale = 1_000_000;

    private readonly long _capacity;
    private readonly long _frequency;
    private readonly long _rate;
    private long _tokens;
    private long _last;

    /// <param name="ratePerSecond">Sustained datagrams per second.</param>
    /// <param name="burst">Datagrams that may arrive at once after a quiet spell; the bucket starts full.</param>
    /// <param name="timestampFrequency">Ticks per second of the timestamps passed to <see cref="TryTake"/>.</param>
    /// <param name="now">The current timestamp.</param>
    public UplinkBudget(int ratePerSecond, int burst, long timestampFrequency, long now)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ratePerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(timestampFrequency, 1);
        _capacity = burst * Scale;
        _tokens = _capacity;
        _rate = ratePerSecond;
        _frequency = timestampFrequency;
        _last = now;
    }

    /// <summary>Takes one datagram's token; false when the member is over its budget (the datagram is dropped).</summary>
    public bool TryTake(long now)
    {
        var elapsed = now - _last;
        if (elapsed > 0 && _tokens < _capacity)
        {
            // Int128: a long quiet spell times the rate times the scale overflows a long. Only the ticks that earned
            // whole fixed-point units are consumed, so a flood of closely spaced datagrams loses nothing to rounding.
            var earned = (long)Int128.Min((Int128)elapsed * _rate * Scale / _frequency, _capacity - _tokens);
            if (earned > 0)
            {
                _tokens += earned;
                _last = _tokens == _capacity ? now : _last + (long)((Int128)earned * _frequency / (_rate * Scale));
            }
        }
        else if (elapsed > 0)
        {
            _last = now; // full: time spent full earns nothing
        }
        if (_tokens < Scale) return false;
        _tokens -= Scale;
        return true;
    }
}
