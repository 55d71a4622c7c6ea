// An MLS peer driven over stdin/stdout, one JSON object a line each way, backed by ts-mls (an independent
// TypeScript implementation of RFC 9420). Wzp.Mls.Tests/Interop/TsMlsPeer.cs is the other end. Binary values
// travel as lowercase hex. Every request gets exactly one reply: {"ok":true,...} or {"ok":false,"error":"..."}.
// Members are named by the driver; each name holds one ts-mls ClientState.
//
// Node 18 has no global `crypto` unless started with --experimental-global-webcrypto; ts-mls and @hpke reach for
// globalThis.crypto, so it is set from node:crypto before they are loaded (a no-op on Node 19 and later).
import { webcrypto } from "node:crypto";
import { createInterface } from "node:readline";

if (globalThis.crypto === undefined) globalThis.crypto = webcrypto;

const mls = await import("ts-mls");
const { encodeRatchetTree, decodeRatchetTree } = await import("ts-mls/ratchetTree.js");
const { getGroupMembers } = await import("ts-mls/clientState.js");
const { createGroupInfo } = await import("ts-mls/createCommit.js");

const suiteNames = {
  1: "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
  3: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
};
const impls = new Map();
const members = new Map();     // name -> { state, impl }
const keyPackages = new Map(); // name -> { publicPackage, privatePackage, impl }
const externalSenders = new Map(); // name -> { signKey, publicKey, impl }
const externalPsks = {};            // base64 psk_id -> secret, for every member of this peer
const pskIndex = (state) => mls.makePskIndex(state, externalPsks);

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));
const utf8 = (text) => new TextEncoder().encode(text);

async function impl(suite) {
  if (!impls.has(suite)) {
    const name = suiteNames[suite];
    if (name === undefined) throw new Error(`unsupported suite ${suite}`);
    impls.set(suite, await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(name)));
  }
  return impls.get(suite);
}

function member(name) {
  const m = members.get(name);
  if (m === undefined) throw new Error(`no member ${name}`);
  return m;
}

function decode(text, wireformat) {
  const decoded = mls.decodeMlsMessage(unhex(text), 0);
  if (decoded === undefined) throw new Error("undecodable MLSMessage");
  const [message] = decoded;
  if (wireformat !== undefined && message.wireformat !== wireformat) throw new Error(`expected ${wireformat}, got ${message.wireformat}`);
  return message;
}

// MLS variable-length integer (RFC 9420 §2.1.2), for the lengths written here (below 2^14).
const varint = (n) => (n < 64 ? [n] : [0x40 | (n >> 8), n & 0xff]);

// An HPKE public key behind its varint length becomes the bare key; a bare key is left alone.
function unprefixed(key) {
  if (key.length > 0 && key[0] >> 6 === 0 && key[0] === key.length - 1) return key.subarray(1);
  if (key.length > 1 && key[0] >> 6 === 1 && (((key[0] & 0x3f) << 8) | key[1]) === key.length - 2) return key.subarray(2);
  return key;
}

const encode = (message) => hex(mls.encodeMlsMessage(message));

// What both sides compare after every epoch.
async function summary(m, request) {
  const s = m.state;
  const exporter = await mls.mlsExporter(s.keySchedule.exporterSecret, request.exporterLabel ?? "interop", unhex(request.exporterContext ?? ""), 32, m.impl);
  return {
    epoch: Number(s.groupContext.epoch),
    epochAuthenticator: hex(s.keySchedule.epochAuthenticator),
    exporter: hex(exporter),
    treeHash: hex(s.groupContext.treeHash),
    leafIndex: s.privatePath.leafIndex,
    members: getGroupMembers(s).length,
  };
}

function proposalFrom(p) {
  switch (p.type) {
    case "add": return { proposalType: "add", add: { keyPackage: decode(p.keyPackage, "mls_key_package").keyPackage } };
    case "remove": return { proposalType: "remove", remove: { removed: p.leaf } };
    case "requiredCapabilities":
      return { proposalType: "group_context_extensions", groupContextExtensions: { extensions: [{ extensionType: "required_capabilities", extensionData: unhex(p.data) }] } };
    case "externalPsk":
      return { proposalType: "psk", psk: { preSharedKeyId: { psktype: "external", pskId: unhex(p.pskId), pskNonce: crypto.getRandomValues(new Uint8Array(32)) } } };
    default: throw new Error(`unknown proposal type ${p.type}`);
  }
}

async function newKeyPackage(request) {
  const cs = await impl(request.suite);
  const credential = { credentialType: "basic", identity: utf8(request.name) };
  const kp = await mls.generateKeyPackage(credential, mls.defaultCapabilities(), mls.defaultLifetime, [], cs);
  return { ...kp, impl: cs };
}

