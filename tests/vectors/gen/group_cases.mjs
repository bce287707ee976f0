// SPDX-License-Identifier: ISC
//
// group.json (SPEC 8): a sender-key chain, delivery scripts for receivers of
// it, invalid distribution messages, and a chain of signed roster revisions
// with invalid successors, invalid encodings and a conflict.

import * as V from './veil.mjs';
import * as G from './group.mjs';
import { hex, unhex, ascii, concat, equal, u8, u32 } from './veil.mjs';
import { det, fixedRng } from './det.mjs';

function assert(cond, what) {
  if (!cond) throw new Error(`generator self-check failed: ${what}`);
}
function expectError(fn, name, what) {
  try {
    fn();
  } catch (e) {
    if (e instanceof V.VeilError) {
      assert(e.veil === name, `${what}: got ${e.message}, want ${name}`);
      return;
    }
    throw e;
  }
  throw new Error(`generator self-check failed: ${what}: succeeded, want ${name}`);
}

// Deterministic printable plaintexts of a given length.
function text(label, len) {
  const words = ['group', 'sender', 'key', 'chain', 'roster', 'epoch', 'admin', 'hello', 'all', 'welcome', 'bye'];
  const seed = det(`group/text/${label}`, 64);
  let s = '';
  for (let i = 0; s.length < len; i++) s += (s ? ' ' : '') + words[seed[i % 64] % words.length];
  return ascii(s.slice(0, len));
}

