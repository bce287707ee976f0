// SPDX-License-Identifier: ISC
//
// SPEC.md section 8 (groups: sender keys and the signed roster), written from
// the specification alone, on libsodium's npm build. Like veil.mjs it exists
// only to generate test vectors.

import {
  sodium, VeilError, hex, ascii, concat, equal, isZero, u8, u16, u32, rdU32,
  ed25519Keypair, hmac, blake2b, aeadEnc, aeadDec, pad, unpad, MAX_PLAINTEXT, ZERO32,
} from './veil.mjs';

const fail = (name, detail) => { throw new VeilError(name, detail); };
const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------------------
// Ed25519ph (SPEC 8: SIGNPH / VERIFYPH), libsodium's multi-part API.

export function signph(sk, m) {
  const st = sodium.crypto_sign_init();
  sodium.crypto_sign_update(st, m);
  return sodium.crypto_sign_final_create(st, sk);
}
export function verifyph(pk, m, sig) {
  try {
    const st = sodium.crypto_sign_init();
    sodium.crypto_sign_update(st, m);
    return sodium.crypto_sign_final_verify(st, sig, pk) === true;
  } catch (e) {
    return false;
  }
}

export function u64(n) {
  const v = BigInt(n);
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError('u64');
  const out = new Uint8Array(8);
  for (let i = 0; i < 8; i++) out[i] = Number((v >> BigInt(56 - 8 * i)) & 0xffn);
  return out;
}
export const rdU64 = (b, o) => {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(b[o + i]);
  return v;
};
const rdU16 = (b, o) => (b[o] << 8) | b[o + 1];

// ---------------------------------------------------------------------------
// Sender keys (SPEC 8.1)

export const L_GROUP_MSG = ascii('veil-group-msg-v1');
export const DIST_LEN = 109;
export const GMSG_HEADER = 69;
export const GMSG_OVERHEAD = 149;
export const GMSG_MIN = 149 + 64;
export const GMSG_MAX = 149 + 67584;
export const GROUP_MAX_SKIP = 1000;
export const GROUP_MAX_STORED = 200;

export function senderStep(ck) {
  return { mk: hmac(ck, u8(0x03)), ck: hmac(ck, u8(0x04)) };
}

// A sending chain: draws key_id (4, big-endian), CK (32), seed (32).
export function newSenderKey(groupId, epoch, rng) {
  if (groupId.length !== 32) fail('VEIL_EINVAL', 'group_id size');
  u32(epoch);
  const keyId = rdU32(rng(4), 0);
  const ck = rng(32);
  const seed = rng(32);
  const kp = ed25519Keypair(seed);
  return {
    sending: true, groupId: groupId.slice(), epoch, keyId, iteration: 0, ck,
    seed, signPk: kp.pk, signSk: kp.sk, skipped: [],
  };
}

export function encodeDistribution(ch) {
  return concat(u8(1), ch.groupId, u32(ch.epoch), u32(ch.keyId), u32(ch.iteration), ch.ck, ch.signPk);
}

// A receiving chain from a distribution message.
export function importDistribution(d) {
  if (d.length !== DIST_LEN) fail('VEIL_EINVAL', 'distribution length');
  if (d[0] !== 1) fail('VEIL_EVERSION', 'distribution version');
  const ck = d.slice(45, 77);
  if (isZero(ck)) fail('VEIL_EINVAL', 'all-zero CK');
  return {
    sending: false, groupId: d.slice(1, 33), epoch: rdU32(d, 33), keyId: rdU32(d, 37),
    iteration: rdU32(d, 41), ck, signPk: d.slice(77, 109), signSk: null, skipped: [],
  };
}

export function groupHeader(ch, n, nonce) {
  return concat(u8(1), ch.groupId, u32(ch.epoch), u32(ch.keyId), u32(n), nonce);
}

// Assembles and signs a group message from its parts (also used to build
// deliberately defective messages).
export function buildGroupMessage(header, mk, padded, signSk) {
  const nonce = header.slice(45, 69);
  const body = aeadEnc(mk, nonce, header, padded);
  const signed = concat(header, body);
  return concat(signed, signph(signSk, concat(L_GROUP_MSG, signed)));
}

const cloneChain = (ch) => ({ ...ch, skipped: ch.skipped.map((e) => ({ ...e })) });