const handlers = {
  async keyPackage(request) {
    const kp = await newKeyPackage(request);
    keyPackages.set(request.name, kp);
    return { keyPackage: encode({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage }) };
  },

  async createGroup(request) {
    const kp = await newKeyPackage(request);
    const state = await mls.createGroup(unhex(request.groupId), kp.publicPackage, kp.privatePackage, [], kp.impl);
    const m = { state, impl: kp.impl };
    members.set(request.name, m);
    return summary(m, request);
  },

  async join(request) {
    const kp = keyPackages.get(request.name);
    if (kp === undefined) throw new Error(`no key package for ${request.name}`);
    const welcome = decode(request.welcome, "mls_welcome").welcome;
    const tree = request.ratchetTree === undefined ? undefined : decodeRatchetTree(unhex(request.ratchetTree), 0)[0];
    const state = await mls.joinGroup(welcome, kp.publicPackage, kp.privatePackage, pskIndex(undefined), kp.impl, tree);
    const m = { state, impl: kp.impl };
    members.set(request.name, m);
    keyPackages.delete(request.name);
    return summary(m, request);
  },

  async process(request) {
    const m = member(request.name);
    const message = decode(request.message);
    if (message.wireformat !== "mls_public_message" && message.wireformat !== "mls_private_message") throw new Error(`cannot process ${message.wireformat}`);
    const result = await mls.processMessage(message, m.state, pskIndex(m.state), mls.acceptAll, m.impl);
    m.state = result.newState;
    const reply = { kind: result.kind === "applicationMessage" ? "application" : "handshake" };
    if (result.kind === "applicationMessage") reply.data = hex(result.message);
    reply.status = m.state.groupActiveState.kind;
    reply.active = reply.status === "active";
    if (reply.status === "removedFromGroup") return reply;
    return { ...reply, ...(await summary(m, request)) };
  },

  async send(request) {
    const m = member(request.name);
    const result = await mls.createApplicationMessage(m.state, unhex(request.data), m.impl);
    m.state = result.newState;
    return { message: encode({ version: "mls10", wireformat: "mls_private_message", privateMessage: result.privateMessage }) };
  },

  async commit(request) {
    const m = member(request.name);
    const result = await mls.createCommit(
      { state: m.state, cipherSuite: m.impl, pskIndex: pskIndex(m.state) },
      {
        extraProposals: (request.proposals ?? []).map(proposalFrom),
        ratchetTreeExtension: request.ratchetTreeInWelcome ?? true,
        wireAsPublicMessage: request.publicMessage ?? false,
      });
    m.state = result.newState;
    const reply = { commit: encode(result.commit), ...(await summary(m, request)) };
    if (result.welcome !== undefined) {
      reply.welcome = encode({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome });
      reply.ratchetTree = hex(encodeRatchetTree(m.state.ratchetTree));
    }
    return reply;
  },

  async propose(request) {
    const m = member(request.name);
    const result = await mls.createProposal(m.state, request.publicMessage ?? true, proposalFrom(request.proposal), m.impl);
    m.state = result.newState;
    return { message: encode(result.message) };
  },

  // ts-mls 1.6.4 writes external_pub's extension_data as the bare HPKE public key, and reads it so. RFC 9420
  // §12.4.3.2 defines the extension as `struct { HPKEPublicKey external_pub; } ExternalPub;` and §5.1.1 makes
  // HPKEPublicKey an `opaque <V>`, so the data is the key behind its varint length. With "asTsMlsWrites" the
  // peer hands out ts-mls's own GroupInfo; by default it signs one with the extension encoded as the RFC has it.
  async groupInfo(request) {
    const m = member(request.name);
    let groupInfo;
    if (request.asTsMlsWrites) {
      groupInfo = await mls.createGroupInfoWithExternalPubAndRatchetTree(m.state, [], m.impl);
    } else {
      const pair = await m.impl.hpke.deriveKeyPair(m.state.keySchedule.externalSecret);
      const key = await m.impl.hpke.exportPublicKey(pair.publicKey);
      groupInfo = await createGroupInfo(m.state.groupContext, m.state.confirmationTag, m.state, [
        { extensionType: "external_pub", extensionData: new Uint8Array([...varint(key.length), ...key]) },
        { extensionType: "ratchet_tree", extensionData: encodeRatchetTree(m.state.ratchetTree) },
      ], m.impl);
    }
    return { groupInfo: encode({ version: "mls10", wireformat: "mls_group_info", groupInfo }) };
  },

  // The other half of the work-around above: ts-mls imports external_pub's extension_data as the key itself, so
  // for this call the suite's importPublicKey takes the key from behind its length, as RFC 9420 encodes it.
  async externalJoin(request) {
    const kp = await newKeyPackage(request);
    const groupInfo = decode(request.groupInfo, "mls_group_info").groupInfo;
    const hpke = Object.create(kp.impl.hpke);
    hpke.importPublicKey = (key) => kp.impl.hpke.importPublicKey(unprefixed(key));
    const { publicMessage, newState } = await mls.joinGroupExternal(groupInfo, kp.publicPackage, kp.privatePackage, false, { ...kp.impl, hpke });
    const m = { state: newState, impl: kp.impl };
    members.set(request.name, m);
    return { commit: encode({ version: "mls10", wireformat: "mls_public_message", publicMessage }), ...(await summary(m, request)) };
  },

  // A client outside the group asks to be added (sender new_member_proposal, RFC 9420 §12.1.8); its key
  // package is kept under its name so it can join from the Welcome of the commit that adds it.
  async newMemberProposal(request) {
    const kp = await newKeyPackage(request);
    keyPackages.set(request.name, kp);
    const groupInfo = decode(request.groupInfo, "mls_group_info").groupInfo;
    const message = await mls.proposeAddExternal(groupInfo, kp.publicPackage, kp.privatePackage, kp.impl);
    return { message: encode(message) };
  },

  // A delivery service's signing key, for the group's external_senders extension.
  async externalSenderKey(request) {
    const cs = await impl(request.suite);
    const { signKey, publicKey } = await cs.signature.keygen();
    externalSenders.set(request.name, { signKey, publicKey, impl: cs });
    return { signatureKey: hex(publicKey) };
  },

  async proposeExternal(request) {
    const sender = externalSenders.get(request.name);
    if (sender === undefined) throw new Error(`no external sender ${request.name}`);
    const groupInfo = decode(request.groupInfo, "mls_group_info").groupInfo;
    const message = await mls.proposeExternal(groupInfo, proposalFrom(request.proposal), sender.publicKey, sender.signKey, sender.impl);
    return { message: encode(message) };
  },

  // ReInit (RFC 9420 §11.2): a member commits a ReInit proposal; the old group is then suspended.
  async reinit(request) {
    const m = member(request.name);
    const result = await mls.reinitGroup(m.state, unhex(request.groupId), "mls10", suiteNames[request.suite], [], m.impl);
    m.state = result.newState;
    return { commit: encode(result.commit), status: m.state.groupActiveState.kind, ...(await summary(m, request)) };
  },

  // A member of the suspended group creates the new one, adding the others' key packages with a reinit PSK.
  async reinitCreate(request) {
    const old = member(request.name);
    const kp = await newKeyPackage({ name: request.newName, suite: request.suite });
    const memberKeyPackages = request.keyPackages.map((k) => decode(k, "mls_key_package").keyPackage);
    const result = await mls.reinitCreateNewGroup(old.state, kp.publicPackage, kp.privatePackage, memberKeyPackages, unhex(request.groupId), suiteNames[request.suite], []);
    const m = { state: result.newState, impl: kp.impl };
    members.set(request.newName, m);
    return {
      commit: encode(result.commit),
      welcome: encode({ version: "mls10", wireformat: "mls_welcome", welcome: result.welcome }),
      ratchetTree: hex(encodeRatchetTree(m.state.ratchetTree)),
      ...(await summary(m, request)),
    };
  },

  // A member of the suspended group joins the new one from its Welcome (key package made by "keyPackage" under newName).
  async reinitJoin(request) {
    const old = member(request.name);
    const kp = keyPackages.get(request.newName);
    if (kp === undefined) throw new Error(`no key package for ${request.newName}`);
    const welcome = decode(request.welcome, "mls_welcome").welcome;
    const tree = request.ratchetTree === undefined ? undefined : decodeRatchetTree(unhex(request.ratchetTree), 0)[0];
    const state = await mls.joinGroupFromReinit(old.state, welcome, kp.publicPackage, kp.privatePackage, tree);
    const m = { state, impl: kp.impl };
    members.set(request.newName, m);
    keyPackages.delete(request.newName);
    return summary(m, request);
  },

  async addPsk(request) {
    externalPsks[Buffer.from(unhex(request.pskId)).toString("base64")] = unhex(request.secret);
    return {};
  },

  async state(request) {
    const m = member(request.name);
    return { status: m.state.groupActiveState.kind, ...(await summary(m, request)) };
  },

  async version() {
    return { node: process.version };
  },
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let reply;
  try {
    const request = JSON.parse(line);
    const handler = handlers[request.op];
    if (handler === undefined) throw new Error(`unknown op ${request.op}`);
    reply = { ok: true, ...(await handler(request)) };
  } catch (e) {
    reply = { ok: false, error: `${e?.name ?? "Error"}: ${e?.message ?? e}` };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