// Ed25519ph as libsodium computes it must match RFC 8032 7.3 ("abc").
function checkEd25519ph() {
  const kp = V.ed25519Keypair(unhex('833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42'));
  assert(hex(kp.pk) === 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf', 'rfc8032 ph pk');
  const sig = G.signph(kp.sk, unhex('616263'));
  assert(hex(sig) === '98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41'
    + '31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406', 'rfc8032 7.3 Ed25519ph signature');
  assert(G.verifyph(kp.pk, unhex('616263'), sig) && !G.verifyph(kp.pk, unhex('616264'), sig), 'verifyph');
  assert(!V.verify(kp.pk, unhex('616263'), sig), 'ph signature is not a plain Ed25519 signature');
}

// ---------------------------------------------------------------------------
// Sender keys (SPEC 8.1)

const ZERO_NONCE = new Uint8Array(24);

function senderKeyVectors() {
  const groupId = det('group/sender/group_id', 32);
  const epoch = 259; // 0x00000103: catches byte order
  // key_id 0x9c3e017a (>= 2^31: catches signedness and byte order).
  const createRng = concat(Uint8Array.of(0x9c, 0x3e, 0x01, 0x7a), det('group/sender/ck', 32), det('group/sender/seed', 32));
  const rng = fixedRng(createRng);
  let chain = G.newSenderKey(groupId, epoch, rng);
  assert(rng.done() && chain.keyId === 0x9c3e017a, 'sender key draws');
  const ck0 = chain.ck;
  const distribution = G.encodeDistribution(chain);
  assert(distribution.length === 109, 'distribution size');

  const msgs = []; // {n, pt, message}
  const json = [];
  let lateDistribution = null;
  const encrypt = (len, skip = 0) => {
    for (let i = 0; i < skip; i++) chain = G.groupEncrypt(chain, new Uint8Array(0), () => ZERO_NONCE).state;
    const pt = text(`sender/${msgs.length}`, len);
    const nonce = det(`group/sender/nonce/${msgs.length}`, 24);
    const r = G.groupEncrypt(chain, pt, fixedRng(nonce));
    assert(r.message.length === 149 + V.paddedLength(len), 'group message size');
    chain = r.state;
    msgs.push({ n: r.n, pt, message: r.message });
    const e = { iteration: r.n };
    if (skip) e.skip = skip;
    Object.assign(e, {
      nonce: hex(nonce), plaintext: hex(pt), mk: hex(r.mk), ck_after: hex(chain.ck),
      sig: hex(r.message.slice(r.message.length - 64)), message: hex(r.message),
    });
    json.push(e);
    if (chain.iteration === 3) lateDistribution = G.encodeDistribution(chain);
  };
  for (const len of [0, 17, 63, 64, 100, 300, 1]) encrypt(len); // iterations 0-6
  encrypt(10, 799); // 806
  encrypt(33); // 807
  encrypt(8); // 808
  encrypt(4); // 809
  encrypt(12, 197); // 1007
  encrypt(70); // 1008
  encrypt(5, 2); // 1011
  assert(msgs.map((m) => m.n).join() === '0,1,2,3,4,5,6,806,807,808,809,1007,1008,1011', 'iterations');
  assert(msgs[0].message.length === 213, 'smallest message is 213 octets');

  // The chain derivation, recomputed from the definition.
  let ck = ck0;
  for (let i = 0; i < 3; i++) {
    assert(equal(V.hmac(ck, u8(3)), unhex(json[i].mk)), 'MK = HMAC(CK, 0x03)');
    ck = V.hmac(ck, u8(4));
    assert(equal(ck, unhex(json[i].ck_after)), "CK' = HMAC(CK, 0x04)");
  }
  assert(equal(lateDistribution.slice(45, 77), ck) && lateDistribution[44] === 3, 'late distribution carries CK_3');

  // A second member's chain in the same group and epoch.
  const otherRng = concat(Uint8Array.of(0x00, 0x00, 0x01, 0x2c), det('group/other/ck', 32), det('group/other/seed', 32));
  const other = G.newSenderKey(groupId, epoch, fixedRng(otherRng));
  const otherNonce = det('group/other/nonce/0', 24);
  const otherMsg = G.groupEncrypt(other, text('other/0', 9), fixedRng(otherNonce));

  const sk = {
    group_id: hex(groupId), epoch, rng: hex(createRng), key_id: chain.keyId,
    ck: hex(ck0), seed: hex(createRng.slice(36)), sign_pk: hex(chain.signPk),
    distribution: hex(distribution),
    messages: json,
    late_distribution: { after_messages: 3, iteration: 3, distribution: hex(lateDistribution) },
    other_chain: {
      rng: hex(otherRng), key_id: other.keyId, sign_pk: hex(other.signPk), distribution: hex(G.encodeDistribution(other)),
      nonce: hex(otherNonce), plaintext: hex(text('other/0', 9)), message: hex(otherMsg.message),
    },
  };
  return { sk, msgs, ck0, signSk: chain.signSk, other, otherMsg, distribution, lateDistribution };
}

// A delivery script against one receiving chain.
class Receiver {
  constructor(ctx, dist) {
    this.ctx = ctx;
    this.state = G.importDistribution(dist);
    this.events = [];
    this.crafted = 0;
  }

  record(ev, m, error, expectPt) {
    const before = G.chainSnapshot(this.state);
    if (error) {
      expectError(() => G.groupDecrypt(this.state, m), error, `receive event ${this.events.length} ${ev.name || ''}`);
      assert(G.chainSnapshot(this.state) === before, 'receiver unchanged on failure');
      ev.error = error;
    } else {
      const r = G.groupDecrypt(this.state, m);
      assert(equal(r.plaintext, expectPt), 'group plaintext');
      this.state = r.state;
      ev.plaintext = hex(r.plaintext);
    }
    ev.iteration = this.state.iteration;
    ev.stored = this.state.skipped.length;
    this.events.push(ev);
  }

  deliver(i, error) {
    this.record({ op: 'deliver', msg: i }, this.ctx.msgs[i].message, error, this.ctx.msgs[i].pt);
  }

  tamper(i, name, offset, xor, error) {
    const m = this.ctx.msgs[i].message.slice();
    m[offset] ^= xor;
    this.record({ op: 'deliver', name, msg: i, tamper: { offset, xor } }, m, error);
  }

  raw(name, m, error) {
    this.record({ op: 'deliver', name, message: hex(m) }, m, error);
  }

  // A message with chosen iteration and padded body under `mk` (a wrong
  // key when not given), correctly signed with the chain's key.
  craft(n, { mk, padded, signSk } = {}) {
    const k = this.crafted++;
    const hdr = G.groupHeader(this.state, n, det(`group/craft/${k}/nonce`, 24));
    return G.buildGroupMessage(hdr, mk || det(`group/craft/${k}/mk`, 32), padded || V.pad(ascii('crafted')), signSk || this.ctx.signSk);
  }
}

function mkAt(ck, n) {
  for (let i = 0; i < n; i++) ck = G.senderStep(ck).ck;
  return G.senderStep(ck).mk;
}

function receiveVectors(ctx) {
  const R = new Receiver(ctx, ctx.distribution);
  const msg = (i) => ctx.msgs[i].message;
  const len = (i) => msg(i).length;
  R.deliver(1); // stores key 0
  R.deliver(0); // stored key
  R.deliver(0, 'VEIL_EREPLAY');
  R.deliver(1, 'VEIL_EREPLAY');
  R.deliver(4); // stores 2, 3
  R.tamper(2, 'body_bit_flipped', 100, 0x01, 'VEIL_ESIG');
  R.tamper(2, 'signature_bit_flipped', len(2) - 40, 0x01, 'VEIL_ESIG');
  R.tamper(2, 'iteration_changed', 44, 0x01, 'VEIL_ESIG');
  R.tamper(3, 'nonce_bit_flipped', 50, 0x80, 'VEIL_ESIG');
  R.tamper(3, 'signature_s_high_bit', len(3) - 1, 0x80, 'VEIL_ESIG');
  R.raw('stored_key_wrong_body_key_signed', R.craft(3), 'VEIL_EAUTH');
  R.raw('stored_key_bad_padding_signed', R.craft(2, { mk: mkAt(ctx.ck0, 2), padded: new Uint8Array(64) }), 'VEIL_EPAD');
  R.deliver(3);
  R.deliver(2);
  R.raw('other_key_id_genuine', ctx.otherMsg.message, 'VEIL_EINVAL');
  const M = (i, f) => { const c = msg(i).slice(); f(c); return c; };
  R.raw('key_id_changed', M(5, (c) => { c[40] ^= 0x01; }), 'VEIL_EINVAL');
  R.raw('group_id_changed', M(5, (c) => { c[1] ^= 0x01; }), 'VEIL_EINVAL');
  R.raw('epoch_changed', M(5, (c) => { c.set(u32(260), 33); }), 'VEIL_EINVAL');
  R.raw('version_2', M(5, (c) => { c[0] = 2; }), 'VEIL_EVERSION');
  R.raw('version_0', M(5, (c) => { c[0] = 0; }), 'VEIL_EVERSION');
  R.raw('truncated_212', msg(0).slice(0, 212), 'VEIL_EINVAL');
  R.raw('empty', new Uint8Array(0), 'VEIL_EINVAL');
  R.raw('truncated_by_one', msg(5).slice(0, len(5) - 1), 'VEIL_ESIG');
  R.raw('extended_by_one', concat(msg(5), u8(0)), 'VEIL_ESIG');
  R.raw('signed_by_other_chain_key', concat(msg(5).slice(0, len(5) - 64),
    G.signph(ctx.other.signSk, concat(G.L_GROUP_MSG, msg(5).slice(0, len(5) - 64)))), 'VEIL_ESIG');
  R.raw('signed_ed25519_not_prehashed', concat(msg(5).slice(0, len(5) - 64),
    V.sign(ctx.signSk, concat(G.L_GROUP_MSG, msg(5).slice(0, len(5) - 64)))), 'VEIL_ESIG');
  R.raw('iteration_max_signed', R.craft(0xffffffff), 'VEIL_ELIMIT');
  R.deliver(6); // stores 5
  R.deliver(12, 'VEIL_ESKIP'); // 1008 - 7 = 1001 keys
  R.deliver(11); // 1007: skips exactly 1000 (7..1006); keeps the newest 200 of {5, 7..1006}
  R.deliver(5, 'VEIL_EREPLAY'); // evicted
  R.deliver(7, 'VEIL_EREPLAY'); // 806, evicted
  R.deliver(8); // 807, oldest kept
  R.deliver(12); // 1008
  R.deliver(13); // 1011: stores 1009, 1010; evicts 808
  R.deliver(9, 'VEIL_EREPLAY'); // 808, evicted
  R.deliver(10); // 809
  R.deliver(13, 'VEIL_EREPLAY');
  const next = R.state.iteration;
  R.raw('next_iteration_wrong_body_key_signed', R.craft(next), 'VEIL_EAUTH');
  R.raw('next_iteration_bad_padding_signed', R.craft(next, { mk: mkAt(ctx.ck0, next), padded: concat(V.pad(ascii('x')).slice(0, 63), u8(1)) }), 'VEIL_EPAD');
  R.raw('skip_1001_signed', R.craft(next + 1001), 'VEIL_ESKIP');
  assert(R.state.iteration === 1012 && R.state.skipped.length === 199, 'receiver end state');
  // A receiving chain cannot send; nothing is drawn.
  expectError(() => G.groupEncrypt(R.state, new Uint8Array(0), () => { throw new Error('drew'); }), 'VEIL_ESTATE', 'receiver encrypt');
  R.events.push({ op: 'encrypt', plaintext: '', error: 'VEIL_ESTATE', iteration: R.state.iteration, stored: R.state.skipped.length });

  const L = new Receiver(ctx, ctx.lateDistribution);
  assert(L.state.iteration === 3, 'late iteration');
  L.deliver(2, 'VEIL_EREPLAY');
  L.deliver(0, 'VEIL_EREPLAY');
  L.deliver(4); // stores 3
  L.deliver(3);
  L.deliver(3, 'VEIL_EREPLAY');
  L.deliver(5);

  return {
    receive: { distribution: hex(ctx.distribution), events: R.events },
    late_receive: { distribution: hex(ctx.lateDistribution), events: L.events },
  };
}

function invalidDistributions(ctx) {
  const d = ctx.distribution;
  const D = (f) => { const c = d.slice(); f(c); return c; };
  return [
    ['empty', new Uint8Array(0), 'VEIL_EINVAL'],
    ['truncated_108', d.slice(0, 108), 'VEIL_EINVAL'],
    ['extended_110', concat(d, u8(0)), 'VEIL_EINVAL'],
    ['version_0', D((c) => { c[0] = 0; }), 'VEIL_EVERSION'],
    ['version_2', D((c) => { c[0] = 2; }), 'VEIL_EVERSION'],
    ['ck_all_zero', D((c) => { c.fill(0, 45, 77); }), 'VEIL_EINVAL'],
  ].map(([name, b, error]) => {
    expectError(() => G.importDistribution(b), error, `distribution ${name}`);
    return { name, distribution: hex(b), error };
  });
}

// ---------------------------------------------------------------------------
// Roster (SPEC 8.2)

function rosterVectors() {
  const groupId = det('group/roster/group_id', 32);
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'mallory'];
  const ids = {};
  for (const name of names) {
    const seed = det(`group/roster/identity/${name}/2`, 32); // "/2": key order differs from name order
    ids[name] = { name, seed, ...V.ed25519Keypair(seed) };
  }
  const sorted = (members) => members.map(([n, role]) => ({ pk: ids[n].pk, role, name: n }))
    .sort((a, b) => G.compareKeys(a.pk, b.pk));

  // A record: fields, author name (whose key is in the author field), and
  // optionally another signer.
  const make = ({ rev, prevHash, epoch, members, author, signer, gid = groupId, raw }) => {
    const ms = raw || sorted(members);
    const body = G.rosterBody({ groupId: gid, rev, prevHash, epoch, members: ms, author: ids[author].pk });
    return { enc: G.signRoster(body, ids[signer || author].sk), ms };
  };

  const revisions = [];
  const encs = [];
  const add = (name, fields) => {
    const { enc, ms } = make(fields);
    if (revisions.length === 0) G.verifyGenesis(enc); else G.verifyNext(encs[encs.length - 1], enc);
    const h = G.rosterHash(enc);
    revisions.push({
      name, rev: Number(fields.rev), prev_hash: hex(fields.prevHash), epoch: fields.epoch,
      members: ms.map((m) => ({ name: m.name, role: m.role })), author: fields.author,
      encoding: hex(enc), hash: hex(h), result: 'ok',
    });
    encs.push(enc);
    return { enc, h, fields };
  };
  const Z = V.ZERO32;
  const r1 = add('genesis', { rev: 1, prevHash: Z, epoch: 0, members: [['alice', 2], ['bob', 1]], author: 'alice' });
  const r2 = add('add_carol_and_dave', { rev: 2, prevHash: r1.h, epoch: 0, members: [['alice', 2], ['bob', 1], ['carol', 1], ['dave', 1]], author: 'alice' });
  const r3 = add('promote_carol', { rev: 3, prevHash: r2.h, epoch: 0, members: [['alice', 2], ['bob', 1], ['carol', 2], ['dave', 1]], author: 'alice' });
  const r4 = add('carol_removes_bob', { rev: 4, prevHash: r3.h, epoch: 1, members: [['alice', 2], ['carol', 2], ['dave', 1]], author: 'carol' });
  const r5 = add('dave_leaves', { rev: 5, prevHash: r4.h, epoch: 2, members: [['alice', 2], ['carol', 2]], author: 'dave' });
  assert(revisions.every((r, i) => r.encoding.length === 2 * (175 + 33 * r.members.length) && (i === 0 || r.prev_hash === revisions[i - 1].hash)), 'roster sizes and links');
  // Members really are in key order, which differs from name order here.
  assert(revisions.slice(0, 4).every((r) => r.members.map((m) => m.name).join() !== r.members.map((m) => m.name).sort().join()), 'sorting matters');

  // --- successors that must be refused, each with one defect.
  const base2 = { rev: 2, prevHash: r1.h, epoch: 0, members: [['alice', 2], ['bob', 1], ['carol', 1], ['dave', 1]], author: 'alice' };
  const base4 = { rev: 4, prevHash: r3.h, epoch: 1, members: [['alice', 2], ['carol', 2], ['dave', 1]], author: 'carol' };
  const base5 = { rev: 5, prevHash: r4.h, epoch: 2, members: [['alice', 2], ['carol', 2]], author: 'dave' };
  const flipped = (b, o) => { const c = b.slice(); c[o] ^= 0x01; return c; };
  const encOf = (f) => make(f).enc;
  const invalidNext = [
    ['wrong_prev_hash', 0, encOf({ ...base2, prevHash: flipped(r1.h, 31) }), 'VEIL_EINVAL'],
    ['prev_hash_zero', 0, encOf({ ...base2, prevHash: Z }), 'VEIL_EINVAL'],
    ['rev_skipped', 0, encOf({ ...base2, rev: 3 }), 'VEIL_EINVAL'],
    ['rev_repeated', 0, encOf({ ...base2, rev: 1 }), 'VEIL_EINVAL'],
    ['different_group_id', 0, encOf({ ...base2, gid: det('group/roster/other_group_id', 32) }), 'VEIL_EINVAL'],
    ['epoch_bump_without_removal', 0, encOf({ ...base2, epoch: 1 }), 'VEIL_EINVAL'],
    ['plain_member_adds', 0, encOf({ ...base2, author: 'bob' }), 'VEIL_ESTATE'],
    ['plain_member_promotes_self', 0, encOf({ ...base2, members: [['alice', 2], ['bob', 2]], author: 'bob' }), 'VEIL_ESTATE'],
    ['outsider_signs', 0, encOf({ ...base2, author: 'mallory' }), 'VEIL_ESTATE'],
    ['bad_signature', 0, flipped(r2.enc, r2.enc.length - 50), 'VEIL_ESIG'],
    ['author_field_not_signer', 0, encOf({ ...base2, signer: 'bob' }), 'VEIL_ESIG'],
    ['signed_ed25519_not_prehashed', 0, concat(r2.enc.slice(0, r2.enc.length - 64),
      V.sign(ids.alice.sk, concat(G.L_ROSTER, r2.enc.slice(0, r2.enc.length - 64)))), 'VEIL_ESIG'],
    ['removal_without_epoch_bump', 2, encOf({ ...base4, epoch: 0 }), 'VEIL_EINVAL'],
    ['removal_epoch_plus_2', 2, encOf({ ...base4, epoch: 2 }), 'VEIL_EINVAL'],
    ['plain_member_removes_other', 2, encOf({ ...base4, members: [['alice', 2], ['carol', 2], ['dave', 1]], author: 'dave' }), 'VEIL_ESTATE'],
    ['leave_without_epoch_bump', 3, encOf({ ...base5, epoch: 1 }), 'VEIL_EINVAL'],
    ['leave_and_add', 3, encOf({ ...base5, members: [['alice', 2], ['carol', 2], ['mallory', 1]] }), 'VEIL_ESTATE'],
    ['leave_and_demote', 3, encOf({ ...base5, members: [['alice', 2], ['carol', 1]] }), 'VEIL_ESTATE'],
    ['removed_member_signs', 3, encOf({ ...base5, epoch: 1, members: [['alice', 2], ['bob', 1], ['carol', 2], ['dave', 1]], author: 'bob' }), 'VEIL_ESTATE'],
  ].map(([name, current, enc, error]) => {
    expectError(() => G.verifyNext(encs[current], enc), error, `roster next ${name}`);
    return { name, current, record: hex(enc), error };
  });

  // --- encodings that must be refused. Each is a re-signed variant of
  // revision 2 (successor of revisions[0]), so verification relative to
  // `current` gives the same error as decoding alone.
  const M2 = sorted(base2.members);
  const rawEnc = (ms, over = {}) => G.signRoster(G.rosterBody({
    groupId, rev: over.rev ?? 2, prevHash: r1.h, epoch: 0, members: ms, author: ids.alice.pk, count: over.count, version: over.version,
  }), ids.alice.sk);
  const swap = (ms, i, j) => { const c = ms.slice(); [c[i], c[j]] = [c[j], c[i]]; return c; };
  const big = [];
  for (let i = 0; i < 257; i++) {
    const seed = det(`group/roster/bulk/${i}`, 32);
    big.push({ pk: V.ed25519Keypair(seed).pk, role: 1 });
  }
  const big257 = [...big.slice(0, 256), { pk: ids.alice.pk, role: 2 }].sort((a, b) => G.compareKeys(a.pk, b.pk));
  const invalidEncodings = [
    ['empty', new Uint8Array(0), 'VEIL_EINVAL'],
    ['unsorted_members', rawEnc(swap(M2, 1, 2)), 'VEIL_EINVAL'],
    ['duplicate_member', rawEnc([...M2.slice(0, 2), M2[1], ...M2.slice(2)]), 'VEIL_EINVAL'],
    ['role_3', rawEnc(M2.map((m, i) => (i === M2.findIndex((x) => x.role === 1) ? { ...m, role: 3 } : m))), 'VEIL_EINVAL'],
    ['role_0', rawEnc(M2.map((m, i) => (i === M2.findIndex((x) => x.role === 1) ? { ...m, role: 0 } : m))), 'VEIL_EINVAL'],
    ['count_0', rawEnc([]), 'VEIL_EINVAL'],
    ['no_admin', rawEnc(M2.map((m) => ({ ...m, role: 1 }))), 'VEIL_EINVAL'],
    ['rev_0', rawEnc(M2, { rev: 0 }), 'VEIL_EINVAL'],
    ['count_larger_than_members', rawEnc(M2, { count: M2.length + 1 }), 'VEIL_EINVAL'],
    ['count_smaller_than_members', rawEnc(M2, { count: M2.length - 1 }), 'VEIL_EINVAL'],
    ['truncated', r2.enc.slice(0, r2.enc.length - 1), 'VEIL_EINVAL'],
    ['truncated_78', r2.enc.slice(0, 78), 'VEIL_EINVAL'],
    ['extended', concat(r2.enc, u8(0)), 'VEIL_EINVAL'],
    ['version_2', rawEnc(M2, { version: 2 }), 'VEIL_EVERSION'],
    ['version_0', rawEnc(M2, { version: 0 }), 'VEIL_EVERSION'],
    ['count_257', rawEnc(big257), 'VEIL_EINVAL'],
  ].map(([name, enc, error]) => {
    expectError(() => G.decodeRoster(enc), error, `roster encoding ${name}`);
    expectError(() => G.verifyNext(encs[0], enc), error, `roster encoding ${name} as successor`);
    return { name, current: 0, record: hex(enc), error };
  });
  // The unsorted case really is only unsorted (sorted it is valid).
  G.verifyNext(encs[0], rawEnc(M2));

  // --- genesis records that must be refused.
  const g = { rev: 1, prevHash: Z, epoch: 0, members: [['alice', 2], ['bob', 1]], author: 'alice' };
  const invalidGenesis = [
    ['prev_hash_not_zero', encOf({ ...g, prevHash: det('group/roster/nonzero', 32) }), 'VEIL_EINVAL'],
    ['epoch_1', encOf({ ...g, epoch: 1 }), 'VEIL_EINVAL'],
    ['rev_2', encOf({ ...g, rev: 2 }), 'VEIL_EINVAL'],
    ['author_plain_member', encOf({ ...g, author: 'bob' }), 'VEIL_EINVAL'],
    ['author_not_member', encOf({ ...g, author: 'mallory' }), 'VEIL_EINVAL'],
    ['bad_signature', flipped(r1.enc, r1.enc.length - 1), 'VEIL_ESIG'],
    ['author_field_not_signer', encOf({ ...g, signer: 'bob' }), 'VEIL_ESIG'],
  ].map(([name, enc, error]) => {
    expectError(() => G.verifyGenesis(enc), error, `genesis ${name}`);
    return { name, record: hex(enc), error };
  });

  // --- the largest roster: a genesis with 256 members.
  const big256 = [...big.slice(0, 255), { pk: ids.alice.pk, role: 2 }].sort((a, b) => G.compareKeys(a.pk, b.pk));
  const g256 = G.signRoster(G.rosterBody({ groupId, rev: 1, prevHash: Z, epoch: 0, members: big256, author: ids.alice.pk }), ids.alice.sk);
  G.verifyGenesis(g256);
  assert(g256.length === 175 + 33 * 256, 'count 256 size');

  // --- two valid successors of revision 5: alice adds erin, carol adds frank.
  const cur = revisions.length - 1;
  const cands = [
    ['alice_adds_erin', { rev: 6, prevHash: r5.h, epoch: 2, members: [['alice', 2], ['carol', 2], ['erin', 1]], author: 'alice' }],
    ['carol_adds_frank', { rev: 6, prevHash: r5.h, epoch: 2, members: [['alice', 2], ['carol', 2], ['frank', 1]], author: 'carol' }],
  ].map(([name, f]) => {
    const enc = encOf(f);
    G.verifyNext(encs[cur], enc);
    return { name, author: f.author, record: hex(enc), hash: hex(G.rosterHash(enc)) };
  });
  const winner = G.conflictWinner(unhex(cands[0].record), unhex(cands[1].record));
  assert((cands[winner].hash < cands[1 - winner].hash), 'winner has the smaller hash');

  return {
    group_id: hex(groupId),
    identities: names.map((n) => ({ name: n, seed: hex(ids[n].seed), pk: hex(ids[n].pk) })),
    revisions,
    invalid_genesis: invalidGenesis,
    invalid_next: invalidNext,
    invalid_encodings: invalidEncodings,
    valid_genesis: [{ name: 'count_256', record: hex(g256), hash: hex(G.rosterHash(g256)), result: 'ok' }],
    conflict: { current: cur, candidates: cands, winner },
  };
}

export function groupVectors() {
  checkEd25519ph();
  const ctx = senderKeyVectors();
  const rv = receiveVectors(ctx);
  return {
    sender_key: ctx.sk,
    receive: rv.receive,
    late_receive: rv.late_receive,
    invalid_distributions: invalidDistributions(ctx),
    roster: rosterVectors(),
  };
}
