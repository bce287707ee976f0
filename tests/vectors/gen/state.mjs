// SPDX-License-Identifier: ISC
//
// Serialized state (SPEC 10.2 keyring, 10.3 session) and the keyring
// operations of SPEC 3.2, written from SPEC.md alone. The session format
// serializes the ratchet state of veil.mjs (SPEC 6.2) unchanged.

import * as V from './veil.mjs';
import { concat, equal, isZero, u8, u16, u32, rdU32, zeros, ZERO32 } from './veil.mjs';

const fail = (name, detail) => { throw new V.VeilError(name, detail); };

export function u64(n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('u64');
  return concat(u32(Math.floor(n / 2 ** 32)), u32(n % 2 ** 32));
}

// A bounds-checked reader: running out of octets is VEIL_ECORRUPT.
class Reader {
  constructor(b) { this.b = b; this.o = 0; }
  take(n) {
    if (this.o + n > this.b.length) fail('VEIL_ECORRUPT', 'missing octets');
    const out = this.b.slice(this.o, this.o + n);
    this.o += n;
    return out;
  }
  u8() { return this.take(1)[0]; }
  u16() { const b = this.take(2); return (b[0] << 8) | b[1]; }
  u32() { return rdU32(this.take(4), 0); }
  u64() {
    const hi = this.u32();
    const lo = this.u32();
    if (hi >= 2 ** 21) fail('VEIL_ECORRUPT', 'u64 beyond 2^53 (generator limit)');
    return hi * 2 ** 32 + lo;
  }
  end() { if (this.o !== this.b.length) fail('VEIL_ECORRUPT', 'trailing octets'); }
}

// ---------------------------------------------------------------------------
// Keyring (SPEC 3.2, 10.2)

export const MAX_OPKS = 200;

// A keyring: {seed, sig, dh, idsig, nextSpkId, nextOpkId,
//             spk: {id, sk, pk, sig, created}, prev: spk | null,
//             opks: [{id, sk, pk}]}.
// A new keyring draws the identity (seed, then IKd.sk), then the secret of
// signed prekey 1.
export function newKeyring(rng, created) {
  const identity = V.newIdentity(rng);
  const spk = V.newSignedPrekey(identity, 1, rng);
  return {
    seed: identity.seed, sig: identity.sig, dh: identity.dh, idsig: identity.idsig,
    nextSpkId: 2, nextOpkId: 1,
    spk: { ...spk, created }, prev: null, opks: [],
  };
}

const identityOf = (kr) => ({ seed: kr.seed, sig: kr.sig, dh: kr.dh, idsig: kr.idsig });

// One draw per one-time prekey, in id order; ids continue the counter.
export function addOneTimePrekeys(kr, count, rng) {
  if (kr.opks.length + count > MAX_OPKS) fail('VEIL_ELIMIT', 'too many one-time prekeys');
  const out = structuredClone(kr);
  for (let i = 0; i < count; i++) out.opks.push(V.newOneTimePrekey(out.nextOpkId++, rng));
  return out;
}

// One draw; the current signed prekey becomes the previous one, and the
// previous one is wiped.
export function rotateSignedPrekey(kr, rng, created) {
  const out = structuredClone(kr);
  const spk = V.newSignedPrekey(identityOf(out), out.nextSpkId++, rng);
  out.prev = out.spk;
  out.spk = { ...spk, created };
  return out;
}

// A one-time prekey is deleted once used (SPEC 5.5 step 6).
export function removeOneTimePrekey(kr, id) {
  const out = structuredClone(kr);
  const i = out.opks.findIndex((o) => o.id === id);
  if (i < 0) fail('VEIL_ENOPREKEY', 'no such one-time prekey');
  out.opks.splice(i, 1);
  return out;
}

const spkBytes = (s) => concat(u32(s.id), s.sk, s.sig, u64(s.created));

export function serializeKeyring(kr) {
  return concat(
    u8(1), kr.seed, kr.dh.sk, kr.idsig, u32(kr.nextSpkId), u32(kr.nextOpkId),
    spkBytes(kr.spk),
    u8(kr.prev ? 1 : 0), kr.prev ? spkBytes(kr.prev) : new Uint8Array(0),
    u16(kr.opks.length),
    ...kr.opks.map((o) => concat(u32(o.id), o.sk)),
  );
}

