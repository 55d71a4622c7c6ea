using System.Security.Cryptography;

namespace Wzp.Protocol;

/// <summary>Which end of a hop this schedule serves; it decides which derived key seals and which opens.</summary>
public enum HopRole
{
    /// <summary>Seals with "up", opens "down".</summary>
    Client,
    /// <summary>Seals with "down", opens "up".</summary>
    Gateway,
    /// <summary>The offering gateway of a link: seals with "a2b", opens "b2a".</summary>
    LinkOffer,
    /// <summary>The accepting gateway of a link: seals with "b2a", opens "a2b".</summary>
    LinkAccept,
}

/// <summary>The keys of one epoch of one hop, derived from <c>chain_e</c> (PROTOCOL.md §5, §7, §8).</summary>
public sealed class HopEpoch : IDisposable
{
    private long _nextPacketNumber;
    private long _firstReceivedAt = -1;

    internal HopEpoch(uint number, ReadOnlySpan<byte> chain, HopRole role)
    {
        Number = number;
        Chain = chain.ToArray();
        var (send, receive) = Labels(role);
        Send = DirectionalKey.Derive(chain, send);
        Receive = DirectionalKey.Derive(chain, receive);
        RekeyMacKey = Primitives.Expand(chain, "wzp/1 rekey mac"u8, Primitives.KeySize);
    }

    public uint Number { get; }

    /// <summary>The low 8 bits carried in datagrams.</summary>
    public byte WireEpoch => (byte)Number;

    internal byte[] Chain { get; }

    internal DirectionalKey Send { get; }

    internal DirectionalKey Receive { get; }

    internal byte[] RekeyMacKey { get; }

    internal ReplayWindow Window { get; } = new();

    /// <summary>Datagrams sealed under this epoch so far.</summary>
    public long Sent => Interlocked.Read(ref _nextPacketNumber);

    /// <summary>Datagrams accepted under this epoch so far.</summary>
    public long Received { get; private set; }

    internal long FirstReceivedAt => Interlocked.Read(ref _firstReceivedAt);

    /// <summary>Takes the next send packet number; false once the u32 space is spent (a rekey was overdue).</summary>
    internal bool TryTakePacketNumber(out uint packetNumber)
    {
        var next = Interlocked.Increment(ref _nextPacketNumber) - 1;
        packetNumber = (uint)next;
        return next <= uint.MaxValue;
    }

    internal void OnAccepted(long now)
    {
        if (Received++ == 0) Interlocked.CompareExchange(ref _firstReceivedAt, now, -1);
    }

    internal static (string Send, string Receive) Labels(HopRole role) => role switch
    {
        HopRole.Client => ("up", "down"),
        HopRole.Gateway => ("down", "up"),
        HopRole.LinkOffer => ("a2b", "b2a"),
        HopRole.LinkAccept => ("b2a", "a2b"),
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    public void Dispose()
    {
        Send.Dispose();
        Receive.Dispose();
        CryptographicOperations.ZeroMemory(RekeyMacKey);
        CryptographicOperations.ZeroMemory(Chain);
    }
}

/// <summary>
/// The epochs of one hop: the current one (seals and opens), at most one installed next epoch (opens only,
/// until the switch), and at most one previous epoch kept for a grace period after a switch (opens only).
/// Grace (PROTOCOL.md §7): the previous epoch's keys stay until 2 s after the first datagram received
/// under the new epoch, at most 5 s after the switch; then they are zeroed.
/// Threading: one receive loop opens, any thread may seal, one control loop installs and switches.
/// </summary>
public sealed class HopKeySchedule : IDisposable
{
    public static readonly TimeSpan GraceAfterFirstDatagram = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan MaxGrace = TimeSpan.FromSeconds(5);

    /// <summary>A sender must start a rekey before a packet number reaches this.</summary>
    public const uint RekeyPacketNumber = 1u << 31;

    private readonly TimeProvider _time;
    private readonly Lock _control = new();
    private volatile HopEpoch _current;
    private volatile HopEpoch? _next;
    private volatile HopEpoch? _previous;
    private long _previousDeadline = long.MaxValue;
    private long _switchedAt;
    private bool _disposed;

    public HopKeySchedule(HopRole role, ReadOnlySpan<byte> chain0, TimeProvider? time = null)
    {
        if (chain0.Length != Primitives.KeySize) throw new ArgumentException("A chain key is 32 bytes.", nameof(chain0));
        Role = role;
        _time = time ?? TimeProvider.System;
        _current = new HopEpoch(0, chain0, role);
        _switchedAt = _time.GetTimestamp();
    }

