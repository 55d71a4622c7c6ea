using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Wzp.Gateway;

/// <summary>
/// Clients between their QUIC connection and their place in a room (handshake and join), bounded in total and per
/// source (<see cref="AddressKey"/>), so that half-open clients cannot hold the slots new clients need.
/// </summary>
/// <remarks>
/// A client that has not sent a complete <c>hello</c> yet can be pushed out: when the table is full, the oldest
/// such client makes room for a newcomer. Honest clients send <c>hello</c> one round trip after connecting, so they
/// are rarely the oldest; an attacker who fills the table with connections that trickle bytes and never finish a
/// <c>hello</c> only pushes out its own. Clients past <c>hello</c> keep their slot until their handshake and join
/// end (both bounded in time).
/// </remarks>
internal sealed class Admissions(int maxTotal, int maxPerAddress)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<UInt128, int> _bySource = [];
    private readonly LinkedList<Ticket> _beforeHello = new();
    private int _total;

    /// <summary>Clients being admitted now.</summary>
    public int Count
    {
        get
        {
            lock (_lock) return _total;
        }
    }

    /// <summary>Clients pushed out by newcomers so far.</summary>
    public long PushedOut { get; private set; }

    /// <summary>A ticket for a client from <paramref name="address"/>, or null when its source is at its limit, or the
    /// table is full of clients past <c>hello</c>.</summary>
    public Ticket? TryEnter(IPAddress address)
    {
        var source = AddressKey.Of(address);
        Ticket? pushedOut = null;
        Ticket ticket;
        lock (_lock)
        {
            var fromSource = _bySource.GetValueOrDefault(source);
            if (fromSource >= maxPerAddress) return null;
            if (_total >= maxTotal)
            {
                if (_beforeHello.First is not { } oldest) return null;
                pushedOut = oldest.Value;
                ReleaseLocked(pushedOut);
                PushedOut++;
                fromSource = _bySource.GetValueOrDefault(source);
            }
            ticket = new Ticket(this, source);
            ticket.Node = _beforeHello.AddLast(ticket);
            _bySource[source] = fromSource + 1;
            _total++;
        }
        pushedOut?.PushOut();
        return ticket;
    }

    private void ReleaseLocked(Ticket ticket)
    {
        if (ticket.Released) return;
        ticket.Released = true;
        if (ticket.Node is { } node)
        {
            _beforeHello.Remove(node);
            ticket.Node = null;
        }
        _total--;
        var left = _bySource[ticket.Source] - 1;
        if (left == 0) _bySource.Remove(ticket.Source);
        else _bySource[ticket.Source] = left;
    }

    /// <summary>One client's place in the table; disposing it gives the place back.</summary>
    public sealed class Ticket : IDisposable
    {
        private readonly Admissions _table;
        private readonly CancellationTokenSource _pushedOut = new();

        internal Ticket(Admissions table, UInt128 source)
        {
            _table = table;
            Source = source;
        }

        internal UInt128 Source { get; }
        internal LinkedListNode<Ticket>? Node { get; set; }
        internal bool Released { get; set; }

        /// <summary>Cancelled when a newcomer took this client's place (only before <see cref="SaidHello"/>).</summary>
        public CancellationToken PushedOut => _pushedOut.Token;

        /// <summary>The client sent its <c>hello</c>: from now on it keeps its place until it is done.</summary>
        public void SaidHello()
        {
            lock (_table._lock)
            {
                if (Node is { } node)
                {
                    _table._beforeHello.Remove(node);
                    Node = null;
                }
            }
        }

        internal void PushOut() => _pushedOut.Cancel();

        /// <remarks>The token source is left undisposed on purpose: a newcomer may push this client out at the
        /// moment it ends, and a source with no timer holds nothing to free.</remarks>
        public void Dispose()
        {
            lock (_table._lock) _table.ReleaseLocked(this);
        }
    }
}

/// <summary>The source a limit applies to: an IPv4 address (also when mapped into IPv6) as itself, an IPv6
/// address by its /64 (one host is routinely given a whole /64).</summary>
internal static class AddressKey
{
    public static UInt128 Of(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        // An IPv6 key's low half is 0; an IPv4 key's is the address with bit 32 set, so the two never meet.
        if (address.AddressFamily == AddressFamily.InterNetworkV6) return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(bytes), 0);
        return new UInt128(0, BinaryPrimitives.ReadUInt32BigEndian(bytes[..written]) | (1UL << 32));
    }
}