function readSpk(r, iksPk) {
  const id = r.u32();
  const sk = r.take(32);
  const sig = r.take(64);
  const created = r.u64();
  const pk = V.x25519Base(sk);
  if (!V.verify(iksPk, V.spkMessage(id, pk), sig)) fail('VEIL_ECORRUPT', 'spk_sig does not verify');
  return { id, sk, pk, sig, created };
}

// SPEC 10.2: every listed defect is VEIL_ECORRUPT, a version other than 1
// VEIL_EVERSION (SPEC 1).
export function loadKeyring(b) {
  const r = new Reader(b);
  if (r.u8() !== 1) fail('VEIL_EVERSION', 'keyring version');
  const seed = r.take(32);
  const sig = V.ed25519Keypair(seed);
  const dh = V.dhKeypair(r.take(32));
  const idsig = r.take(64);
  if (!equal(idsig, V.sign(sig.sk, V.idkMessage(dh.pk)))) fail('VEIL_ECORRUPT', 'idsig differs from the re-derived one');
  const nextSpkId = r.u32();
  const nextOpkId = r.u32();
  const spk = readSpk(r, sig.pk);
  if (spk.id >= nextSpkId) fail('VEIL_ECORRUPT', 'spk_id >= next_spk_id');
  const hasPrev = r.u8();
  if (hasPrev > 1) fail('VEIL_ECORRUPT', 'has_prev');
  const prev = hasPrev ? readSpk(r, sig.pk) : null;
  const count = r.u16();
  if (count > MAX_OPKS) fail('VEIL_ECORRUPT', 'opk_count');
  const opks = [];
  for (let i = 0; i < count; i++) {
    const id = r.u32();
    const kp = V.dhKeypair(r.take(32));
    if (i > 0 && id <= opks[i - 1].id) fail('VEIL_ECORRUPT', 'opk ids not strictly increasing');
    if (id >= nextOpkId) fail('VEIL_ECORRUPT', 'opk id >= next_opk_id');
    opks.push({ id, sk: kp.sk, pk: kp.pk });
  }
  r.end();
  return { seed, sig, dh, idsig, nextSpkId, nextOpkId, spk, prev, opks };
}

// The public view of a keyring, as the vectors list it.
export function keyringPublic(kr) {
  const spk = (s) => ({ id: s.id, pk: V.hex(s.pk), sig: V.hex(s.sig), created: s.created });
  return {
    iks_pk: V.hex(kr.sig.pk), ikd_pk: V.hex(kr.dh.pk), idsig: V.hex(kr.idsig),
    next_spk_id: kr.nextSpkId, next_opk_id: kr.nextOpkId,
    spk: spk(kr.spk), prev_spk: kr.prev ? spk(kr.prev) : null,
    opks: kr.opks.map((o) => ({ id: o.id, pk: V.hex(o.pk) })),
  };
}

// A valid Ed25519 signature that is not the deterministic one: the nonce
// scalar r is given instead of being derived from the key and message.
// S = r + H(R || A || M) * a mod L.
export function ed25519SignWithNonce(seed, m, rSeed) {
  const s = V.sodium;
  const kp = V.ed25519Keypair(seed);
  const h = V.sha512(seed);
  const a = h.slice(0, 32);
  a[0] &= 248; a[31] &= 127; a[31] |= 64;
  const aRed = s.crypto_core_ed25519_scalar_reduce(concat(a, zeros(32)));
  const r = s.crypto_core_ed25519_scalar_reduce(V.sha512(rSeed));
  const R = s.crypto_scalarmult_ed25519_base_noclamp(r);
  const k = s.crypto_core_ed25519_scalar_reduce(V.sha512(concat(R, kp.pk, m)));
  const S = s.crypto_core_ed25519_scalar_add(r, s.crypto_core_ed25519_scalar_mul(k, aRed));
  const sig = concat(R, S);
  if (!V.verify(kp.pk, m, sig)) throw new Error('ed25519SignWithNonce: does not verify');
  if (equal(sig, V.sign(kp.sk, m))) throw new Error('ed25519SignWithNonce: equals the deterministic signature');
  return sig;
}

// ---------------------------------------------------------------------------
// Session (SPEC 10.3)

export const FLAG = { DHRr: 0x01, CKs: 0x02, CKr: 0x04, HKs: 0x08, HKr: 0x10, pending: 0x20 };
export const SESSION_FIXED = 630; // octets before the skipped entries
export const OFF = {
  version: 0, flags: 1, DHRs: 2, DHRr: 34, RK: 66, CKs: 98, CKr: 130, HKs: 162, HKr: 194,
  NHKs: 226, NHKr: 258, Ns: 290, Nr: 294, PN: 298, AD: 302, slots: 430, count: 628, entries: 630,
};
export const SLOT_SIZE = 33;
export const ENTRY_SIZE = 37;
const OPTIONAL = ['DHRr', 'CKs', 'CKr', 'HKs', 'HKr'];