    public HopRole Role { get; }

    /// <summary>The epoch this side seals with.</summary>
    public HopEpoch Current => _current;

    /// <summary>The installed epoch not yet switched to, if a rekey is under way.</summary>
    public HopEpoch? Next => _next;

    /// <summary>The epoch kept for grace after the last switch, if not yet wiped.</summary>
    public HopEpoch? Previous => _previous;

    /// <summary>Time since the current epoch became the sending epoch.</summary>
    public TimeSpan CurrentAge => _time.GetElapsedTime(Interlocked.Read(ref _switchedAt));

    /// <summary>Current rekey MAC key (the rekeyAck MAC of §7 uses the epoch being left).</summary>
    internal ReadOnlySpan<byte> CurrentRekeyMacKey => _current.RekeyMacKey;

    internal ReadOnlySpan<byte> CurrentChain => _current.Chain;

    /// <summary>
    /// Installs epoch current+1 from <paramref name="nextChain"/> for receiving. Sending stays on the current
    /// epoch until <see cref="SwitchToNext"/>.
    /// </summary>
    public void InstallNext(ReadOnlySpan<byte> nextChain)
    {
        lock (_control)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_next is not null) throw new InvalidOperationException("A next epoch is already installed.");
            RetirePrevious(); // a third live epoch would make the 8-bit wire epoch ambiguous sooner
            _next = new HopEpoch(_current.Number + 1, nextChain, Role);
        }
    }

    /// <summary>Makes the installed next epoch the sending epoch; the old one enters its grace period.</summary>
    public void SwitchToNext()
    {
        lock (_control)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var next = _next ?? throw new InvalidOperationException("No next epoch is installed.");
            RetirePrevious();
            var now = _time.GetTimestamp();
            _previous = _current;
            var deadline = now + Ticks(MaxGrace);
            var first = next.FirstReceivedAt;
            if (first >= 0) deadline = Math.Min(deadline, first + Ticks(GraceAfterFirstDatagram));
            Interlocked.Exchange(ref _previousDeadline, deadline);
            _current = next;
            _next = null;
            Interlocked.Exchange(ref _switchedAt, now);
        }
    }

    /// <summary>Takes the sending epoch and a fresh packet number; false when the number space is exhausted.</summary>
    public bool TryPrepareSend(out HopEpoch epoch, out uint packetNumber)
    {
        epoch = _current;
        return epoch.TryTakePacketNumber(out packetNumber);
    }

    /// <summary>Finds the receive epoch a datagram names by its low 8 bits, wiping an expired previous epoch first.</summary>
    public HopEpoch? FindReceiveEpoch(byte wireEpoch)
    {
        var current = _current;
        if (current.WireEpoch == wireEpoch) return current;
        var next = _next;
        if (next is not null && next.WireEpoch == wireEpoch) return next;
        var previous = _previous;
        if (previous is null) return null;
        if (_time.GetTimestamp() >= Interlocked.Read(ref _previousDeadline))
        {
            Maintain();
            return null;
        }
        return previous.WireEpoch == wireEpoch ? previous : null;
    }

    /// <summary>Records an accepted datagram; the first one under the sending epoch shortens the old epoch's grace.</summary>
    internal void OnAccepted(HopEpoch epoch)
    {
        var now = _time.GetTimestamp();
        var first = epoch.Received == 0;
        epoch.OnAccepted(now);
        if (first && ReferenceEquals(epoch, _current) && _previous is not null)
        {
            var deadline = now + Ticks(GraceAfterFirstDatagram);
            long seen;
            do
            {
                seen = Interlocked.Read(ref _previousDeadline);
                if (seen <= deadline) break;
            }
            while (Interlocked.CompareExchange(ref _previousDeadline, deadline, seen) != seen);
        }
    }

    /// <summary>Wipes the previous epoch once its grace has passed; call it from a timer as well as on traffic.</summary>
    public void Maintain()
    {
        if (_previous is null || _time.GetTimestamp() < Interlocked.Read(ref _previousDeadline)) return;
        lock (_control)
        {
            if (_previous is not null && _time.GetTimestamp() >= Interlocked.Read(ref _previousDeadline)) RetirePrevious();
        }
    }

    private void RetirePrevious()
    {
        var previous = _previous;
        _previous = null;
        Interlocked.Exchange(ref _previousDeadline, long.MaxValue);
        previous?.Dispose();
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    public void Dispose()
    {
        lock (_control)
        {
            if (_disposed) return;
            _disposed = true;
            RetirePrevious();
            _next?.Dispose();
            _current.Dispose();
        }
    }
}
