using System.Security.Cryptography;
using System.Text;
using CsCheck;
using Wzp.Mls.SFrame;

namespace Wzp.Mls.Tests;

/// <summary>RFC 9605 §5.2: SFrame keyed by an MLS group's exporter, one base key per epoch, KIDs by sender and epoch.</summary>
public sealed class SFrameMlsTests
{
    private const SFrameCipherSuite Suite = SFrameCipherSuite.Aes128GcmSha256_128;

    public static TheoryData<SFrameCipherSuite> Suites => new(Enum.GetValues<SFrameCipherSuite>());

    // §5.2 Figure 9 (E = 4, S = 6).
    [Theory]
    [InlineData(14UL, 3U, 0UL, 0x3eUL)]
    [InlineData(14UL, 7U, 0UL, 0x7eUL)]
    [InlineData(14UL, 20U, 0UL, 0x14eUL)]
    [InlineData(15UL, 3U, 0UL, 0x3fUL)]
    [InlineData(15UL, 5U, 0UL, 0x5fUL)]
    [InlineData(16UL, 2U, 2UL, 0x820UL)]
    [InlineData(16UL, 2U, 3UL, 0xc20UL)]
    [InlineData(17UL, 33U, 0UL, 0x211UL)]
    [InlineData(17UL, 51U, 0UL, 0x331UL)]
    public void KeyId_Figure9_ComposesAndDecomposes(ulong epoch, uint index, ulong context, ulong expected)
    {
        Assert.Equal(6, SFrameMlsKeyId.SenderBits(64));
        Assert.Equal(expected, SFrameMlsKeyId.Compose(context, index, epoch, senderBits: 6, epochBits: 4));
        SFrameMlsKeyId.Decompose(expected, 6, 4, out var c, out var i, out var e);
        Assert.Equal((context, index, epoch % 16), (c, i, e));
    }

    [Theory]
    [InlineData(1U, 0)]
    [InlineData(2U, 1)]
    [InlineData(3U, 2)]
    [InlineData(4U, 2)]
    [InlineData(5U, 3)]
    [InlineData(1000U, 10)]
    [InlineData(1024U, 10)]
    [InlineData(1025U, 11)]
    [InlineData(uint.MaxValue, 32)]
    public void SenderBits_IsSmallestSWithLeafCountAtMostTwoToTheS(uint leafCount, int expected) =>
        Assert.Equal(expected, SFrameMlsKeyId.SenderBits(leafCount));

