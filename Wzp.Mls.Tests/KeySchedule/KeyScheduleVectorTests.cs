using System.Text;
using System.Text.Json;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.KeySchedule;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.KeySchedule;

/// <summary>secret-tree.json, key-schedule.json, psk_secret.json and transcript-hashes.json, every case.</summary>
public sealed class KeyScheduleVectorTests
{
    [Fact]
    public void SecretTree_EveryVectorCase_MatchesSenderDataAndEveryLeafGeneration()
    {
        foreach (var v in Vectors.Load("secret-tree"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var senderData = v.GetProperty("sender_data");
            var (key, nonce) = SenderDataSecrets.Derive(suite, senderData.Hex("sender_data_secret"), senderData.Hex("ciphertext"));
            Vectors.Equal(senderData.Hex("key"), key, "sender data key");
            Vectors.Equal(senderData.Hex("nonce"), nonce, "sender data nonce");

            var leaves = v.GetProperty("leaves");
            using var tree = new SecretTree(suite, v.Hex("encryption_secret"), (uint)leaves.GetArrayLength());
            for (uint leaf = 0; leaf < leaves.GetArrayLength(); leaf++)
            {
                foreach (var generation in leaves[(int)leaf].EnumerateArray())
                {
                    var g = generation.GetProperty("generation").GetUInt32();
                    Assert.True(tree.TryGet(leaf, RatchetKind.Handshake, g, out var handshake), $"handshake {leaf}/{g}");
                    Vectors.Equal(generation.Hex("handshake_key"), handshake.Key, $"handshake key {leaf}/{g}");
                    Vectors.Equal(generation.Hex("handshake_nonce"), handshake.Nonce, $"handshake nonce {leaf}/{g}");
                    Assert.True(tree.TryGet(leaf, RatchetKind.Application, g, out var application), $"application {leaf}/{g}");
                    Vectors.Equal(generation.Hex("application_key"), application.Key, $"application key {leaf}/{g}");
                    Vectors.Equal(generation.Hex("application_nonce"), application.Nonce, $"application nonce {leaf}/{g}");
                }
            }
        }
    }

    [Fact]
    public void SecretTree_ConsumedGeneration_IsNotHandedOutTwice()
    {
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        using var tree = new SecretTree(suite, new byte[32], 4);
        Assert.True(tree.TryGet(1, RatchetKind.Application, 3, out _));
        Assert.False(tree.TryGet(1, RatchetKind.Application, 3, out _));
        Assert.True(tree.TryGet(1, RatchetKind.Application, 1, out var skipped));
        Assert.Equal(1u, skipped.Generation);
        Assert.False(tree.TryGet(1, RatchetKind.Application, 5000, out _));
        Assert.Equal(4u, tree.Next(1, RatchetKind.Application).Generation);
    }

    [Fact]
    public void KeySchedule_EveryVectorCase_MatchesEveryEpochSecret()
    {
        foreach (var v in Vectors.Load("key-schedule"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var groupId = v.Hex("group_id");
            var initSecret = v.Hex("initial_init_secret");
            ulong epoch = 0;
            foreach (var e in v.GetProperty("epochs").EnumerateArray())
            {
                var context = new GroupContext(ProtocolVersion.Mls10, suite.Id, groupId, epoch, e.Hex("tree_hash"), e.Hex("confirmed_transcript_hash"), []);
                var encodedContext = Tls.Encode(context);
                Vectors.Equal(e.Hex("group_context"), encodedContext, $"group_context {epoch}");

                using var secrets = EpochSecrets.FromInitSecret(suite, initSecret, e.Hex("commit_secret"), e.Hex("psk_secret"), encodedContext);
                Vectors.Equal(e.Hex("joiner_secret"), secrets.JoinerSecret, $"joiner_secret {epoch}");
                Vectors.Equal(e.Hex("welcome_secret"), secrets.WelcomeSecret, $"welcome_secret {epoch}");
                Vectors.Equal(e.Hex("welcome_secret"), EpochSecrets.DeriveWelcomeSecret(suite, secrets.JoinerSecret, e.Hex("psk_secret")), $"welcome_secret from joiner {epoch}");
                Vectors.Equal(e.Hex("init_secret"), secrets.InitSecret, $"init_secret {epoch}");
                Vectors.Equal(e.Hex("sender_data_secret"), secrets.SenderDataSecret, $"sender_data_secret {epoch}");
                Vectors.Equal(e.Hex("encryption_secret"), secrets.EncryptionSecret, $"encryption_secret {epoch}");
                Vectors.Equal(e.Hex("exporter_secret"), secrets.ExporterSecret, $"exporter_secret {epoch}");
                Vectors.Equal(e.Hex("epoch_authenticator"), secrets.EpochAuthenticator, $"epoch_authenticator {epoch}");
                Vectors.Equal(e.Hex("external_secret"), secrets.ExternalSecret, $"external_secret {epoch}");
                Vectors.Equal(e.Hex("confirmation_key"), secrets.ConfirmationKey, $"confirmation_key {epoch}");
                Vectors.Equal(e.Hex("membership_key"), secrets.MembershipKey, $"membership_key {epoch}");
                Vectors.Equal(e.Hex("resumption_psk"), secrets.ResumptionPsk, $"resumption_psk {epoch}");
                Vectors.Equal(e.Hex("external_pub"), secrets.ExternalPublicKey(), $"external_pub {epoch}");

                // The exporter label is a string in the vector format; the generator's random labels merely look like hex.
                var exporter = e.GetProperty("exporter");
                Vectors.Equal(exporter.Hex("secret"), secrets.Export(Encoding.ASCII.GetBytes(exporter.GetProperty("label").GetString()!), exporter.Hex("context"), exporter.GetProperty("length").GetInt32()), $"exporter {epoch}");

                using var joined = EpochSecrets.FromJoinerSecret(suite, secrets.JoinerSecret, e.Hex("psk_secret"), encodedContext);
                Vectors.Equal(e.Hex("epoch_authenticator"), joined.EpochAuthenticator, $"epoch_authenticator via joiner {epoch}");

                initSecret = secrets.InitSecret.ToArray();
                epoch++;
            }
        }
    }

    [Fact]
    public void PskSecret_EveryVectorCase_Matches()
    {
        foreach (var v in Vectors.Load("psk_secret"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var psks = v.GetProperty("psks").EnumerateArray()
                .Select(p => new PskInput(PreSharedKeyId.External(p.Hex("psk_id"), p.Hex("psk_nonce")), p.Hex("psk")))
                .ToList();
            Vectors.Equal(v.Hex("psk_secret"), PskSecret.Compute(suite, psks), $"psk_secret of {psks.Count} PSKs");
        }
    }

    [Fact]
    public void TranscriptHashes_EveryVectorCase_MatchConfirmedInterimAndTag()
    {
        foreach (var v in Vectors.Load("transcript-hashes"))
        {
            var suite = CipherSuite.Get(v.Suite());
            var content = Tls.Decode<AuthenticatedContent>(v.Hex("authenticated_content"));
            Assert.Equal(ContentType.Commit, content.Content.ContentType);
            var confirmed = TranscriptHash.Confirmed(suite, v.Hex("interim_transcript_hash_before"), content);
            Vectors.Equal(v.Hex("confirmed_transcript_hash_after"), confirmed, "confirmed_transcript_hash_after");
            Vectors.Equal(content.Auth.ConfirmationTag!, TranscriptHash.ConfirmationTag(suite, v.Hex("confirmation_key"), confirmed), "confirmation_tag");
            Assert.True(suite.VerifyMac(v.Hex("confirmation_key"), confirmed, content.Auth.ConfirmationTag));
            Vectors.Equal(v.Hex("interim_transcript_hash_after"), TranscriptHash.Interim(suite, confirmed, content.Auth.ConfirmationTag!), "interim_transcript_hash_after");
        }
    }
}
