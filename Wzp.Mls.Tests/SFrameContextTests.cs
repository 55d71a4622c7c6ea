using System.Security.Cryptography;
using CsCheck;
using Wzp.Mls.SFrame;

namespace Wzp.Mls.Tests;

public sealed class SFrameContextTests
{
    public static TheoryData<SFrameCipherSuite> Suites => new(Enum.GetValues<SFrameCipherSuite>());

    [Theory]
    [MemberData(nameof(Suites))]
    public void SealThenOpen_EverySuite_RoundTripsWithCountingCtr(SFrameCipherSuite suite)
    {
        using var pair = Pair(suite, kid: 300);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        foreach (var length in new[] { 0, 1, 15, 16, 17, 160, 511, 512, 513, 1200, 5000 })
        {
            var plaintext = RandomNumberGenerator.GetBytes(length);
            var metadata = RandomNumberGenerator.GetBytes(length % 7);
            var frame = Seal(sender, 300, metadata, plaintext);
            var opened = new byte[frame.Length];
            Assert.Equal(SFrameError.None, receiver.Open(metadata, frame, opened, out var written, out var header));
            Assert.Equal(plaintext, opened[..written]);
            Assert.Equal(300UL, header.KeyId);
        }
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Open_ReplayedFrame_IsRefused(SFrameCipherSuite suite)
    {
        using var pair = Pair(suite, kid: 1);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        var frames = Enumerable.Range(0, 5).Select(_ => Seal(sender, 1, [], [1, 2, 3])).ToArray();
        var buffer = new byte[64];
        // Reordered inside the window: each once.
        foreach (var i in new[] { 3, 0, 4, 1, 2 }) Assert.Equal(SFrameError.None, receiver.Open([], frames[i], buffer, out _, out _));
        foreach (var frame in frames) Assert.Equal(SFrameError.Replay, receiver.Open([], frame, buffer, out _, out _));
    }

    [Fact]
    public void Open_FrameOlderThanWindow_IsRefused()
    {
        using var pair = Pair(SFrameCipherSuite.Aes128GcmSha256_128, kid: 9, window: 64);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        var old = Seal(sender, 9, [], [7]);
        for (var i = 0; i < 64; i++) Seal(sender, 9, [], [7]);
        var recent = Seal(sender, 9, [], [7]); // CTR 65: the window now starts at 2
        var buffer = new byte[64];
        Assert.Equal(SFrameError.None, receiver.Open([], recent, buffer, out _, out _));
        Assert.Equal(SFrameError.Replay, receiver.Open([], old, buffer, out _, out _));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Open_AnyBitFlipped_IsRefusedAndWindowUnmoved(SFrameCipherSuite suite)
    {
        using var pair = Pair(suite, kid: 77);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        byte[] metadata = [1, 2, 3, 4];
        var frame = Seal(sender, 77, metadata, RandomNumberGenerator.GetBytes(40));
        var buffer = new byte[frame.Length];
        for (var bit = 0; bit < frame.Length * 8; bit++)
        {
            var forged = frame.ToArray();
            forged[bit / 8] ^= (byte)(1 << (bit % 8));
            var error = receiver.Open(metadata, forged, buffer, out var written, out _);
            Assert.NotEqual(SFrameError.None, error);
            Assert.Equal(0, written);
        }
        // No forgery moved the replay window: the genuine frame still opens, once.
        Assert.Equal(SFrameError.None, receiver.Open(metadata, frame, buffer, out _, out _));
        Assert.Equal(SFrameError.Replay, receiver.Open(metadata, frame, buffer, out _, out _));
    }

    [Fact]
    public void Open_UnknownOrSendOnlyKid_IsUnknownKeyId()
    {
        using var context = new SFrameContext(SFrameCipherSuite.Aes128GcmSha256_128);
        var baseKey = RandomNumberGenerator.GetBytes(16);
        context.AddSendKey(5, baseKey);
        var frame = Seal(context, 5, [], [1]);
        var buffer = new byte[frame.Length];
        // A send key never decrypts (RFC 9605 §4.4.1), even its own frames.
        Assert.Equal(SFrameError.UnknownKeyId, context.Open([], frame, buffer, out _, out _));
        Assert.Equal(SFrameError.UnknownKeyId, context.Seal(6, [], [1], buffer, out _));
        Assert.Throws<InvalidOperationException>(() => context.AddReceiveKey(5, baseKey));
        Assert.Throws<InvalidOperationException>(() => context.AddSendKey(5, baseKey));
        Assert.True(context.RemoveKey(5));
        Assert.False(context.RemoveKey(5));
        Assert.Equal(SFrameError.UnknownKeyId, context.Seal(5, [], [1], buffer, out _));
    }

    [Fact]
    public void Open_HeaderWithoutRoomForTag_IsTruncatedCiphertext()
    {
        using var pair = Pair(SFrameCipherSuite.Aes128CtrHmacSha256_32, kid: 1);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        var frame = Seal(sender, 1, [], []);
        Assert.Equal(1 + 4, frame.Length);
        Assert.Equal(SFrameError.TruncatedCiphertext, receiver.Open([], frame.AsSpan(0, 4), new byte[8], out _, out _));
        Assert.Equal(SFrameError.None, receiver.Open([], frame, new byte[8], out var written, out _));
        Assert.Equal(0, written);
    }

    [Fact]
    public void Seal_LastCounterUsed_RefusesThereafter()
    {
        using var context = new SFrameContext(SFrameCipherSuite.Aes128GcmSha256_128);
        context.AddSendKey(1, RandomNumberGenerator.GetBytes(16), firstCounter: ulong.MaxValue);
        var buffer = new byte[64];
        Assert.Equal(SFrameError.None, context.Seal(1, [], [1], buffer, out _));
        Assert.Equal(SFrameError.CounterExhausted, context.Seal(1, [], [1], buffer, out var written));
        Assert.Equal(0, written);
    }

    [Fact]
    public void Seal_ShortOrOverlappingDestination_Throws()
    {
        using var context = new SFrameContext(SFrameCipherSuite.Aes128GcmSha256_128);
        context.AddSendKey(1, RandomNumberGenerator.GetBytes(16));
        var buffer = new byte[64];
        Assert.Throws<ArgumentException>(() => context.Seal(1, [], new byte[10], new byte[26], out _));
        Assert.Throws<ArgumentException>(() => context.Seal(1, [], buffer.AsSpan(0, 10), buffer.AsSpan(5), out _));
        // Neither failure spent a CTR.
        Assert.Equal(SFrameError.None, context.Seal(1, [], new byte[10], buffer, out _));
        Assert.Equal(0x10, buffer[0]);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Open_ArbitraryBytes_NeverThrows(SFrameCipherSuite suite)
    {
        using var context = new SFrameContext(suite);
        for (ulong kid = 0; kid < 10; kid++) context.AddReceiveKey(kid, RandomNumberGenerator.GetBytes(16));
        Gen.Byte.Array[0, 64].Sample(bytes =>
        {
            var error = context.Open([], bytes, new byte[bytes.Length], out var written, out _);
            Assert.NotEqual(SFrameError.None, error); // a forgery of even a 4-byte tag is 2^-32 per try
            Assert.Equal(0, written);
        }, iter: 5_000);
    }

    [Fact]
    public void ReplayWindow_RandomCounters_AcceptsExactlyNewOnesInsideWindow()
    {
        const int size = 128;
        Gen.ULong[0, 600].Array[1, 200].Sample(counters =>
        {
            var window = new SFrameReplayWindow(size);
            var seen = new HashSet<ulong>();
            ulong? highest = null;
            foreach (var ctr in counters)
            {
                var expected = !seen.Contains(ctr) && (highest is null || ctr > highest || highest - ctr < size);
                Assert.Equal(expected, window.Check(ctr));
                if (!expected) continue;
                window.Accept(ctr);
                seen.Add(ctr);
                if (highest is null || ctr > highest) highest = ctr;
            }
        }, iter: 2_000);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void SealAndOpen_AfterWarmUp_AllocateNothing(SFrameCipherSuite suite)
    {
        using var pair = Pair(suite, kid: 1234);
        var (sender, receiver) = (pair.Sender, pair.Receiver);
        var plaintext = RandomNumberGenerator.GetBytes(160);
        var metadata = RandomNumberGenerator.GetBytes(12);
        var frame = new byte[SFrameContext.MaxSealedSize(suite, plaintext.Length)];
        var opened = new byte[frame.Length];

        void Round()
        {
            if (sender.Seal(1234, metadata, plaintext, frame, out var n) != SFrameError.None) throw new InvalidOperationException("seal");
            if (receiver.Open(metadata, frame.AsSpan(0, n), opened, out _, out _) != SFrameError.None) throw new InvalidOperationException("open");
        }

        for (var i = 0; i < 100; i++) Round();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 2_000; i++) Round();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    internal static ContextPair Pair(SFrameCipherSuite suite, ulong kid, int window = SFrameContext.DefaultReplayWindow)
    {
        var baseKey = RandomNumberGenerator.GetBytes(32);
        var sender = new SFrameContext(suite, window);
        sender.AddSendKey(kid, baseKey);
        var receiver = new SFrameContext(suite, window);
        receiver.AddReceiveKey(kid, baseKey);
        return new ContextPair(sender, receiver);
    }

    internal sealed record ContextPair(SFrameContext Sender, SFrameContext Receiver) : IDisposable
    {
        public void Dispose()
        {
            Sender.Dispose();
            Receiver.Dispose();
        }
    }

    private static byte[] Seal(SFrameContext context, ulong kid, byte[] metadata, byte[] plaintext)
    {
        var buffer = new byte[SFrameContext.MaxSealedSize(context.CipherSuite, plaintext.Length)];
        Assert.Equal(SFrameError.None, context.Seal(kid, metadata, plaintext, buffer, out var written));
        return buffer[..written];
    }
}