    [Fact]
    public void KeyId_FullWidth_ComposesWithoutShiftWrap()
    {
        // S + E = 64: C# would shift by 0 for << 64; no context bits remain.
        var kid = SFrameMlsKeyId.Compose(0, uint.MaxValue, ulong.MaxValue, 32, 32);
        Assert.Equal(ulong.MaxValue, kid);
        SFrameMlsKeyId.Decompose(kid, 32, 32, out var context, out var index, out var epoch);
        Assert.Equal((0UL, uint.MaxValue, (ulong)uint.MaxValue), (context, index, epoch));
        Assert.Throws<ArgumentOutOfRangeException>(() => SFrameMlsKeyId.Compose(1, 0, 0, 32, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => SFrameMlsKeyId.Compose(0, 4, 0, 2, 4));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void AddEpoch_ExportsBaseKeyWithRfcLabelEmptyContextAndNk(SFrameCipherSuite suite)
    {
        var exporter = new FakeExporter(1);
        using var context = new SFrameMlsContext(suite, epochBits: 4);
        context.AddEpoch(1, exporter, leafCount: 2, ownLeafIndex: 0);
        var call = Assert.Single(exporter.Calls);
        Assert.Equal("SFrame 1.0 Base Key", Encoding.ASCII.GetString(call.Label));
        Assert.Empty(call.Context);
        Assert.Equal(suite.KeySize(), call.Length);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Frame_OfMlsSender_OpensInPlainContextWithRfcKid(SFrameCipherSuite suite)
    {
        // The MLS layer is only KID assignment and base_key export: a plain SFrameContext given the exported
        // base_key under the §5.2 KID opens its frames.
        var exporter = new FakeExporter(42);
        using var member = new SFrameMlsContext(suite, epochBits: 3);
        member.AddEpoch(42, exporter, leafCount: 6, ownLeafIndex: 5);
        var frame = Seal(member, [9], [1, 2, 3], context: 2);

        var kid = SFrameMlsKeyId.Compose(2, 5, 42, SFrameMlsKeyId.SenderBits(6), 3);
        Assert.Equal(kid, SFrameHeader.Read(frame, out _).KeyId);
        using var plain = new SFrameContext(suite);
        plain.AddReceiveKey(kid, exporter.BaseKey(suite.KeySize()));
        var opened = new byte[frame.Length];
        Assert.Equal(SFrameError.None, plain.Open([9], frame, opened, out var written, out _));
        Assert.Equal(new byte[] { 1, 2, 3 }, opened[..written]);
    }

    [Fact]
    public void TwoSendersAndReceiver_AcrossEpochChange_RetiredEpochRefused()
    {
        const int e = 2;
        using var alice = new SFrameMlsContext(Suite, e);
        using var bob = new SFrameMlsContext(Suite, e);
        using var carol = new SFrameMlsContext(Suite, e);
        var epoch7 = new FakeExporter(7);
        alice.AddEpoch(7, epoch7, leafCount: 3, ownLeafIndex: 0);
        bob.AddEpoch(7, epoch7, leafCount: 3, ownLeafIndex: 1);
        carol.AddEpoch(7, epoch7, leafCount: 3, ownLeafIndex: 2);

        var fromAlice = Seal(alice, [], "alice 7"u8.ToArray());
        var fromBob = Seal(bob, [], "bob 7"u8.ToArray());
        var lateFromBob = Seal(bob, [], "bob 7 late"u8.ToArray());
        var laterFromBob = Seal(bob, [], "bob 7 later"u8.ToArray());
        // Both senders start at CTR 0 under their own KIDs: distinct keys, so no nonce is shared.
        Assert.Equal(new SFrameHeader(SFrameMlsKeyId.Compose(0, 0, 7, 2, e), 0), SFrameHeader.Read(fromAlice, out _));
        Assert.Equal(new SFrameHeader(SFrameMlsKeyId.Compose(0, 1, 7, 2, e), 0), SFrameHeader.Read(fromBob, out _));

        Assert.Equal(("alice 7", new SFrameMlsSender(7, 0, 0)), Open(carol, fromAlice));
        Assert.Equal(("bob 7", new SFrameMlsSender(7, 1, 0)), Open(carol, fromBob));
        Assert.Equal(("bob 7", new SFrameMlsSender(7, 1, 0)), Open(alice, fromBob));
        Assert.Equal(("alice 7", new SFrameMlsSender(7, 0, 0)), Open(bob, fromAlice));
        Assert.Equal(SFrameError.SenderIsSelf, TryOpen(alice, fromAlice));
        Assert.Equal(SFrameError.Replay, TryOpen(carol, fromBob));

        // A commit adds two members: epoch 8 has 5 leaves, so S grows from 2 to 3 bits.
        var epoch8 = new FakeExporter(8);
        alice.AddEpoch(8, epoch8, leafCount: 5, ownLeafIndex: 0);
        bob.AddEpoch(8, epoch8, leafCount: 5, ownLeafIndex: 1);
        carol.AddEpoch(8, epoch8, leafCount: 5, ownLeafIndex: 2);
        Assert.Equal(8UL, alice.SendEpoch);

        var fromAlice8 = Seal(alice, [], "alice 8"u8.ToArray());
        var fromBob8 = Seal(bob, [], "bob 8"u8.ToArray());
        Assert.Equal(new SFrameHeader(SFrameMlsKeyId.Compose(0, 1, 8, 3, e), 0), SFrameHeader.Read(fromBob8, out _));
        Assert.Equal(("alice 8", new SFrameMlsSender(8, 0, 0)), Open(carol, fromAlice8));
        Assert.Equal(("bob 8", new SFrameMlsSender(8, 1, 0)), Open(carol, fromBob8));
        // Until it is retired, the old epoch still opens frames that were in flight across the change.
        Assert.Equal(("bob 7 late", new SFrameMlsSender(7, 1, 0)), Open(carol, lateFromBob));

        carol.RetireEpochsBefore(8);
        Assert.Equal(SFrameError.UnknownEpoch, TryOpen(carol, laterFromBob));
        Assert.Equal(SFrameError.UnknownEpoch, TryOpen(carol, fromAlice));
        Assert.Equal(("bob 8", new SFrameMlsSender(8, 1, 0)), Open(alice, fromBob8));
    }

    [Fact]
    public void AddEpoch_WithSameLowBits_RemovesOldEpoch()
    {
        using var sender = new SFrameMlsContext(Suite, epochBits: 1);
        using var receiver = new SFrameMlsContext(Suite, epochBits: 1);
        var frames = new Dictionary<ulong, byte[]>();
        foreach (var epoch in new ulong[] { 4, 5 })
        {
            var exporter = new FakeExporter(epoch);
            sender.AddEpoch(epoch, exporter, 2, 0);
            receiver.AddEpoch(epoch, exporter, 2, 1);
            frames[epoch] = Seal(sender, [], [(byte)epoch]);
        }
        var exporter6 = new FakeExporter(6);
        receiver.AddEpoch(6, exporter6, 2, 1);
        // 6 and 4 share their low bit: §5.2 says the receiver MUST drop epoch 4. Its frames now name epoch 6's
        // slot and fail there; epoch 4's keys are gone.
        Assert.False(receiver.RetireEpoch(4));
        Assert.Equal(SFrameError.Authentication, TryOpen(receiver, frames[4]));
        Assert.Equal(new SFrameMlsSender(5, 0, 0), Open(receiver, frames[5]).Sender);
    }

    [Fact]
    public void AddEpoch_FixedSenderBits_AreUsedInKids()
    {
        var exporter = new FakeExporter(3);
        using var alice = new SFrameMlsContext(Suite, epochBits: 4);
        using var bob = new SFrameMlsContext(Suite, epochBits: 4);
        alice.AddEpoch(3, exporter, leafCount: 3, ownLeafIndex: 1, senderBits: 8);
        bob.AddEpoch(3, exporter, leafCount: 3, ownLeafIndex: 2, senderBits: 8);
        var frame = Seal(alice, [], [1], context: 1);
        Assert.Equal(SFrameMlsKeyId.Compose(1, 1, 3, 8, 4), SFrameHeader.Read(frame, out _).KeyId);
        Assert.Equal(new SFrameMlsSender(3, 1, 1), Open(bob, frame).Sender);
        Assert.Throws<ArgumentOutOfRangeException>(() => alice.AddEpoch(4, exporter, leafCount: 3, ownLeafIndex: 1, senderBits: 1));
    }

    [Fact]
    public void AddEpoch_NotAfterNewest_Throws()
    {
        using var context = new SFrameMlsContext(Suite, epochBits: 4);
        context.AddEpoch(3, new FakeExporter(3), 2, 0);
        Assert.Throws<InvalidOperationException>(() => context.AddEpoch(3, new FakeExporter(3), 2, 0));
        Assert.Throws<InvalidOperationException>(() => context.AddEpoch(2, new FakeExporter(2), 2, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => context.AddEpoch(4, new FakeExporter(4), 2, 2));
        Assert.Throws<ArgumentException>(() => context.AddEpoch(4, new byte[17], 2, 0));
    }

    [Fact]
    public void Seal_AfterSendEpochRetired_IsUnknownEpoch()
    {
        using var context = new SFrameMlsContext(Suite, epochBits: 4);
        Assert.Equal(SFrameError.UnknownEpoch, context.Seal([], [1], new byte[64], out _));
        context.AddEpoch(3, new FakeExporter(3), 2, 0);
        Assert.True(context.RetireEpoch(3));
        Assert.False(context.RetireEpoch(3));
        Assert.Null(context.SendEpoch);
        Assert.Equal(SFrameError.UnknownEpoch, context.Seal([], [1], new byte[64], out _));
    }

    [Fact]
    public void Open_SenderIndexBeyondLeaves_IsUnknownKeyId()
    {
        var exporter = new FakeExporter(1);
        // Index 3 fits S = 2 bits but a 3-leaf group has no leaf 3.
        var kid = SFrameMlsKeyId.Compose(0, 3, 1, 2, 4);
        using var forger = new SFrameContext(Suite);
        forger.AddSendKey(kid, exporter.BaseKey(Suite.KeySize()));
        var frame = new byte[64];
        forger.Seal(kid, [], [1], frame, out var n);
        using var receiver = new SFrameMlsContext(Suite, 4);
        receiver.AddEpoch(1, exporter, 3, 0);
        Assert.Equal(SFrameError.UnknownKeyId, TryOpen(receiver, frame[..n]));
    }

    [Fact]
    public void Contexts_OfOneSender_HaveOwnKidsAndCounters()
    {
        var exporter = new FakeExporter(1);
        using var alice = new SFrameMlsContext(Suite, 4);
        using var bob = new SFrameMlsContext(Suite, 4);
        alice.AddEpoch(1, exporter, 2, 0);
        bob.AddEpoch(1, exporter, 2, 1);
        var audio = Seal(alice, [], [1], context: 0);
        var video = Seal(alice, [], [2], context: 1);
        Assert.Equal(0UL, SFrameHeader.Read(video, out _).Counter);
        Assert.Equal(new SFrameMlsSender(1, 0, 0), Open(bob, audio).Sender);
        Assert.Equal(new SFrameMlsSender(1, 0, 1), Open(bob, video).Sender);
    }

    [Fact]
    public void Open_ArbitraryBytes_NeverThrows()
    {
        using var context = new SFrameMlsContext(SFrameCipherSuite.Aes128CtrHmacSha256_32, 2);
        context.AddEpoch(1, new FakeExporter(1), 4, 0);
        context.AddEpoch(2, new FakeExporter(2), 4, 0);
        Gen.Byte.Array[0, 48].Sample(bytes =>
        {
            var error = context.Open([], bytes, new byte[bytes.Length], out var written, out _);
            Assert.NotEqual(SFrameError.None, error);
            Assert.Equal(0, written);
        }, iter: 5_000);
    }

    [Fact]
    public async Task SealAndOpen_WhileEpochsChangeOnAnotherThread_NeverThrow()
    {
        using var alice = new SFrameMlsContext(Suite, epochBits: 2);
        using var bob = new SFrameMlsContext(Suite, epochBits: 2);
        alice.AddEpoch(0, new FakeExporter(0), 2, 0);
        bob.AddEpoch(0, new FakeExporter(0), 2, 1);
        using var stop = new CancellationTokenSource();
        var media = Task.Run(() =>
        {
            var frame = new byte[64];
            var opened = new byte[64];
            var errors = new HashSet<SFrameError>();
            // Until stopped, and at least until one frame went through (both end at the same epoch).
            while (!stop.IsCancellationRequested || !errors.Contains(SFrameError.None))
            {
                var error = alice.Seal([], [1, 2, 3], frame, out var n);
                if (error == SFrameError.None) error = bob.Open([], frame.AsSpan(0, n), opened, out _, out _);
                errors.Add(error);
            }
            return errors;
        });
        for (ulong epoch = 1; epoch <= 200; epoch++)
        {
            var exporter = new FakeExporter(epoch);
            // Bob installs first, as a receiver should; Alice may still seal under the previous epoch meanwhile.
            bob.AddEpoch(epoch, exporter, 2, 1);
            alice.AddEpoch(epoch, exporter, 2, 0);
            if (epoch % 3 == 0) bob.RetireEpochsBefore(epoch - 1);
        }
        stop.Cancel();
        var seen = await media;
        Assert.Contains(SFrameError.None, seen);
        Assert.Subset(new HashSet<SFrameError> { SFrameError.None, SFrameError.UnknownEpoch, SFrameError.Authentication }, seen);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void SealAndOpen_AfterWarmUp_AllocateNothing(SFrameCipherSuite suite)
    {
        var exporter = new FakeExporter(5);
        using var alice = new SFrameMlsContext(suite, 4);
        using var bob = new SFrameMlsContext(suite, 4);
        alice.AddEpoch(5, exporter, 100, 17);
        bob.AddEpoch(5, exporter, 100, 40);
        var plaintext = RandomNumberGenerator.GetBytes(160);
        var frame = new byte[SFrameContext.MaxSealedSize(suite, plaintext.Length)];
        var opened = new byte[frame.Length];

        void Round()
        {
            if (alice.Seal([], plaintext, frame, out var n) != SFrameError.None) throw new InvalidOperationException("seal");
            if (bob.Open([], frame.AsSpan(0, n), opened, out _, out _) != SFrameError.None) throw new InvalidOperationException("open");
        }

        for (var i = 0; i < 100; i++) Round();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 2_000; i++) Round();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private static byte[] Seal(SFrameMlsContext member, byte[] metadata, byte[] plaintext, ulong context = 0)
    {
        var buffer = new byte[SFrameContext.MaxSealedSize(member.CipherSuite, plaintext.Length)];
        Assert.Equal(SFrameError.None, member.Seal(metadata, plaintext, buffer, out var written, context));
        return buffer[..written];
    }

    private static (string Text, SFrameMlsSender Sender) Open(SFrameMlsContext member, byte[] frame)
    {
        var buffer = new byte[frame.Length];
        Assert.Equal(SFrameError.None, member.Open([], frame, buffer, out var written, out var sender));
        return (Encoding.ASCII.GetString(buffer, 0, written), sender);
    }

    private static SFrameError TryOpen(SFrameMlsContext member, byte[] frame) =>
        member.Open([], frame, new byte[frame.Length], out _, out _);

    /// <summary>A deterministic stand-in for one epoch's MLS exporter: HKDF-Expand of a per-epoch secret.</summary>
    private sealed class FakeExporter(ulong epoch) : IMlsExporter
    {
        private readonly byte[] _secret = SHA256.HashData(Encoding.ASCII.GetBytes($"fake exporter secret of epoch {epoch}"));

        public List<(byte[] Label, byte[] Context, int Length)> Calls { get; } = [];

        public void Export(ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, Span<byte> output)
        {
            Calls.Add((label.ToArray(), context.ToArray(), output.Length));
            HKDF.Expand(HashAlgorithmName.SHA256, _secret, output, [.. label, 0, .. context]);
        }

        public byte[] BaseKey(int length)
        {
            var key = new byte[length];
            Export(SFrameMlsContext.BaseKeyLabel, [], key);
            return key;
        }
    }
}
