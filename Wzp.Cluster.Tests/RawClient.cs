using System.Collections.Concurrent;
using Wzp.Protocol;
using Wzp.Quic;

namespace Wzp.Cluster.Tests;

/// <summary>
/// A client written directly on Wzp.Protocol and Wzp.Quic, for what a well-behaved client never does: send
/// replays and forgeries, capture raw datagrams, and keep every key it ever held.
/// </summary>
internal sealed class RawClient : IAsyncDisposable
{
    private readonly QuicConnection _connection;
    private readonly ClientSession _session;
    private readonly Framing _framing;
    private readonly Task _control;
    private readonly CancellationTokenSource _stop = new();

    private RawClient(QuicConnection connection, ClientSession session, Joined joined, Framing framing)
    {
        _connection = connection;
        _session = session;
        _framing = framing;
        Joined = joined;
        Chains.Add(session.Keys.Current.Chain.ToArray());
        connection.SetDatagramHandler((_, datagram) => Captured.Enqueue(datagram.ToArray()));
        _control = Task.Run(ControlLoopAsync);
    }

    public Joined Joined { get; }

    /// <summary>Every datagram the gateway sent to this client, as it arrived.</summary>
    public ConcurrentQueue<byte[]> Captured { get; } = new();

    /// <summary>The chain key of every epoch this client held: all its keys derive from them.</summary>
    public List<byte[]> Chains { get; } = [];

    public HopKeySchedule Keys => _session.Keys;

    public static async Task<RawClient> ConnectAsync(int port, string room, byte[] clusterKey)
    {
        var connection = await QuicClient.ConnectAsync("127.0.0.1", port, new QuicClientOptions());
        using var identity = Identity.Generate();
        using var handshake = new ClientHandshake(identity, room, "raw", "", clusterKey);
        var client = new Framing(connection);
        await client.SendAsync(handshake.Hello);
        var welcome = Assert.IsType<Welcome>(await client.ReadAsync());
        var session = handshake.OnWelcome(welcome);
        Assert.True(session.Succeeded, session.Failure?.Message);
        await client.SendAsync(session.Value!.Confirm);
        var joined = Assert.IsType<Joined>(await client.ReadAsync());
        return new RawClient(connection, session.Value, joined, client);
    }

    public byte[] Seal(MediaHeader header, ReadOnlySpan<byte> payload)
    {
        var datagram = new byte[MediaDatagram.MaxSize];
        var n = MediaDatagram.Seal(_session.Keys, 0, header.ToArray(), payload, datagram);
        return datagram[..n];
    }

    public bool Send(ReadOnlySpan<byte> datagram) => _connection.SendDatagram(datagram);

    /// <summary>Sends datagrams coalesced into as few QUIC packets as fit (about 31 minimal ones each); how many went out.</summary>
    public int SendMany(IReadOnlyList<byte[]> datagrams)
    {
        var payloads = datagrams.SelectMany(d => d).ToArray();
        var lengths = datagrams.Select(d => d.Length).ToArray();
        return _connection.SendDatagrams(payloads, lengths);
    }

    public Task LeaveAsync() => _connection.WriteAsync(ControlCodec.Encode(new Leave())).AsTask();

    /// <summary>Answers rekeys as the protocol requires, remembering every chain.</summary>
    private async Task ControlLoopAsync()
    {
        var framing = _framing;
        try
        {
            while (await framing.ReadAsync(_stop.Token) is { } message)
            {
                switch (message)
                {
                    case Rekey rekey:
                        var ack = _session.Rekeys.OnRekey(rekey);
                        lock (Chains) Chains.Add(_session.Keys.Next!.Chain.ToArray());
                        await framing.SendAsync(ack.Value!);
                        break;
                    case RekeyDone done:
                        _session.Rekeys.OnRekeyDone(done);
                        break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or QuicException or IOException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _connection.CloseAsync(0, "done");
        await _control;
        await _connection.DisposeAsync();
        _session.Dispose();
    }
}

/// <summary>Length-prefixed control frames over the connection's stream.</summary>
internal sealed class Framing(QuicConnection connection)
{
    private readonly ControlFrameReader _reader = new();

    public Task SendAsync(ControlMessage message) => connection.WriteAsync(ControlCodec.Encode(message)).AsTask();

    public async Task<ControlMessage?> ReadAsync(CancellationToken cancellationToken = default)
    {
        ControlMessage? message;
        while (!_reader.TryRead(out message))
        {
            var read = await connection.ReadAsync(_reader.GetWriteMemory(), cancellationToken);
            if (read == 0) return null;
            _reader.Advance(read);
        }
        return message;
    }
}
