using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Wzp.Mls.Codec;
using Wzp.Mls.Crypto;
using Wzp.Mls.Group;
using Wzp.Mls.Messages;

namespace Wzp.Mls.Tests.Interop;

/// <summary>
/// Wzp.Mls against ts-mls 1.6.4, an independent RFC 9420 implementation (issue 15: "an independent implementation
/// must be able to join and process groups it creates"). Each test runs one ts-mls peer process and checks, after
/// every epoch, that every member on both sides has the same epoch, epoch_authenticator, tree hash and MLS-Exporter
/// value, and that application messages (PrivateMessage) open in both directions.
/// </summary>
[Collection(Name)]
public sealed class TsMlsInteropTests
{
    public const string Name = "ts-mls interop";

    public static TheoryData<ushort, bool> SuitesAndTreeDelivery => new()
    {
        { 0x0001, true }, { 0x0001, false }, { 0x0003, true }, { 0x0003, false },
    };

    public static TheoryData<ushort> Suites => new() { 0x0001, 0x0003 };

    [Theory]
    [MemberData(nameof(SuitesAndTreeDelivery))]
    public void WzpGroup_TsMlsJoinsAndProcessesAddsUpdatesRemoves_EveryEpochAgrees(ushort suiteId, bool treeInWelcome)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        var alice = run.CreateWzp("alice", new MlsGroupOptions { RatchetTreeInWelcome = treeInWelcome });
        run.CheckAgreement();

        // ts-mls joins from alice's Welcome (tree inside, or out of band as ts-mls allows).
        run.AddTs(alice, "ts-1", treeOutOfBand: !treeInWelcome);
        run.ExchangeApplicationMessages();

        // Two more Wzp members in one commit; bob sends its handshakes as PrivateMessage.
        run.AddWzp(alice, ["bob", "carol"], new MlsGroupOptions { EncryptHandshake = true }, treeOutOfBand: !treeInWelcome);
        run.ExchangeApplicationMessages();

        // An Update proposal by bob, committed by reference by alice (path required).
        var bob = run.Wzp["bob"];
        run.DeliverProposal(bob, bob.ProposeUpdate());
        run.CommitWzp(alice, new CommitOptions());
        run.ExchangeApplicationMessages();

        // Empty commits (full path) from a PublicMessage and a PrivateMessage sender.
        run.CommitWzp(run.Wzp["carol"], new CommitOptions());
        run.CommitWzp(bob, new CommitOptions());
        run.ExchangeApplicationMessages();

        // An add with a path, so ts-mls decrypts a path secret in the Welcome.
        run.AddTs(alice, "ts-2", treeOutOfBand: !treeInWelcome, includePath: true);
        run.ExchangeApplicationMessages();

        // ts-mls commits into the Wzp-created group: an empty commit (full path) and a removal.
        run.CommitTs("ts-1", []);
        run.CommitTs("ts-2", [Remove(run.Wzp["carol"].OwnLeafIndex)]);
        run.ExchangeApplicationMessages();