export function groupEncrypt(ch, pt, rng) {
  if (!ch.sending) fail('VEIL_ESTATE', 'receiving chain');
  if (ch.iteration === U32_MAX) fail('VEIL_ELIMIT', 'iteration');
  if (pt.length > MAX_PLAINTEXT) fail('VEIL_EINVAL', 'plaintext too long');
  const n = ch.iteration;
  const s = senderStep(ch.ck);
  const nonce = rng(24);
  const header = groupHeader(ch, n, nonce);
  const message = buildGroupMessage(header, s.mk, pad(pt), ch.signSk);
  const st = cloneChain(ch);
  st.ck = s.ck;
  st.iteration = n + 1;
  return { state: st, message, mk: s.mk, nonce, n };
}

// Group message decryption (SPEC 8.1, steps 1-5). The given chain is never
// modified; a new state is returned on success.
export function groupDecrypt(ch, m) {
  // 1.
  if (m.length < GMSG_MIN || m.length > GMSG_MAX) fail('VEIL_EINVAL', 'length');
  if (m[0] !== 1) fail('VEIL_EVERSION', 'version');
  if (!equal(m.slice(1, 33), ch.groupId)) fail('VEIL_EINVAL', 'group_id');
  if (rdU32(m, 33) !== ch.epoch) fail('VEIL_EINVAL', 'epoch');
  if (rdU32(m, 37) !== ch.keyId) fail('VEIL_EINVAL', 'key_id');
  // 2.
  const sig = m.slice(m.length - 64);
  if (!verifyph(ch.signPk, concat(L_GROUP_MSG, m.slice(0, m.length - 64)), sig)) fail('VEIL_ESIG', 'signature');
  // 3.
  const n = rdU32(m, 41);
  let mk;
  let storedIdx = -1;
  let derived = null;
  if (n < ch.iteration) {
    storedIdx = ch.skipped.findIndex((e) => e.n === n);
    if (storedIdx < 0) fail('VEIL_EREPLAY', 'key not stored');
    mk = ch.skipped[storedIdx].mk;
  } else {
    if (n === U32_MAX) fail('VEIL_ELIMIT', 'N = 2^32-1');
    if (n - ch.iteration > GROUP_MAX_SKIP) fail('VEIL_ESKIP', 'too many skipped');
    let ck = ch.ck;
    const skipped = [];
    for (let i = ch.iteration; i <= n; i++) {
      const s = senderStep(ck);
      if (i < n) skipped.push({ n: i, mk: s.mk }); else mk = s.mk;
      ck = s.ck;
    }
    derived = { skipped, ck };
  }
  // 4.
  const nonce = m.slice(45, 69);
  const padded = aeadDec(mk, nonce, m.slice(0, GMSG_HEADER), m.slice(GMSG_HEADER, m.length - 64));
  if (!padded) fail('VEIL_EAUTH', 'body');
  const plaintext = unpad(padded);
  // 5.
  const st = cloneChain(ch);
  if (storedIdx >= 0) {
    st.skipped.splice(storedIdx, 1);
  } else {
    for (const e of derived.skipped) {
      if (st.skipped.length === GROUP_MAX_STORED) st.skipped.shift();
      st.skipped.push(e);
    }
    st.ck = derived.ck;
    st.iteration = n + 1;
  }
  return { state: st, plaintext, n };
}

export function chainSnapshot(ch) {
  return JSON.stringify(ch, (k, v) => (v instanceof Uint8Array ? hex(v) : v));
}

// ---------------------------------------------------------------------------
// Roster (SPEC 8.2)

export const L_ROSTER = ascii('veil-roster-v1');
export const L_ROSTER_HASH = ascii('veil-roster-hash-v1');
export const ROLE_MEMBER = 1;
export const ROLE_ADMIN = 2;

export const compareKeys = (a, b) => {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
};

// Encodes the unsigned part of a revision. Members are taken in the given
// order (the generator also builds invalid encodings); `fields.count`
// overrides the count octets.
export function rosterBody({ version = 1, groupId, rev, prevHash, epoch, members, author, count }) {
  return concat(
    u8(version), groupId, u64(rev), prevHash, u32(epoch),
    u16(count === undefined ? members.length : count),
    ...members.map((mb) => concat(mb.pk, u8(mb.role))),
    author,
  );
}