export function serializeSession(st) {
  let flags = 0;
  for (const f of OPTIONAL) if (st[f]) flags |= FLAG[f];
  if (st.pending) flags |= FLAG.pending;
  const opt = (f) => (st[f] ? st[f] : ZERO32);
  if (st.AD.length !== 128) throw new Error('AD length');
  return concat(
    u8(1), u8(flags), st.DHRs.sk, opt('DHRr'), st.RK,
    opt('CKs'), opt('CKr'), opt('HKs'), opt('HKr'), st.NHKs, st.NHKr,
    u32(st.Ns), u32(st.Nr), u32(st.PN), st.AD,
    ...st.skipped.slots.map((s) => concat(u8(s.used), s.hk)),
    u16(st.skipped.entries.length),
    ...st.skipped.entries.map((e) => concat(u8(e.slot), u32(e.n), e.mk)),
  );
}

// SPEC 10.3: every listed defect is VEIL_ECORRUPT, a version other than 1
// VEIL_EVERSION (SPEC 1). Returns a state of the shape veil.mjs uses.
export function loadSession(b) {
  const r = new Reader(b);
  if (r.u8() !== 1) fail('VEIL_EVERSION', 'session version');
  const flags = r.u8();
  if (flags & ~0x3f) fail('VEIL_ECORRUPT', 'unknown flag bits');
  const has = (f) => (flags & FLAG[f]) !== 0;
  if (has('CKr') !== has('HKr')) fail('VEIL_ECORRUPT', 'CKr without HKr or the reverse');
  if (has('CKr') && !has('DHRr')) fail('VEIL_ECORRUPT', 'CKr without DHRr');
  if (has('CKs') && !(has('HKs') && has('DHRr'))) fail('VEIL_ECORRUPT', 'CKs without HKs and DHRr');
  if (has('pending') && !has('CKr')) fail('VEIL_ECORRUPT', 'pending without CKr');
  const dhrsSk = r.take(32);
  const field = {};
  field.DHRr = r.take(32);
  const RK = r.take(32);
  for (const f of ['CKs', 'CKr', 'HKs', 'HKr']) field[f] = r.take(32);
  for (const f of OPTIONAL) if (!has(f) && !isZero(field[f])) fail('VEIL_ECORRUPT', `${f} non-zero with its flag clear`);
  const NHKs = r.take(32);
  const NHKr = r.take(32);
  const Ns = r.u32();
  const Nr = r.u32();
  const PN = r.u32();
  const AD = r.take(128);
  const slots = [];
  for (let i = 0; i < V.SLOTS; i++) {
    const used = r.u8();
    const hk = r.take(32);
    if (used > 1) fail('VEIL_ECORRUPT', 'slot used octet');
    if (!used && !isZero(hk)) fail('VEIL_ECORRUPT', 'free slot with a header key');
    slots.push({ used, hk });
  }
  const count = r.u16();
  if (count > V.MAX_SKIPPED) fail('VEIL_ECORRUPT', 'skipped_count');
  const entries = [];
  const seen = new Set();
  for (let i = 0; i < count; i++) {
    const slot = r.u8();
    const n = r.u32();
    const mk = r.take(32);
    if (slot >= V.SLOTS) fail('VEIL_ECORRUPT', 'slot index above 5');
    if (!slots[slot].used) fail('VEIL_ECORRUPT', 'entry names a free slot');
    const key = `${slot}/${n}`;
    if (seen.has(key)) fail('VEIL_ECORRUPT', 'duplicate (slot, N)');
    seen.add(key);
    entries.push({ slot, n, mk });
  }
  r.end();
  for (let i = 0; i < V.SLOTS; i++) {
    if (slots[i].used && !entries.some((e) => e.slot === i)) fail('VEIL_ECORRUPT', 'used slot without entries');
  }
  const opt = (f) => (has(f) ? field[f] : null);
  return {
    DHRs: V.dhKeypair(dhrsSk), DHRr: opt('DHRr'), RK, CKs: opt('CKs'), CKr: opt('CKr'),
    HKs: opt('HKs'), HKr: opt('HKr'), NHKs, NHKr,
    Ns, Nr, PN, AD, pending: has('pending') ? 1 : 0, skipped: { entries, slots },
  };
}
