using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Framing;

/// <summary>The framing checks of RFC 9420 §6 beyond the vectors, each refused with the error naming it; both suites.</summary>
public sealed class MessageProtectionRulesTests
{
    public static TheoryData<ushort> Suites => [0x0001, 0x0003];

    private sealed class Fixture
    {
        public Fixture(ushort suiteId)
        {
            Suite = CipherSuite.Get(suiteId);
            (SignaturePrivate, SignaturePublic) = Suite.GenerateSignatureKeyPair();
            Context = new GroupContext(ProtocolVersion.Mls10, suiteId, Guid.NewGuid().ToByteArray(), 7, new byte[32], new byte[32], []);
            MembershipKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            EncryptionSecret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
            SenderDataSecret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        }

        public CipherSuite Suite { get; }

        public byte[] SignaturePrivate { get; }

        public byte[] SignaturePublic { get; }

        public GroupContext Context { get; }

        public byte[] MembershipKey { get; }

        public byte[] EncryptionSecret { get; }

        public byte[] SenderDataSecret { get; }

        public FramedContent Content(Sender sender, MessageBody body, ulong? epoch = null)
            => new(Context.GroupId, epoch ?? Context.Epoch, sender, "ad"u8.ToArray(), body);

        public byte[]? Key(FramedContent content) => SignaturePublic;

        public byte[]? Key(uint leaf) => leaf == 2 ? SignaturePublic : null;

        public SecretTree Tree() => new(Suite, EncryptionSecret, 4);
    }

    private static readonly MessageBody Remove = MessageBody.Of(new RemoveProposal(3));

