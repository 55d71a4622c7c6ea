using CsCheck;
using Wzp.Mls.Codec;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Codec;

/// <summary>
/// Every decoder, fed arbitrary bytes, either succeeds or throws <see cref="MlsDecodeException"/>; and whatever it
/// accepts re-encodes to exactly the input, since MLS encodings are canonical (signatures and hashes are computed
/// over re-encodings, so a decoder that accepted two encodings of one value would be a bug).
/// </summary>
public sealed class DecoderPropertyTests
{
    private delegate ITlsEncodable? Decoder(ReadOnlySpan<byte> data);

    private static readonly (string Name, Decoder Decode)[] Decoders =
    [
        ("MLSMessage", d => Tls.Decode<MlsMessage>(d)),
        ("KeyPackage", d => Tls.Decode<KeyPackage>(d)),
        ("LeafNode", d => Tls.Decode<LeafNode>(d)),
        ("Node", d => Tls.Decode<Node>(d)),
        ("RatchetTree", d => Tls.Decode<RatchetTree>(d)),
        ("Welcome", d => Tls.Decode<Welcome>(d)),
        ("GroupInfo", d => Tls.Decode<GroupInfo>(d)),
        ("GroupContext", d => Tls.Decode<GroupContext>(d)),
        ("GroupSecrets", d => Tls.Decode<GroupSecrets>(d)),
        ("EncryptedGroupSecrets", d => Tls.Decode<EncryptedGroupSecrets>(d)),
        ("Commit", d => Tls.Decode<Commit>(d)),
        ("Proposal", d => Tls.Decode<Proposal>(d)),
        ("ProposalOrRef", d => Tls.Decode<ProposalOrRef>(d)),
        ("PreSharedKeyID", d => Tls.Decode<PreSharedKeyId>(d)),
        ("UpdatePath", d => Tls.Decode<UpdatePath>(d)),
        ("PublicMessage", d => Tls.Decode<PublicMessage>(d)),
        ("PrivateMessage", d => Tls.Decode<PrivateMessage>(d)),
        ("AuthenticatedContent", d => Tls.Decode<AuthenticatedContent>(d)),
        ("FramedContent", d => Tls.Decode<FramedContent>(d)),
        ("Sender", d => Tls.Decode<Sender>(d)),
        ("SenderData", d => Tls.Decode<SenderData>(d)),
        ("Credential", d => Tls.Decode<Credential>(d)),
        ("Capabilities", d => Tls.Decode<Capabilities>(d)),
        ("Lifetime", d => Tls.Decode<Lifetime>(d)),
        ("Extension", d => Tls.Decode<Extension>(d)),
        ("HPKECiphertext", d => Tls.Decode<HpkeCiphertext>(d)),
        ("ExternalSenders", d => Tls.Decode<ExternalSendersExtension>(d)),
        ("RequiredCapabilities", d => Tls.Decode<RequiredCapabilitiesExtension>(d)),
        ("ExternalPub", d => Tls.Decode<ExternalPubExtension>(d)),
        ("ApplicationId", d => Tls.Decode<ApplicationIdExtension>(d)),
        ("PrivateMessageContent(commit)", d => { PrivateMessageContent.Decode(d, ContentType.Commit); return null; }),
        ("PrivateMessageContent(proposal)", d => { PrivateMessageContent.Decode(d, ContentType.Proposal); return null; }),
        ("PrivateMessageContent(application)", d => { PrivateMessageContent.Decode(d, ContentType.Application); return null; }),
    ];

    private static readonly byte[][] Seeds = LoadSeeds();

    [Fact]
    public void ArbitraryBytes_EveryDecoder_ThrowsOnlyDecodeErrorAndAcceptsOnlyCanonical()
    {
        Gen.Byte.Array[0, 300].Sample(bytes =>
        {
            foreach (var (name, decode) in Decoders) Check(name, decode, bytes);
        }, iter: 3000);
    }

    [Fact]
    public void MutatedVectorMessages_EveryDecoder_ThrowsOnlyDecodeErrorAndAcceptsOnlyCanonical()
    {
        // Random bytes rarely get past the first length prefix; mutations of real messages reach the deep decoders.
        var gen = Gen.Select(Gen.Int[0, Seeds.Length - 1], Gen.Int[0, 1_000_000], Gen.Byte, Gen.Int[0, 3]);
        gen.Sample((seedIndex, position, value, kind) =>
        {
            var seed = Seeds[seedIndex];
            var at = position % Math.Max(seed.Length, 1);
            var bytes = kind switch
            {
                0 => Mutate(seed, at, value),
                1 => seed[..at],
                2 => [.. seed[..at], value, .. seed[at..]],
                _ => [.. seed[..at], .. seed[Math.Min(seed.Length, at + 1 + (value % 8))..]],
            };
            foreach (var (name, decode) in Decoders) Check(name, decode, bytes);
        }, iter: 3000);
    }

    private static void Check(string name, Decoder decode, byte[] bytes)
    {
        ITlsEncodable? value;
        try
        {
            value = decode(bytes);
        }
        catch (MlsDecodeException)
        {
            return;
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"{name} threw {e.GetType().Name} on {Convert.ToHexStringLower(bytes)}", e);
        }
        if (value is not null)
        {
            var encoded = Tls.Encode(value);
            if (!encoded.AsSpan().SequenceEqual(bytes))
                throw new InvalidOperationException($"{name} accepted a non-canonical encoding {Convert.ToHexStringLower(bytes)}");
        }
    }

    private static byte[] Mutate(byte[] seed, int at, byte value)
    {
        var copy = seed.ToArray();
        if (copy.Length > 0) copy[at] = value;
        return copy;
    }

    private static byte[][] LoadSeeds()
    {
        var seeds = new List<byte[]>();
        foreach (var v in Vectors.Load("messages").Take(20))
            foreach (var property in v.EnumerateObject())
                seeds.Add(Convert.FromHexString(property.Value.GetString()!));
        return [.. seeds];
    }
}
