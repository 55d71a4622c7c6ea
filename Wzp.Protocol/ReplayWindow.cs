namespace Wzp.Protocol;

/// <summary>
/// The 1024-packet sliding replay window over a u32 packet number (PROTOCOL.md §6), one per hop, direction
/// and epoch. Checked only after the AEAD succeeds, so a forged packet cannot move the window.
/// Not thread-safe: one receive loop owns it.
/// </summary>
public sealed class ReplayWindow
{
    public const int Size = 1024;
    private const int Words = Size / 64;

    // Bit i of the ring marks packet number (n mod 1024) as seen, for n in (_highest - 1024, _highest].
    private readonly ulong[] _ring = new ulong[Words];
    private long _highest = -1;

    /// <summary>The highest packet number accepted so far, or -1.</summary>
    public long Highest => _highest;

    /// <summary>True when <paramref name="packetNumber"/> would be accepted (new and not too old); changes nothing.</summary>
    public bool Check(uint packetNumber)
    {
        if (packetNumber > _highest) return true;
        if (_highest - packetNumber >= Size) return false;
        return !IsMarked(packetNumber);
    }

    /// <summary>Accepts <paramref name="packetNumber"/> if new and inside the window, and records it.</summary>
    public bool TryAccept(uint packetNumber)
    {
        if (packetNumber > _highest)
        {
            var advance = packetNumber - _highest;
            if (advance >= Size)
            {
                Array.Clear(_ring);
            }
            else
            {
                // Clear the slots of the numbers the window slides past: (_highest, packetNumber].
                for (var n = _highest + 1; n <= packetNumber; n++) Unmark((uint)n);
            }
            _highest = packetNumber;
            Mark(packetNumber);
            return true;
        }
        if (_highest - packetNumber >= Size || IsMarked(packetNumber)) return false;
        Mark(packetNumber);
        return true;
    }

    private bool IsMarked(uint n) => (_ring[(n % Size) / 64] & (1UL << (int)(n % 64))) != 0;

    private void Mark(uint n) => _ring[(n % Size) / 64] |= 1UL << (int)(n % 64);

    private void Unmark(uint n) => _ring[(n % Size) / 64] &= ~(1UL << (int)(n % 64));
}
