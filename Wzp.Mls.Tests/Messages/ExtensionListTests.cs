using Wzp.Mls.Codec;
using Wzp.Mls.Messages;
using Wzp.Mls.Tests.Support;

namespace Wzp.Mls.Tests.Messages;

public sealed class ExtensionListTests
{
    [Fact]
    public void GroupInfoExtensions_InVectors_ParseAsTheirTypes()
    {
        var parsed = 0;
        foreach (var v in Vectors.Load("messages"))
        {
            var groupInfo = Tls.Decode<MlsMessage>(v.Hex("mls_group_info")).GroupInfo!;
            Assert.False(groupInfo.Extensions.HasDuplicateTypes());
            if (groupInfo.Extensions.TryGet<RatchetTree>(ExtensionTypes.RatchetTree, out var tree))
            {
                Assert.NotEmpty(tree.Nodes);
                parsed++;
            }
            if (groupInfo.Extensions.TryGet<ExternalPubExtension>(ExtensionTypes.ExternalPub, out var pub))
            {
                Assert.NotEmpty(pub.ExternalPub);
                parsed++;
            }
        }
        Assert.True(parsed > 0, "no GroupInfo in messages.json carries ratchet_tree or external_pub");
    }

    [Fact]
    public void TryGet_AbsentMalformedAndDuplicate_AreDistinguished()
    {
        Extension[] list = [new(ExtensionTypes.ExternalPub, [0x02, 1, 2]), new(ExtensionTypes.ApplicationId, [0x05])];
        Assert.True(list.TryGet<ExternalPubExtension>(ExtensionTypes.ExternalPub, out var pub));
        Assert.Equal(new byte[] { 1, 2 }, pub.ExternalPub);
        Assert.False(list.TryGet<RatchetTree>(ExtensionTypes.RatchetTree, out _));
        Assert.Throws<MlsDecodeException>(() => list.TryGet<ApplicationIdExtension>(ExtensionTypes.ApplicationId, out _));
        Assert.False(list.HasDuplicateTypes());
        Assert.True(((Extension[])[.. list, new(ExtensionTypes.ExternalPub, [0])]).HasDuplicateTypes());
    }

    [Fact]
    public void Lifetime_Contains_IsInclusive()
    {
        var lifetime = new Lifetime(100, 200);
        Assert.True(lifetime.Contains(DateTimeOffset.FromUnixTimeSeconds(100)));
        Assert.True(lifetime.Contains(DateTimeOffset.FromUnixTimeSeconds(200)));
        Assert.False(lifetime.Contains(DateTimeOffset.FromUnixTimeSeconds(201)));
        Assert.False(lifetime.Contains(DateTimeOffset.FromUnixTimeSeconds(99)));
    }
}
