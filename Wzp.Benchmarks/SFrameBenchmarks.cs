using System.Buffers.Binary;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Wzp.Mls.SFrame;

namespace Wzp.Benchmarks;

/// <summary>
/// Sealing and opening one 160-byte media frame through SFrame (RFC 9605) with AES_128_GCM_SHA256_128, the KID
/// lookup, header, nonce and replay window included, against raw .NET AES-128-GCM over the same bytes (a nonce
/// per frame, the same AAD length as the SFrame header) in the same run; once through the plain KID key store
/// and once through the MLS key management (KID from leaf index and epoch). Goal (issue 15): ratio ≤ 1.2 and
/// nothing allocated per frame.
/// </summary>
[MemoryDiagnoser]
public class SFrameBenchmarks
{
    private const int PayloadSize = 160;
    private const SFrameCipherSuite Suite = SFrameCipherSuite.Aes128GcmSha256_128;
    private const ulong KeyId = 7;

    private readonly byte[] _payload = new byte[PayloadSize];
    private readonly byte[] _frame = new byte[SFrameContext.MaxSealedSize(Suite, PayloadSize)];
    private readonly byte[] _plaintext = new byte[SFrameContext.MaxSealedSize(Suite, PayloadSize)];
    private readonly byte[] _salt = new byte[12];
    private AesGcm _raw = null!;
    private ulong _rawCounter;
    private SFrameContext _sender = null!;
    private SFrameContext _receiver = null!;
    private SFrameMlsContext _alice = null!;
    private SFrameMlsContext _bob = null!;

    [GlobalSetup]
    public void Setup()
    {
        Random.Shared.NextBytes(_payload);
        Random.Shared.NextBytes(_salt);
        _raw = new AesGcm(RandomNumberGenerator.GetBytes(16), 16);
        var baseKey = RandomNumberGenerator.GetBytes(16);
        _sender = new SFrameContext(Suite);
        _sender.AddSendKey(KeyId, baseKey);
        _receiver = new SFrameContext(Suite);
        _receiver.AddReceiveKey(KeyId, baseKey);
        _alice = new SFrameMlsContext(Suite, epochBits: 4);
        _bob = new SFrameMlsContext(Suite, epochBits: 4);
        _alice.AddEpoch(1, baseKey, leafCount: 100, ownLeafIndex: 3);
        _bob.AddEpoch(1, baseKey, leafCount: 100, ownLeafIndex: 4);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _raw.Dispose();
        _sender.Dispose();
        _receiver.Dispose();
        _alice.Dispose();
        _bob.Dispose();
    }

    [Benchmark(Baseline = true, Description = "raw AES-128-GCM seal+open")]
    public bool RawAesGcm()
    {
        var counter = _rawCounter++;
        Span<byte> nonce = stackalloc byte[12];
        _salt.CopyTo(nonce);
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], BinaryPrimitives.ReadUInt64BigEndian(nonce[4..]) ^ counter);
        // An SFrame header of this KID and a CTR in the millions is 4 bytes: the same AAD length.
        var aad = _frame.AsSpan(0, 4);
        var ciphertext = _frame.AsSpan(4, PayloadSize);
        var tag = _frame.AsSpan(4 + PayloadSize, 16);
        _raw.Encrypt(nonce, _payload, ciphertext, tag, aad);
        _raw.Decrypt(nonce, ciphertext, tag, _plaintext.AsSpan(0, PayloadSize), aad);
        return true;
    }

    [Benchmark(Description = "SFrame seal+open (KID store)")]
    public bool SFrame()
    {
        _sender.Seal(KeyId, [], _payload, _frame, out var n);
        return _receiver.Open([], _frame.AsSpan(0, n), _plaintext, out _, out _) == SFrameError.None;
    }

    [Benchmark(Description = "SFrame seal+open (MLS keys)")]
    public bool SFrameMls()
    {
        _alice.Seal([], _payload, _frame, out var n);
        return _bob.Open([], _frame.AsSpan(0, n), _plaintext, out _, out _) == SFrameError.None;
    }
}