export function signRoster(body, signSk) {
  return concat(body, signph(signSk, concat(L_ROSTER, body)));
}

export const rosterHash = (enc) => blake2b(32, concat(L_ROSTER_HASH, enc));

export function decodeRoster(b) {
  if (b.length < 79) fail('VEIL_EINVAL', 'short roster');
  if (b[0] !== 1) fail('VEIL_EVERSION', 'roster version');
  const count = rdU16(b, 77);
  if (count < 1 || count > 256) fail('VEIL_EINVAL', 'count');
  if (b.length !== 175 + 33 * count) fail('VEIL_EINVAL', 'roster length');
  const members = [];
  for (let i = 0; i < count; i++) {
    const o = 79 + 33 * i;
    members.push({ pk: b.slice(o, o + 32), role: b[o + 32] });
  }
  for (let i = 1; i < count; i++) {
    if (compareKeys(members[i - 1].pk, members[i].pk) >= 0) fail('VEIL_EINVAL', 'members unsorted or duplicate');
  }
  if (members.some((mb) => mb.role !== ROLE_MEMBER && mb.role !== ROLE_ADMIN)) fail('VEIL_EINVAL', 'role');
  if (!members.some((mb) => mb.role === ROLE_ADMIN)) fail('VEIL_EINVAL', 'no admin');
  const rev = rdU64(b, 33);
  if (rev < 1n) fail('VEIL_EINVAL', 'rev 0');
  const o = 79 + 33 * count;
  return {
    groupId: b.slice(1, 33), rev, prevHash: b.slice(41, 73), epoch: rdU32(b, 73), members,
    author: b.slice(o, o + 32), signed: b.slice(0, o + 32), sig: b.slice(o + 32, o + 96),
    hash: rosterHash(b),
  };
}

const findMember = (r, pk) => r.members.find((mb) => equal(mb.pk, pk));
const sigOk = (r) => verifyph(r.author, concat(L_ROSTER, r.signed), r.sig);

export function verifyGenesis(b) {
  const r = decodeRoster(b);
  if (r.rev !== 1n) fail('VEIL_EINVAL', 'genesis rev');
  if (!equal(r.prevHash, ZERO32)) fail('VEIL_EINVAL', 'genesis prev_hash');
  if (r.epoch !== 0) fail('VEIL_EINVAL', 'genesis epoch');
  const a = findMember(r, r.author);
  if (!a || a.role !== ROLE_ADMIN) fail('VEIL_EINVAL', 'genesis author not an admin member');
  if (!sigOk(r)) fail('VEIL_ESIG', 'genesis signature');
  return r;
}

// Checks R (encoding `nb`) as the successor of the accepted revision C
// (encoding `cb`), in the order SPEC 8.2 lists the rules.
export function verifyNext(cb, nb) {
  const c = decodeRoster(cb);
  const r = decodeRoster(nb);
  if (!equal(r.groupId, c.groupId)) fail('VEIL_EINVAL', 'group_id');
  if (r.rev !== c.rev + 1n) fail('VEIL_EINVAL', 'rev');
  if (!equal(r.prevHash, c.hash)) fail('VEIL_EINVAL', 'prev_hash');
  const removed = c.members.some((mb) => !findMember(r, mb.pk));
  if (r.epoch !== (removed ? c.epoch + 1 : c.epoch)) fail('VEIL_EINVAL', 'epoch');
  const a = findMember(c, r.author);
  let allowed = false;
  if (a && a.role === ROLE_ADMIN) {
    allowed = true;
  } else if (a) {
    const rest = c.members.filter((mb) => !equal(mb.pk, r.author));
    allowed = rest.length === r.members.length
      && rest.every((mb, i) => equal(mb.pk, r.members[i].pk) && mb.role === r.members[i].role);
  }
  if (!allowed) fail('VEIL_ESTATE', 'author may not make this change');
  if (!sigOk(r)) fail('VEIL_ESIG', 'signature');
  return r;
}

// Two valid successors of the same revision: the one with the smaller H wins.
export function conflictWinner(aEnc, bEnc) {
  const ha = rosterHash(aEnc);
  const hb = rosterHash(bEnc);
  for (let i = 0; i < 32; i++) if (ha[i] !== hb[i]) return ha[i] < hb[i] ? 0 : 1;
  return 0;
}