        // Wzp removes by value: one Wzp member, then one ts-mls member, which must see itself removed.
        run.CommitWzp(alice, new CommitOptions { Proposals = [new RemoveProposal(bob.OwnLeafIndex)] });
        run.RemoveTs(alice, "ts-2");
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(SuitesAndTreeDelivery))]
    public void TsMlsGroup_WzpJoinsAndProcessesCommits_EveryEpochAgrees(ushort suiteId, bool treeInWelcome)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        run.CreateTs("ts-owner");
        run.CheckAgreement();

        run.AddWzpByTs("ts-owner", ["alice"], treeInWelcome);
        run.ExchangeApplicationMessages();

        run.AddWzpByTs("ts-owner", ["bob", "carol"], treeInWelcome);
        run.ExchangeApplicationMessages();

        // Wzp commits in the ts-mls group: an empty commit, an update by reference, a removal, an add of ts-mls.
        var alice = run.Wzp["alice"];
        run.CommitWzp(alice, new CommitOptions());
        var carol = run.Wzp["carol"];
        run.DeliverProposal(carol, carol.ProposeUpdate());
        run.CommitWzp(alice, new CommitOptions());
        run.CommitWzp(run.Wzp["bob"], new CommitOptions { Proposals = [new RemoveProposal(carol.OwnLeafIndex)] });
        run.AddTs(alice, "ts-joiner", treeOutOfBand: !treeInWelcome);
        run.ExchangeApplicationMessages();

        // ts-mls removes a Wzp member; the removed member must know.
        run.CommitTs("ts-owner", [Remove(run.Wzp["bob"].OwnLeafIndex)]);
        run.ExchangeApplicationMessages();
        run.CommitTs("ts-joiner", []);
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalCommits_EachSideJoinsTheOthersGroup_EveryEpochAgrees(ushort suiteId)
    {
        var suite = CipherSuite.Get(suiteId);

        // A Wzp client joins a ts-mls group by external commit from its GroupInfo.
        using (var run = new Run(suite))
        {
            run.CreateTs("ts-owner");
            run.AddWzpByTs("ts-owner", ["alice"], treeInWelcome: true);
            var groupInfo = TsMlsPeer.Message(run.Peer.Call("groupInfo", new JsonObject { ["name"] = "ts-owner" })["groupInfo"]).GroupInfo!;
            var (signature, _) = suite.GenerateSignatureKeyPair();
            var (joiner, commit) = MlsGroup.JoinByExternalCommit(groupInfo, Credential.Basic("wzp-external"u8.ToArray()), signature);
            run.Join("wzp-external", joiner, commit);
            run.ExchangeApplicationMessages();
            run.CommitWzp(joiner, new CommitOptions());
            run.CommitTs("ts-owner", []);
            run.ExchangeApplicationMessages();
        }

        // ts-mls joins a Wzp group by external commit from a Wzp member's GroupInfo.
        using (var run = new Run(suite))
        {
            var alice = run.CreateWzp("alice");
            run.AddWzp(alice, ["bob"]);
            var groupInfo = run.Wzp["bob"].CreateGroupInfo();
            var reply = run.Peer.Call("externalJoin", new JsonObject
            {
                ["name"] = "ts-external",
                ["suite"] = suite.Id,
                ["groupInfo"] = TsMlsPeer.Hex(MlsMessage.Of(groupInfo)),
            });
            run.Ts.Add("ts-external");
            run.DeliverFromTs("ts-external", TsMlsPeer.Message(reply["commit"]));
            run.CheckAgreement();
            run.ExchangeApplicationMessages();
            run.CommitWzp(alice, new CommitOptions());
            run.CommitTs("ts-external", []);
            run.ExchangeApplicationMessages();
        }
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void TsMlsProposals_CommittedByWzp_EveryEpochAgrees(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        var alice = run.CreateWzp("alice");
        run.AddTs(alice, "ts-1", treeOutOfBand: false);
        run.AddWzp(alice, ["bob"]);

        // ts-mls proposes adding a Wzp client (a standalone Add proposal, PublicMessage); alice commits it by reference.
        var carol = run.NewBundle("carol");
        var proposal = TsMlsPeer.Message(run.Peer.Call("propose", new JsonObject
        {
            ["name"] = "ts-1",
            ["proposal"] = new JsonObject { ["type"] = "add", ["keyPackage"] = TsMlsPeer.Hex(MlsMessage.Of(carol.KeyPackage)) },
        })["message"]);
        run.DeliverProposalFromTs("ts-1", proposal);
        var output = run.CommitWzp(alice, new CommitOptions());
        run.JoinFromWelcome("carol", carol, output, outOfBandTree: null);
        run.ExchangeApplicationMessages();

        // ts-mls proposes removing bob, as a PrivateMessage this time; carol commits it.
        var removal = TsMlsPeer.Message(run.Peer.Call("propose", new JsonObject
        {
            ["name"] = "ts-1",
            ["publicMessage"] = false,
            ["proposal"] = Remove(run.Wzp["bob"].OwnLeafIndex),
        })["message"]);
        Assert.Equal(WireFormat.PrivateMessage, removal.WireFormat);
        run.DeliverProposalFromTs("ts-1", removal);
        run.CommitWzp(run.Wzp["carol"], new CommitOptions());
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void WzpProposals_CommittedByTsMls_EveryEpochAgrees(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        run.CreateTs("ts-owner");
        run.AddWzpByTs("ts-owner", ["alice", "bob", "carol"], treeInWelcome: true);

        // An Update from alice and a Remove of carol from bob, both by reference in ts-mls's next commit.
        var alice = run.Wzp["alice"];
        run.DeliverProposal(alice, alice.ProposeUpdate());
        var bob = run.Wzp["bob"];
        run.DeliverProposal(bob, bob.ProposeRemove(run.Wzp["carol"].OwnLeafIndex));
        run.CommitTs("ts-owner", []);
        Assert.False(run.Wzp.ContainsKey("carol"));
        run.ExchangeApplicationMessages();

        // An Add from bob: ts-mls commits it and the new Wzp member joins from ts-mls's Welcome.
        var dave = run.NewBundle("dave");
        run.DeliverProposal(bob, bob.ProposeAdd(dave.KeyPackage));
        run.CommitTsWithWelcome("ts-owner", "dave", dave);
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void TsMlsNewMemberProposal_CommittedByWzp_JoinerAgrees(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        var alice = run.CreateWzp("alice");
        run.AddWzp(alice, ["bob"]);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);

        // A ts-mls client outside the group proposes its own Add (sender new_member_proposal) from a GroupInfo.
        var proposal = TsMlsPeer.Message(run.Peer.Call("newMemberProposal", new JsonObject
        {
            ["name"] = "ts-new",
            ["suite"] = run.Suite.Id,
            ["groupInfo"] = TsMlsPeer.Hex(MlsMessage.Of(run.Wzp["bob"].CreateGroupInfo())),
        })["message"]);
        Assert.Equal(SenderType.NewMemberProposal, proposal.PublicMessage!.Content.Sender.Type);
        run.DeliverProposalFromTs(sender: null, proposal);
        var output = run.CommitWzp(alice, new CommitOptions());
        run.Peer.Call("join", new JsonObject { ["name"] = "ts-new", ["welcome"] = TsMlsPeer.Hex(output.Welcome!) });
        run.Ts.Add("ts-new");
        run.CheckAgreement();
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ReInit_CommittedByWzp_TsMlsFollowsIntoTheNewGroup(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        var alice = run.CreateWzp("alice");
        run.AddWzp(alice, ["bob"]);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);
        var newSuite = CipherSuite.Get(suiteId == 0x0001 ? (ushort)0x0003 : (ushort)0x0001);
        var newGroupId = Encoding.ASCII.GetBytes($"reinit-{Guid.NewGuid()}");

        run.CommitWzp(alice, new CommitOptions { Proposals = [new ReInitProposal(newGroupId, ProtocolVersion.Mls10, newSuite.Id, [])] });
        Assert.Equal("suspendedPendingReinit", run.Peer.Call("state", new JsonObject { ["name"] = "ts-1" })["status"]!.GetValue<string>());
        Assert.NotNull(run.Wzp["bob"].PendingReInit);

        var tsKeyPackage = TsMlsPeer.Message(run.Peer.Call("keyPackage", new JsonObject { ["name"] = "ts-1-new", ["suite"] = newSuite.Id })["keyPackage"]);
        using var bobNewBundle = KeyPackageBundle.Create(newSuite, Credential.Basic("bob"u8.ToArray()), newSuite.GenerateSignatureKeyPair().PrivateKey);
        var (newAlice, output) = alice.CreateReInitGroup([tsKeyPackage.KeyPackage!, bobNewBundle.KeyPackage]);
        var newBob = MlsGroup.JoinReInit(output.Welcome!.Welcome!, bobNewBundle, run.Wzp["bob"]);
        run.Peer.Call("reinitJoin", new JsonObject { ["name"] = "ts-1", ["newName"] = "ts-1-new", ["welcome"] = TsMlsPeer.Hex(output.Welcome!) });

        run.MoveTo(newSuite, new Dictionary<string, MlsGroup> { ["alice"] = newAlice, ["bob"] = newBob }, ["ts-1-new"]);
        run.CheckAgreement();
        Assert.Equal(1ul, newAlice.Epoch);
        run.ExchangeApplicationMessages();
        run.CommitTs("ts-1-new", []);
        run.CommitWzp(newBob, new CommitOptions());
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ReInit_CommittedByTsMls_WzpFollowsIntoTheNewGroup(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        run.CreateTs("ts-owner");
        run.AddWzpByTs("ts-owner", ["alice", "bob"], treeInWelcome: true);
        var newSuite = CipherSuite.Get(suiteId == 0x0001 ? (ushort)0x0003 : (ushort)0x0001);
        var newGroupId = Encoding.ASCII.GetBytes($"reinit-{Guid.NewGuid()}");

        var reply = run.Peer.Call("reinit", new JsonObject { ["name"] = "ts-owner", ["groupId"] = TsMlsPeer.Hex(newGroupId), ["suite"] = newSuite.Id });
        Assert.Equal("suspendedPendingReinit", reply["status"]!.GetValue<string>());
        run.DeliverFromTs("ts-owner", TsMlsPeer.Message(reply["commit"]));
        run.CheckAgreement();
        foreach (var member in run.Wzp.Values) Assert.Equal(newSuite.Id, member.PendingReInit!.CipherSuite);

        var bundles = new[] { "alice", "bob" }.ToDictionary(n => n, n => KeyPackageBundle.Create(newSuite, Credential.Basic(Encoding.ASCII.GetBytes(n)), newSuite.GenerateSignatureKeyPair().PrivateKey));
        var created = run.Peer.Call("reinitCreate", new JsonObject
        {
            ["name"] = "ts-owner",
            ["newName"] = "ts-owner-new",
            ["groupId"] = TsMlsPeer.Hex(newGroupId),
            ["suite"] = newSuite.Id,
            ["keyPackages"] = new JsonArray(bundles.Values.Select(b => (JsonNode)TsMlsPeer.Hex(MlsMessage.Of(b.KeyPackage))).ToArray()),
        });
        var welcome = TsMlsPeer.Message(created["welcome"]).Welcome!;
        var tree = Tls.Decode<RatchetTree>(TsMlsPeer.Bytes(created["ratchetTree"]));
        var joined = bundles.ToDictionary(b => b.Key, b => MlsGroup.JoinReInit(welcome, b.Value, run.Wzp[b.Key], tree));
        foreach (var bundle in bundles.Values) bundle.Dispose();

        run.MoveTo(newSuite, joined, ["ts-owner-new"]);
        run.CheckAgreement();
        run.ExchangeApplicationMessages();
        run.CommitWzp(joined["alice"], new CommitOptions());
        run.CommitTs("ts-owner-new", []);
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void ExternalPsks_ProposedByEitherSide_EveryEpochAgrees(ushort suiteId)
    {
        var pskId = "interop-psk"u8.ToArray();
        var secret = RandomNumberGenerator.GetBytes(32);
        var options = new MlsGroupOptions { ExternalPsks = new Dictionary<string, byte[]> { [MlsGroupOptions.PskKey(pskId)] = secret } };
        using var run = new Run(CipherSuite.Get(suiteId));
        run.Peer.Call("addPsk", new JsonObject { ["pskId"] = TsMlsPeer.Hex(pskId), ["secret"] = TsMlsPeer.Hex(secret) });
        var alice = run.CreateWzp("alice", options);
        run.AddWzp(alice, ["bob"], options);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);

        // A Wzp member proposes the PSK, another commits it; ts-mls must mix in the same secret.
        var bob = run.Wzp["bob"];
        run.DeliverProposal(bob, bob.ProposeExternalPsk(pskId));
        run.CommitWzp(alice, new CommitOptions());

        // ts-mls commits a PSK proposal by value.
        run.CommitTs("ts-1", [new JsonObject { ["type"] = "externalPsk", ["pskId"] = TsMlsPeer.Hex(pskId) }]);

        // A resumption PSK of the previous epoch (usage application), committed by Wzp.
        var resumption = PreSharedKeyId.Resumption(ResumptionPskUsage.Application, alice.GroupId, alice.Epoch - 1, RandomNumberGenerator.GetBytes(32));
        run.CommitWzp(alice, new CommitOptions { Proposals = [new PreSharedKeyProposal(resumption)] });
        run.ExchangeApplicationMessages();
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void GroupContextExtensions_CommittedByWzp_TsMlsAgrees(ushort suiteId)
    {
        using var run = new Run(CipherSuite.Get(suiteId));
        var alice = run.CreateWzp("alice");
        run.AddWzp(alice, ["bob"]);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);

        // required_capabilities asking for basic credentials, which every member lists: proposed by bob, committed by
        // alice with a path that ts-mls decrypts under the provisional context holding the new extensions.
        var basic = new RequiredCapabilitiesExtension([], [], [CredentialTypes.Basic]);
        var bob = run.Wzp["bob"];
        run.DeliverProposal(bob, bob.ProposeGroupContextExtensions([Extension.Of(ExtensionTypes.RequiredCapabilities, basic)]));
        run.CommitWzp(alice, new CommitOptions());
        Assert.Equal(Tls.Encode(basic), alice.Context.Extensions.Single().ExtensionData);

        // ts-mls proposes an empty required_capabilities; bob commits it.
        var none = new RequiredCapabilitiesExtension([], [], []);
        var proposal = TsMlsPeer.Message(run.Peer.Call("propose", new JsonObject
        {
            ["name"] = "ts-1",
            ["proposal"] = new JsonObject { ["type"] = "requiredCapabilities", ["data"] = TsMlsPeer.Hex(none) },
        })["message"]);
        run.DeliverProposalFromTs("ts-1", proposal);
        run.CommitWzp(bob, new CommitOptions());
        Assert.Equal(Tls.Encode(none), alice.Context.Extensions.Single().ExtensionData);
        run.ExchangeApplicationMessages();
    }

    /// <summary>
    /// Two ts-mls 1.6.4 faults with a GroupContextExtensions proposal in its own commit. It includes a path only for
    /// empty commits and commits with Updates or Removes, but RFC 9420 §12.4 requires one for every proposal type whose
    /// "Path Required" is Y in the registry of §17.4, group_context_extensions among them: Wzp refuses the commit as
    /// PathRequired. And when a path is there (a Remove beside it), ts-mls encrypts the path secrets under the old
    /// GroupContext's extensions, where §12.4.1 says the provisional GroupContext carries "the new GroupContext
    /// extensions (possibly updated by a GroupContextExtensions proposal)": Wzp cannot decrypt it (InvalidUpdatePath).
    /// ts-mls itself decrypts Wzp's GroupContextExtensions commits (test above), so it reads them as the RFC has it.
    /// </summary>
    [Theory]
    [InlineData(false, MlsGroupError.PathRequired)]
    [InlineData(true, MlsGroupError.InvalidUpdatePath)]
    public void TsMls_GroupContextExtensionsCommit_IsRefused(bool withRemove, MlsGroupError expected)
    {
        using var run = new Run(CipherSuite.X25519Aes128GcmSha256Ed25519);
        var alice = run.CreateWzp("alice");
        run.AddWzp(alice, ["bob"]);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);
        var proposals = new JsonArray(new JsonObject { ["type"] = "requiredCapabilities", ["data"] = TsMlsPeer.Hex(new RequiredCapabilitiesExtension([], [], [])) });
        if (withRemove) proposals.Add(Remove(run.Wzp["bob"].OwnLeafIndex));
        var commit = TsMlsPeer.Message(run.Peer.Call("commit", new JsonObject { ["name"] = "ts-1", ["proposals"] = proposals })["commit"]);
        Assert.False(alice.TryProcess(commit, out _, out var error));
        Assert.Equal(expected, error);
    }

    /// <summary>
    /// ts-mls 1.6.4's own GroupInfo writes external_pub as the bare key (no length); RFC 9420 §12.4.3.2 and §5.1.1
    /// make it an opaque&lt;V&gt;. Wzp.Mls refuses that GroupInfo as malformed rather than guess; the external-commit
    /// test above uses a GroupInfo the peer signs with the extension encoded as the RFC has it.
    /// </summary>
    [Fact]
    public void TsMlsOwnGroupInfo_ExternalPubWithoutLength_IsRefusedAsMalformed()
    {
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        using var run = new Run(suite);
        run.CreateTs("ts-owner");
        var groupInfo = TsMlsPeer.Message(run.Peer.Call("groupInfo", new JsonObject { ["name"] = "ts-owner", ["asTsMlsWrites"] = true })["groupInfo"]).GroupInfo!;
        var externalPub = groupInfo.Extensions.Single(x => x.ExtensionType == ExtensionTypes.ExternalPub);
        Assert.Equal(32, externalPub.ExtensionData.Length);
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var e = Assert.Throws<MlsGroupException>(() => MlsGroup.JoinByExternalCommit(groupInfo, Credential.Basic("x"u8.ToArray()), signature));
        Assert.Equal(MlsGroupError.MalformedMessage, e.Error);
    }

    /// <summary>
    /// ts-mls 1.6.4 reads each external_senders extension as one ExternalSender (and a sender index as the index among
    /// several such extensions). RFC 9420 §12.1.8.1 defines its data as <c>ExternalSender external_senders&lt;V&gt;</c>, a
    /// vector, and §6 makes the sender index an index into that list. ts-mls joins such a group (it does not decode
    /// the extension on joining) but cannot decode the sender of a proposal from the delivery service, which Wzp
    /// members accept: this test pins that down.
    /// </summary>
    [Fact]
    public void ExternalSenderProposal_AsRfcEncodes_WzpAcceptsAndTsMlsCannotDecodeTheSender()
    {
        var suite = CipherSuite.X25519Aes128GcmSha256Ed25519;
        using var run = new Run(suite);
        var (dsPrivate, dsPublic) = suite.GenerateSignatureKeyPair();
        var extensions = new[] { Extension.Of(ExtensionTypes.ExternalSenders, new ExternalSendersExtension([new ExternalSender(dsPublic, Credential.Basic("ds"u8.ToArray()))])) };
        var (signature, _) = suite.GenerateSignatureKeyPair();
        var alice = MlsGroup.Create(suite, Encoding.ASCII.GetBytes($"external-senders-{Guid.NewGuid()}"), Credential.Basic("alice"u8.ToArray()), signature, extensions);
        run.Wzp["alice"] = alice;
        run.AddWzp(alice, ["bob"]);
        run.AddTs(alice, "ts-1", treeOutOfBand: false);

        var proposal = MlsGroup.ExternalProposal(suite, alice.GroupId, alice.Epoch, 0, dsPrivate, new RemoveProposal(run.Wzp["bob"].OwnLeafIndex));
        Assert.True(alice.TryProcess(proposal, out var processed, out var error), error.ToString());
        Assert.Equal(ProcessedKind.Proposal, processed.Kind);
        var reply = run.Peer.TryCall("process", new JsonObject { ["name"] = "ts-1", ["message"] = TsMlsPeer.Hex(proposal) });
        Assert.False(reply["ok"]!.GetValue<bool>());
        Assert.Contains("Could not decode ExternalSender", reply["error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static JsonObject Remove(uint leaf) => new() { ["type"] = "remove", ["leaf"] = leaf };

    /// <summary>One interop run: Wzp members in this process, ts-mls members in the peer, and the delivery between them.</summary>
    private sealed class Run : IDisposable
    {
        private const string ExporterLabel = "wzp interop";
        private static readonly byte[] ExporterContext = "context"u8.ToArray();
        private CipherSuite _suite;
        private readonly byte[] _groupId = Encoding.ASCII.GetBytes($"interop-{Guid.NewGuid()}");
        private int _messages;

        public Run(CipherSuite suite)
        {
            _suite = suite;
            Peer = TsMlsPeer.Start();
        }

        public TsMlsPeer Peer { get; }

        public CipherSuite Suite => _suite;

        /// <summary>After a ReInit: the old groups are dropped and the run goes on with the members of the new one.</summary>
        public void MoveTo(CipherSuite suite, Dictionary<string, MlsGroup> wzp, string[] ts)
        {
            foreach (var old in Wzp.Values) old.Dispose();
            Wzp.Clear();
            foreach (var (name, member) in wzp) Wzp[name] = member;
            Ts.Clear();
            Ts.AddRange(ts);
            _suite = suite;
        }

        public Dictionary<string, MlsGroup> Wzp { get; } = [];

        public List<string> Ts { get; } = [];

        public MlsGroup CreateWzp(string name, MlsGroupOptions? options = null)
        {
            var (signature, _) = _suite.GenerateSignatureKeyPair();
            var group = MlsGroup.Create(_suite, _groupId, Credential.Basic(Encoding.ASCII.GetBytes(name)), signature, options: options);
            Wzp[name] = group;
            return group;
        }

        public void CreateTs(string name)
        {
            Peer.Call("createGroup", new JsonObject { ["name"] = name, ["suite"] = _suite.Id, ["groupId"] = TsMlsPeer.Hex(_groupId) });
            Ts.Add(name);
        }

        public KeyPackageBundle NewBundle(string name)
        {
            var (signature, _) = _suite.GenerateSignatureKeyPair();
            return KeyPackageBundle.Create(_suite, Credential.Basic(Encoding.ASCII.GetBytes(name)), signature);
        }

        /// <summary>A Wzp member commits an Add of a fresh ts-mls key package; the ts-mls client joins from the Welcome.</summary>
        public void AddTs(MlsGroup committer, string name, bool treeOutOfBand, bool includePath = false)
        {
            var keyPackage = TsMlsPeer.Message(Peer.Call("keyPackage", new JsonObject { ["name"] = name, ["suite"] = _suite.Id })["keyPackage"]);
            Assert.Equal(WireFormat.KeyPackage, keyPackage.WireFormat);
            var output = CommitWzp(committer, new CommitOptions { Proposals = [new AddProposal(keyPackage.KeyPackage!)], IncludePath = includePath });
            Assert.NotNull(output.Welcome);
            var join = new JsonObject { ["name"] = name, ["welcome"] = TsMlsPeer.Hex(output.Welcome) };
            if (treeOutOfBand) join["ratchetTree"] = TsMlsPeer.Hex(committer.Tree.ToRatchetTree());
            Peer.Call("join", join);
            Ts.Add(name);
            CheckAgreement();
        }

        /// <summary>A Wzp member commits Adds of fresh Wzp clients, who join from the Welcome.</summary>
        public void AddWzp(MlsGroup committer, string[] names, MlsGroupOptions? options = null, bool treeOutOfBand = false)
        {
            var bundles = names.Select(NewBundle).ToArray();
            var output = CommitWzp(committer, new CommitOptions { Proposals = bundles.Select(b => (Proposal)new AddProposal(b.KeyPackage)).ToArray() });
            var tree = treeOutOfBand ? committer.Tree.ToRatchetTree() : null;
            for (var i = 0; i < names.Length; i++) JoinFromWelcome(names[i], bundles[i], output, tree, options);
        }

        /// <summary>A ts-mls member commits Adds of fresh Wzp clients, who join from its Welcome.</summary>
        public void AddWzpByTs(string committer, string[] names, bool treeInWelcome)
        {
            var bundles = names.Select(NewBundle).ToArray();
            var proposals = new JsonArray(bundles.Select(b => (JsonNode)new JsonObject { ["type"] = "add", ["keyPackage"] = TsMlsPeer.Hex(MlsMessage.Of(b.KeyPackage)) }).ToArray());
            var reply = Peer.Call("commit", new JsonObject { ["name"] = committer, ["proposals"] = proposals, ["ratchetTreeInWelcome"] = treeInWelcome });
            DeliverFromTs(committer, TsMlsPeer.Message(reply["commit"]));
            var welcome = TsMlsPeer.Message(reply["welcome"]);
            var tree = treeInWelcome ? null : Tls.Decode<RatchetTree>(TsMlsPeer.Bytes(reply["ratchetTree"]));
            for (var i = 0; i < names.Length; i++)
            {
                Assert.True(MlsGroup.TryJoin(welcome.Welcome!, bundles[i], tree, null, out var joined, out var error), $"{names[i]} joining from ts-mls's Welcome: {error}");
                Wzp[names[i]] = joined;
                bundles[i].Dispose();
            }
            CheckAgreement();
        }

        public void JoinFromWelcome(string name, KeyPackageBundle bundle, CommitOutput output, RatchetTree? outOfBandTree, MlsGroupOptions? options = null)
        {
            Assert.True(MlsGroup.TryJoin(output.Welcome!.Welcome!, bundle, outOfBandTree, options, out var joined, out var error), $"{name} joining: {error}");
            Wzp[name] = joined;
            bundle.Dispose();
            CheckAgreement();
        }

        /// <summary>A Wzp client that joined by external commit: every other member processes the commit.</summary>
        public void Join(string name, MlsGroup joiner, MlsMessage commit)
        {
            DeliverFromWzp(joiner, commit);
            Wzp[name] = joiner;
            CheckAgreement();
        }

        public CommitOutput CommitWzp(MlsGroup committer, CommitOptions options)
        {
            var output = committer.Commit(options);
            committer.MergePendingCommit();
            DeliverFromWzp(committer, output.Commit);
            CheckAgreement();
            return output;
        }

        /// <summary>A ts-mls member commits its pending proposals, one of them an Add of <paramref name="bundle"/>, who joins.</summary>
        public void CommitTsWithWelcome(string committer, string name, KeyPackageBundle bundle)
        {
            var reply = Peer.Call("commit", new JsonObject { ["name"] = committer });
            DeliverFromTs(committer, TsMlsPeer.Message(reply["commit"]));
            var welcome = TsMlsPeer.Message(reply["welcome"]).Welcome!;
            Assert.True(MlsGroup.TryJoin(welcome, bundle, null, null, out var joined, out var error), $"{name} joining from ts-mls's Welcome: {error}");
            Wzp[name] = joined;
            bundle.Dispose();
            CheckAgreement();
        }

        public void CommitTs(string committer, JsonObject[] proposals)
        {
            var reply = Peer.Call("commit", new JsonObject { ["name"] = committer, ["proposals"] = new JsonArray(proposals.Select(p => (JsonNode)p).ToArray()) });
            DeliverFromTs(committer, TsMlsPeer.Message(reply["commit"]));
            CheckAgreement();
        }

        /// <summary>Commits a removal of a ts-mls member, who must report itself out of the group.</summary>
        public void RemoveTs(MlsGroup committer, string name)
        {
            var leaf = Peer.Call("state", new JsonObject { ["name"] = name })["leafIndex"]!.GetValue<uint>();
            var output = committer.Commit(new CommitOptions { Proposals = [new RemoveProposal(leaf)] });
            committer.MergePendingCommit();
            Ts.Remove(name);
            var reply = Peer.Call("process", new JsonObject { ["name"] = name, ["message"] = TsMlsPeer.Hex(output.Commit) });
            Assert.False(reply["active"]!.GetValue<bool>(), $"{name} still active after its removal");
            DeliverFromWzp(committer, output.Commit);
            CheckAgreement();
        }

        public void DeliverProposal(MlsGroup sender, MlsMessage proposal)
        {
            foreach (var (_, member) in Wzp.Where(m => m.Value != sender))
                Assert.True(member.TryProcess(proposal, out var processed, out var error), error.ToString());
            foreach (var name in Ts) Peer.Call("process", new JsonObject { ["name"] = name, ["message"] = TsMlsPeer.Hex(proposal) });
        }

        public void DeliverProposalFromTs(string? sender, MlsMessage proposal)
        {
            foreach (var (name, member) in Wzp)
            {
                Assert.True(member.TryProcess(proposal, out var processed, out var error), $"{name} processing ts-mls's proposal: {error}");
                Assert.Equal(ProcessedKind.Proposal, processed.Kind);
            }
            foreach (var name in Ts.Where(n => n != sender)) Peer.Call("process", new JsonObject { ["name"] = name, ["message"] = TsMlsPeer.Hex(proposal) });
        }

        /// <summary>Every Wzp member but the sender processes the commit, then every ts-mls member; removed members drop out.</summary>
        public void DeliverFromWzp(MlsGroup sender, MlsMessage commit)
        {
            foreach (var (name, member) in Wzp.Where(m => m.Value != sender).ToList())
            {
                Assert.True(member.TryProcess(commit, out var processed, out var error), $"{name} processing a Wzp commit: {error}");
                if (processed.RemovedFromGroup) Drop(name);
            }
            foreach (var name in Ts.ToList())
            {
                var reply = Peer.Call("process", new JsonObject { ["name"] = name, ["message"] = TsMlsPeer.Hex(commit) });
                if (!reply["active"]!.GetValue<bool>()) Ts.Remove(name);
            }
        }

        public void DeliverFromTs(string sender, MlsMessage commit)
        {
            foreach (var (name, member) in Wzp.ToList())
            {
                Assert.True(member.TryProcess(commit, out var processed, out var error), $"{name} processing ts-mls's commit: {error}");
                Assert.Equal(ProcessedKind.Commit, processed.Kind);
                if (processed.RemovedFromGroup) Drop(name);
            }
            foreach (var name in Ts.Where(n => n != sender).ToList())
            {
                var reply = Peer.Call("process", new JsonObject { ["name"] = name, ["message"] = TsMlsPeer.Hex(commit) });
                if (!reply["active"]!.GetValue<bool>()) Ts.Remove(name);
            }
        }

        private void Drop(string name)
        {
            var member = Wzp[name];
            Assert.False(member.IsActive);
            Wzp.Remove(name);
            member.Dispose();
        }

        /// <summary>Every member of both sides: same epoch, epoch_authenticator, tree hash and exporter value.</summary>
        public void CheckAgreement()
        {
            var views = new List<(string Who, ulong Epoch, string Authenticator, string TreeHash, string Exporter)>();
            foreach (var (name, member) in Wzp)
            {
                views.Add(($"wzp:{name}", member.Epoch, TsMlsPeer.Hex(member.EpochAuthenticator), TsMlsPeer.Hex(member.Context.TreeHash),
                    TsMlsPeer.Hex(member.Export(ExporterLabel, ExporterContext, 32))));
            }
            foreach (var name in Ts)
            {
                var state = Peer.Call("state", new JsonObject { ["name"] = name, ["exporterLabel"] = ExporterLabel, ["exporterContext"] = TsMlsPeer.Hex(ExporterContext) });
                views.Add(($"ts:{name}", state["epoch"]!.GetValue<ulong>(), state["epochAuthenticator"]!.GetValue<string>(),
                    state["treeHash"]!.GetValue<string>(), state["exporter"]!.GetValue<string>()));
            }
            var first = views[0];
            foreach (var view in views.Skip(1))
            {
                Assert.True(first.Epoch == view.Epoch, $"epoch: {first.Who} {first.Epoch}, {view.Who} {view.Epoch}");
                Assert.True(first.TreeHash == view.TreeHash, $"tree hash at epoch {first.Epoch}: {first.Who} {first.TreeHash}, {view.Who} {view.TreeHash}");
                Assert.True(first.Authenticator == view.Authenticator, $"epoch_authenticator at epoch {first.Epoch}: {first.Who}, {view.Who}");
                Assert.True(first.Exporter == view.Exporter, $"exporter at epoch {first.Epoch}: {first.Who}, {view.Who}");
            }
        }

        /// <summary>Every member sends one application message; every other member opens it.</summary>
        public void ExchangeApplicationMessages()
        {
            foreach (var (name, sender) in Wzp)
            {
                var data = Encoding.UTF8.GetBytes($"from {name} #{_messages++}");
                var message = sender.EncryptApplication(data);
                Assert.Equal(WireFormat.PrivateMessage, message.WireFormat);
                foreach (var (other, member) in Wzp.Where(m => m.Value != sender))
                {
                    Assert.True(member.TryProcess(message, out var processed, out var error), $"{other} opening {name}'s message: {error}");
                    Assert.Equal(data, processed.ApplicationData);
                }
                foreach (var ts in Ts)
                {
                    var reply = Peer.Call("process", new JsonObject { ["name"] = ts, ["message"] = TsMlsPeer.Hex(message) });
                    Assert.Equal("application", reply["kind"]!.GetValue<string>());
                    Assert.Equal(data, TsMlsPeer.Bytes(reply["data"]));
                }
            }
            foreach (var ts in Ts)
            {
                var data = Encoding.UTF8.GetBytes($"from {ts} #{_messages++}");
                var message = TsMlsPeer.Message(Peer.Call("send", new JsonObject { ["name"] = ts, ["data"] = TsMlsPeer.Hex(data) })["message"]);
                Assert.Equal(WireFormat.PrivateMessage, message.WireFormat);
                foreach (var (name, member) in Wzp)
                {
                    Assert.True(member.TryProcess(message, out var processed, out var error), $"{name} opening {ts}'s message: {error}");
                    Assert.Equal(ProcessedKind.Application, processed.Kind);
                    Assert.Equal(data, processed.ApplicationData);
                }
                foreach (var other in Ts.Where(n => n != ts))
                {
                    var reply = Peer.Call("process", new JsonObject { ["name"] = other, ["message"] = TsMlsPeer.Hex(message) });
                    Assert.Equal(data, TsMlsPeer.Bytes(reply["data"]));
                }
            }
        }

        public void Dispose()
        {
            foreach (var member in Wzp.Values) member.Dispose();
            Peer.Dispose();
        }
    }
}
