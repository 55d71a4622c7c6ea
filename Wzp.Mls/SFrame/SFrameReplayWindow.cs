namespace Wzp.Mls.SFrame;

/// <summary>
/// Counter-based anti-replay in the manner of RFC 3711 §3.3.2, over SFrame's 64-bit CTR (RFC 9605 §9.3): a CTR is
/// accepted once, and only if it is above the highest accepted minus the window size. Only authenticated frames
/// may move it, so <see cref="Check"/> comes before decryption and <see cref="Accept"/> after.
/// </summary>
internal sealed class SFrameReplayWindow
{
    private readonly ulong[] _ring;
    private readonly int _size;
    private ulong _highest;
    private bool _any;

    /// <param name="size">Frames of reordering tolerated: a multiple of 64.</param>
    public SFrameReplayWindow(int size)
    {
        _size = size;
        _ring = new ulong[size / 64];
    }

    public bool Check(ulong counter)
    {
        if (!_any || counter > _highest) return true;
        return _highest - counter < (ulong)_size && !IsMarked(counter);
    }

    /// <summary>Records a counter that <see cref="Check"/> allowed and whose frame authenticated.</summary>
    public void Accept(ulong counter)
    {
        if (!_any || counter > _highest)
        {
            var advance = _any ? counter - _highest : ulong.MaxValue;
            if (advance >= (ulong)_size)
            {
                Array.Clear(_ring);
            }
            else
            {
                // The slots the window slides over belong to counters a full window below: forget them.
                for (var n = _highest + 1; n != counter; n++) Unmark(n);
            }
            _highest = counter;
            _any = true;
        }
        Mark(counter);
    }

    private bool IsMarked(ulong n) => (_ring[Slot(n) / 64] & (1UL << (int)(n % 64))) != 0;

    private void Mark(ulong n) => _ring[Slot(n) / 64] |= 1UL << (int)(n % 64);

    private void Unmark(ulong n) => _ring[Slot(n) / 64] &= ~(1UL << (int)(n % 64));

    private int Slot(ulong n) => (int)(n % (ulong)_size);
}
