using BenchmarkDotNet.Attributes;
using NSec.Cryptography;
using Wzp.Protocol;

namespace Wzp.Benchmarks;

/// <summary>
/// Sealing and opening one 160-byte media datagram through Wzp.Protocol (header, packet number, epoch lookup,
/// replay window) against raw NSec ChaCha20-Poly1305 over the same bytes, in the same run. Goal: ratio ≤ 1.2
/// and no allocation per datagram.
/// </summary>
[MemoryDiagnoser]
public class MediaDatagramBenchmarks
{
    private const int PayloadSize = 160;
    private static readonly AeadAlgorithm Aead = AeadAlgorithm.ChaCha20Poly1305;

    private readonly byte[] _payload = new byte[PayloadSize];
    private readonly byte[] _header = new MediaHeader(false, false, CodecId.Opus24k, false, 0, 1, 20, 0, 0, 0, 0).ToArray();
    private readonly byte[] _datagram = new byte[MediaDatagram.MaxSize];
    private readonly byte[] _plaintext = new byte[MediaDatagram.MaxSize];
    private readonly byte[] _iv = new byte[12];
    private Key _rawKey = null!;
    private uint _rawPacketNumber;
    private Identity _cluster = null!;
    private Identity _gateway = null!;
    private ClientSession _client = null!;
    private GatewaySession _gatewaySession = null!;

    [GlobalSetup]
    public void Setup()
    {
        Random.Shared.NextBytes(_payload);
        Random.Shared.NextBytes(_iv);
        _rawKey = Key.Create(Aead);
        _cluster = Identity.Generate();
        _gateway = Identity.Generate();
        var credential = GatewayCredential.Issue(_cluster, "bench", _gateway.PublicKey, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var client = new ClientHandshake(Identity.Generate(), "bench", pinnedClusterKey: _cluster.PublicKey);
        using var gateway = new GatewayHandshake(_gateway, credential);
        _client = client.OnWelcome(gateway.OnHello(client.Hello).Value!).Value!;
        _gatewaySession = gateway.OnConfirm(_client.Confirm).Value!;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _gatewaySession.Dispose();
        _rawKey.Dispose();
        _cluster.Dispose();
        _gateway.Dispose();
    }

    [Benchmark(Baseline = true, Description = "raw NSec seal+open")]
    public bool RawNSec()
    {
        var pn = _rawPacketNumber++;
        Span<byte> nonce = stackalloc byte[12];
        _iv.CopyTo(nonce);
        nonce[8] ^= (byte)(pn >> 24);
        nonce[9] ^= (byte)(pn >> 16);
        nonce[10] ^= (byte)(pn >> 8);
        nonce[11] ^= (byte)pn;
        var aad = _datagram.AsSpan(0, MediaDatagram.PrefixSize);
        var ciphertext = _datagram.AsSpan(MediaDatagram.PrefixSize, PayloadSize + 16);
        Aead.Encrypt(_rawKey, nonce, aad, _payload, ciphertext);
        return Aead.Decrypt(_rawKey, nonce, aad, ciphertext, _plaintext.AsSpan(0, PayloadSize));
    }

    [Benchmark(Description = "Wzp.Protocol seal+open")]
    public bool Protocol()
    {
        var n = MediaDatagram.Seal(_client.Keys, 0, _header, _payload, _datagram);
        return MediaDatagram.Open(_gatewaySession.Keys, _datagram.AsSpan(0, n), _plaintext, out _, out _) == DropReason.None;
    }
}
