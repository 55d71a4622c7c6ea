using System.Text.Json;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Framing;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Framing;

/// <summary>
/// message-protection.json, following test-vectors.md: a two-member group, leaf 1 sending; for proposal, commit and
/// application, the vector's PublicMessage (where one exists) and PrivateMessage unprotect to the raw value, and
/// our own protection of the raw value unprotects again.
/// </summary>
public sealed class MessageProtectionTests
{
    private const uint SenderLeaf = 1;

    [Fact]
    public void MessageProtection_EveryVectorCase_UnprotectsVectorsAndRoundTripsOwnProtection()
    {
        foreach (var v in Vectors.Load("message-protection"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var context = new GroupContext(ProtocolVersion.Mls10, suite.Id, v.Hex("group_id"), v.GetProperty("epoch").GetUInt64(), v.Hex("tree_hash"), v.Hex("confirmed_transcript_hash"), []);
            var signaturePub = v.Hex("signature_pub");
            Func<uint, byte[]?> keys = leaf => leaf == SenderLeaf ? signaturePub : null;
            Func<FramedContent, byte[]?> publicKeys = content => content.Sender.Type == SenderType.Member ? keys(content.Sender.Index) : null;

            var proposal = Tls.Decode<Proposal>(v.Hex("proposal"));
            var commit = Tls.Decode<Commit>(v.Hex("commit"));
            CheckPublic(suite, v, context, publicKeys, "proposal_pub", MessageBody.Of(proposal), v.Hex("proposal"));
            CheckPublic(suite, v, context, publicKeys, "commit_pub", MessageBody.Of(commit), v.Hex("commit"));
            CheckPrivate(suite, v, context, keys, "proposal_priv", MessageBody.Of(proposal), v.Hex("proposal"));
            CheckPrivate(suite, v, context, keys, "commit_priv", MessageBody.Of(commit), v.Hex("commit"));
            CheckPrivate(suite, v, context, keys, "application_priv", MessageBody.Application(v.Hex("application")), v.Hex("application"));

            var application = Content(context, MessageBody.Application(v.Hex("application")));
            Assert.Throws<InvalidOperationException>(() => MessageProtection.ProtectPublic(suite, application, context, v.Hex("signature_priv"), v.Hex("membership_key")));
        }
    }

    private static void CheckPublic(CipherSuite suite, JsonElement v, GroupContext context, Func<FramedContent, byte[]?> keys, string field, MessageBody body, byte[] raw)
    {
        var message = Tls.Decode<MlsMessage>(v.Hex(field)).PublicMessage!;
        Assert.True(MessageProtection.TryUnprotectPublic(suite, message, context, v.Hex("membership_key"), keys, out var result, out var error), $"{field}: {error}");
        Vectors.Equal(raw, BodyBytes(result.Content.Body), field);

        var tag = message.Auth.ConfirmationTag;
        var ours = MessageProtection.ProtectPublic(suite, Content(context, body), context, v.Hex("signature_priv"), v.Hex("membership_key"), tag);
        var reparsed = Tls.Decode<MlsMessage>(Tls.Encode(MlsMessage.Of(ours))).PublicMessage!;
        Assert.True(MessageProtection.TryUnprotectPublic(suite, reparsed, context, v.Hex("membership_key"), keys, out var again, out error), $"{field} (ours): {error}");
        Vectors.Equal(raw, BodyBytes(again.Content.Body), field + " (ours)");

        var wrongKey = v.Hex("membership_key");
        wrongKey[0] ^= 1;
        Assert.False(MessageProtection.TryUnprotectPublic(suite, reparsed, context, wrongKey, keys, out _, out error));
        Assert.Equal(UnprotectError.BadMembershipTag, error);
    }

    private static void CheckPrivate(CipherSuite suite, JsonElement v, GroupContext context, Func<uint, byte[]?> keys, string field, MessageBody body, byte[] raw)
    {
        var message = Tls.Decode<MlsMessage>(v.Hex(field)).PrivateMessage!;
        using (var tree = new SecretTree(suite, v.Hex("encryption_secret"), 2))
        {
            Assert.True(MessageProtection.TryUnprotectPrivate(suite, message, context, tree, v.Hex("sender_data_secret"), keys, out var result, out var error), $"{field}: {error}");
            Assert.Equal(SenderLeaf, result.Content.Sender.Index);
            Vectors.Equal(raw, BodyBytes(result.Content.Body), field);
            // The key of that generation is consumed: a replay of the same message does not decrypt.
            Assert.False(MessageProtection.TryUnprotectPrivate(suite, message, context, tree, v.Hex("sender_data_secret"), keys, out _, out error));
            Assert.Equal(UnprotectError.GenerationUnavailable, error);
        }

        using var senderTree = new SecretTree(suite, v.Hex("encryption_secret"), 2);
        using var receiverTree = new SecretTree(suite, v.Hex("encryption_secret"), 2);
        var tag = message.ContentType == ContentType.Commit ? new byte[suite.HashLength] : null;
        var ours = MessageProtection.ProtectPrivate(suite, Content(context, body), context, v.Hex("signature_priv"), senderTree, v.Hex("sender_data_secret"), tag, paddingLength: 7);
        var reparsed = Tls.Decode<MlsMessage>(Tls.Encode(MlsMessage.Of(ours))).PrivateMessage!;
        Assert.True(MessageProtection.TryUnprotectPrivate(suite, reparsed, context, receiverTree, v.Hex("sender_data_secret"), keys, out var mine, out var e2), $"{field} (ours): {e2}");
        Vectors.Equal(raw, BodyBytes(mine.Content.Body), field + " (ours)");
    }

    private static FramedContent Content(GroupContext context, MessageBody body)
        => new(context.GroupId, context.Epoch, Sender.Member(SenderLeaf), [], body);

    private static byte[] BodyBytes(MessageBody body)
    {
        if (body.ApplicationData is not null) return body.ApplicationData;
        return body.Proposal is not null ? Tls.Encode(body.Proposal) : Tls.Encode(body.Commit!);
    }
}