    [Theory]
    [MemberData(nameof(Suites))]
    public void PublicMessage_FromExternalSender_VerifiesWithoutMembershipTag(ushort suite)
    {
        var f = new Fixture(suite);
        var message = MessageProtection.ProtectPublic(f.Suite, f.Content(Sender.External(0), Remove), f.Context, f.SignaturePrivate, f.MembershipKey);
        Assert.Null(message.MembershipTag);
        var parsed = Tls.Decode<PublicMessage>(Tls.Encode(message));
        Assert.True(MessageProtection.TryUnprotectPublic(f.Suite, parsed, f.Context, f.MembershipKey, f.Key, out var result, out var error), error.ToString());
        Assert.Equal(SenderType.External, result.Content.Sender.Type);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PublicMessage_ApplicationFromExternalSender_IsSenderNotAllowed(ushort suite)
    {
        var f = new Fixture(suite);
        var content = f.Content(Sender.External(0), MessageBody.Application([1, 2, 3]));
        var auth = new FramedContentAuthData(MessageProtection.Sign(f.Suite, content, WireFormat.PublicMessage, f.Context, f.SignaturePrivate), null);
        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, new PublicMessage(content, auth, null), f.Context, f.MembershipKey, f.Key, out _, out var error));
        Assert.Equal(UnprotectError.SenderNotAllowed, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PublicMessage_NewMemberCommit_SignsOverGroupContext(ushort suite)
    {
        var f = new Fixture(suite);
        var commit = MessageBody.Of(new Commit([ProposalOrRef.ByValue(new ExternalInitProposal(new byte[32]))], null));
        var message = MessageProtection.ProtectPublic(f.Suite, f.Content(Sender.NewMemberCommit, commit), f.Context, f.SignaturePrivate, f.MembershipKey, new byte[32]);
        Assert.True(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context, f.MembershipKey, f.Key, out _, out var error), error.ToString());
        var otherContext = f.Context with { TreeHash = new byte[] { 1 } };
        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, message, otherContext, f.MembershipKey, f.Key, out _, out error));
        Assert.Equal(UnprotectError.BadSignature, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PublicMessage_WrongEpochGroupOrSigner_IsRefusedWithItsReason(ushort suite)
    {
        var f = new Fixture(suite);
        var message = MessageProtection.ProtectPublic(f.Suite, f.Content(Sender.Member(2), Remove), f.Context, f.SignaturePrivate, f.MembershipKey);
        Assert.True(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context, f.MembershipKey, f.Key, out _, out _));

        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context with { Epoch = 8 }, f.MembershipKey, f.Key, out _, out var error));
        Assert.Equal(UnprotectError.WrongEpoch, error);
        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context with { GroupId = [9] }, f.MembershipKey, f.Key, out _, out error));
        Assert.Equal(UnprotectError.WrongGroup, error);
        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context, f.MembershipKey, _ => null, out _, out error));
        Assert.Equal(UnprotectError.UnknownSender, error);
        var (_, otherKey) = f.Suite.GenerateSignatureKeyPair();
        Assert.False(MessageProtection.TryUnprotectPublic(f.Suite, message, f.Context, f.MembershipKey, _ => otherKey, out _, out error));
        Assert.Equal(UnprotectError.BadSignature, error);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PrivateMessage_TamperedSenderDataOrContent_IsRefusedWithItsReason(ushort suite)
    {
        var f = new Fixture(suite);
        using var sender = f.Tree();
        var message = MessageProtection.ProtectPrivate(f.Suite, f.Content(Sender.Member(2), MessageBody.Application("hello"u8.ToArray())), f.Context, f.SignaturePrivate, sender, f.SenderDataSecret, paddingLength: 3);

        var badSenderData = message.EncryptedSenderData.ToArray();
        badSenderData[0] ^= 1;
        using (var receiver = f.Tree())
        {
            Assert.False(MessageProtection.TryUnprotectPrivate(f.Suite, message with { EncryptedSenderData = badSenderData }, f.Context, receiver, f.SenderDataSecret, f.Key, out _, out var error));
            Assert.Equal(UnprotectError.SenderDataUndecryptable, error);
        }

        // Changing the ciphertext changes the sender-data key too (it is derived from a ciphertext sample), so a
        // flipped bit past the sample is what reaches the content AEAD.
        var badCiphertext = message.Ciphertext.ToArray();
        badCiphertext[^1] ^= 1;
        using (var receiver = f.Tree())
        {
            Assert.False(MessageProtection.TryUnprotectPrivate(f.Suite, message with { Ciphertext = badCiphertext }, f.Context, receiver, f.SenderDataSecret, f.Key, out _, out var error));
            Assert.Equal(UnprotectError.ContentUndecryptable, error);
        }

        using (var receiver = f.Tree())
        {
            Assert.False(MessageProtection.TryUnprotectPrivate(f.Suite, message with { AuthenticatedData = [0] }, f.Context, receiver, f.SenderDataSecret, f.Key, out _, out var error));
            Assert.Equal(UnprotectError.ContentUndecryptable, error);
        }

        using (var receiver = f.Tree())
        {
            Assert.True(MessageProtection.TryUnprotectPrivate(f.Suite, message, f.Context, receiver, f.SenderDataSecret, f.Key, out var result, out var error), error.ToString());
            Assert.Equal("hello"u8.ToArray(), result.Content.Body.ApplicationData);
            Assert.Equal("ad"u8.ToArray(), result.Content.AuthenticatedData);
        }
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PrivateMessage_OutOfOrderWithinWindow_OpensOnceEach(ushort suite)
    {
        var f = new Fixture(suite);
        using var sender = f.Tree();
        using var receiver = f.Tree();
        var messages = Enumerable.Range(0, 5)
            .Select(i => MessageProtection.ProtectPrivate(f.Suite, f.Content(Sender.Member(2), MessageBody.Application([(byte)i])), f.Context, f.SignaturePrivate, sender, f.SenderDataSecret))
            .ToArray();
        foreach (var i in new[] { 4, 0, 2, 1, 3 })
        {
            Assert.True(MessageProtection.TryUnprotectPrivate(f.Suite, messages[i], f.Context, receiver, f.SenderDataSecret, f.Key, out var result, out var error), $"{i}: {error}");
            Assert.Equal(new[] { (byte)i }, result.Content.Body.ApplicationData);
        }
        Assert.False(MessageProtection.TryUnprotectPrivate(f.Suite, messages[2], f.Context, receiver, f.SenderDataSecret, f.Key, out _, out var replay));
        Assert.Equal(UnprotectError.GenerationUnavailable, replay);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void PrivateMessageContent_NonZeroPadding_IsDecodeError(ushort suite)
    {
        var f = new Fixture(suite);
        var plaintext = new PrivateMessageContent(MessageBody.Application([1]), new FramedContentAuthData(new byte[f.Suite.SignatureLength], null), 4).Encode();
        plaintext[^2] = 1;
        Assert.Throws<MlsDecodeException>(() => PrivateMessageContent.Decode(plaintext, ContentType.Application));
    }
}
