// SPDX-License-Identifier: ISC
//
// An implementation of the cryptography of SPEC.md (sections 1-7, 3.4 and
// 10.1), written from the specification alone, on libsodium's npm build. It
// exists to generate test vectors that the C core must reproduce byte for
// byte; it is not used by any product code.

import sodiumModule from 'libsodium-wrappers-sumo';

await sodiumModule.ready;
export const sodium = sodiumModule;

// ---------------------------------------------------------------------------
// Errors (SPEC 11)

export const ERRORS = {
  VEIL_OK: 0,
  VEIL_EINVAL: -1,
  VEIL_ENOSPC: -2,
  VEIL_EAUTH: -3,
  VEIL_ESIG: -4,
  VEIL_EKEY: -5,
  VEIL_EREPLAY: -6,
  VEIL_ESKIP: -7,
  VEIL_EVERSION: -8,
  VEIL_ECORRUPT: -9,
  VEIL_ESTATE: -10,
  VEIL_ELIMIT: -11,
  VEIL_ENOPREKEY: -12,
  VEIL_EPAD: -13,
  VEIL_ENOMEM: -14,
};

export class VeilError extends Error {
  constructor(name, detail) {
    if (!(name in ERRORS)) throw new Error(`unknown error name ${name}`);
    super(detail ? `${name}: ${detail}` : name);
    this.veil = name;
  }
}

const fail = (name, detail) => { throw new VeilError(name, detail); };

// ---------------------------------------------------------------------------
// Byte helpers (SPEC 1)

export const hex = (b) => sodium.to_hex(b);
export const unhex = (h) => (h.length === 0 ? new Uint8Array(0) : sodium.from_hex(h));
export const ascii = (s) => new TextEncoder().encode(s);

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function u8(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new RangeError('u8');
  return Uint8Array.of(n);
}
export function u16(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError('u16');
  return Uint8Array.of(n >>> 8, n & 0xff);
}
export function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError('u32');
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}
export const rdU32 = (b, o) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
export const isZero = (b) => b.every((x) => x === 0);
export const zeros = (n) => new Uint8Array(n);
export const ZERO32 = zeros(32);
export const FF32 = new Uint8Array(32).fill(0xff);

// Small-order Curve25519 points (u-coordinates), for negative tests.
export const SMALL_ORDER = {
  zero: new Uint8Array(32),
  order8: sodium.from_hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
};

// ---------------------------------------------------------------------------
// Primitives (SPEC 3)

export function x25519(sk, pk) {
  if (sk.length !== 32 || pk.length !== 32) fail('VEIL_EINVAL', 'x25519 sizes');
  let out;
  try {
    out = sodium.crypto_scalarmult(sk, pk);
  } catch (e) {
    fail('VEIL_EKEY', 'crypto_scalarmult refused the point');
  }
  if (isZero(out)) fail('VEIL_EKEY', 'all-zero X25519 output');
  return out;
}
export const x25519Base = (sk) => sodium.crypto_scalarmult_base(sk);

export function ed25519Keypair(seed) {
  if (seed.length !== 32) throw new Error('seed size');
  const kp = sodium.crypto_sign_seed_keypair(seed);
  return { pk: kp.publicKey, sk: kp.privateKey };
}
export const sign = (sk, m) => sodium.crypto_sign_detached(m, sk);
export function verify(pk, m, sig) {
  try {
    return sodium.crypto_sign_verify_detached(sig, m, pk) === true;
  } catch (e) {
    return false;
  }
}

export function hmac(key, msg) {
  const st = sodium.crypto_auth_hmacsha256_init(key);
  sodium.crypto_auth_hmacsha256_update(st, msg);
  return sodium.crypto_auth_hmacsha256_final(st);
}
export const sha512 = (m) => sodium.crypto_hash_sha512(m);
export const blake2b = (outlen, m) => sodium.crypto_generichash(outlen, m, null);

export function aeadEnc(k, n, ad, m) {
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(m, ad, null, n, k);
}
export function aeadDec(k, n, ad, c) {
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, c, ad, n, k);
  } catch (e) {
    return null;
  }
}
export function argon2id(outlen, pw, salt, ops, memBytes) {
  return sodium.crypto_pwhash(outlen, pw, salt, ops, memBytes, sodium.crypto_pwhash_ALG_ARGON2ID13);
}
export const chacha20 = (k, len) => sodium.crypto_stream_chacha20(len, k, zeros(8));

// ---------------------------------------------------------------------------
// HKDF (SPEC 4.1)

export function hkdfExtract(salt, ikm) {
  return hmac(salt.length === 0 ? ZERO32 : salt, ikm);
}
export function hkdfExpand(prk, info, L) {
  if (L > 255 * 32) throw new RangeError('HKDF length');
  const blocks = [];
  let t = new Uint8Array(0);
  for (let i = 1; blocks.length * 32 < L; i++) {
    t = hmac(prk, concat(t, info, u8(i)));
    blocks.push(t);
  }
  return concat(...blocks).slice(0, L);
}
export const hkdf = (salt, ikm, info, L) => hkdfExpand(hkdfExtract(salt, ikm), info, L);

// ---------------------------------------------------------------------------
// Padding (SPEC 7.1)

export const MAX_PLAINTEXT = 65536;

export function padme(L) {
  if (!Number.isInteger(L) || L < 1 || L > 0x7fffffff) throw new RangeError('padme');
  const E = 31 - Math.clz32(L); // floor(log2 L)
  const S = 32 - Math.clz32(E); // floor(log2 E) + 1
  const z = E - S;
  const mask = 2 ** z - 1;
  return (L + mask) & ~mask;
}
export const paddedLength = (len) => padme(Math.max(len + 1, 64));

export function pad(pt) {
  if (pt.length > MAX_PLAINTEXT) fail('VEIL_EINVAL', 'plaintext too long');
  const out = new Uint8Array(paddedLength(pt.length));
  out.set(pt, 0);
  out[pt.length] = 0x80;
  return out;
}

// sodium_unpad semantics with block size = padded length: the last non-zero
// octet must be the 0x80 marker; then the length must be canonical.
export function unpad(buf) {
  if (buf.length === 0) fail('VEIL_EPAD', 'empty');
  let i = buf.length - 1;
  while (i >= 0 && buf[i] === 0) i--;
  if (i < 0 || buf[i] !== 0x80) fail('VEIL_EPAD', 'no marker');
  if (paddedLength(i) !== buf.length) fail('VEIL_EPAD', 'non-canonical padded length');
  return buf.slice(0, i);
}

// ---------------------------------------------------------------------------
// Fingerprints and safety numbers (SPEC 7.2)

export function fingerprint(iksPk) {
  let h = sha512(concat(u16(0), iksPk, ascii('veil-fingerprint-v1')));
  for (let i = 0; i < 5199; i++) h = sha512(concat(h, iksPk));
  let out = '';
  for (let g = 0; g < 6; g++) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + h[5 * g + j];
    out += String(v % 100000).padStart(5, '0');
  }
  return out;
}
export function safetyNumber(pkA, pkB) {
  const a = fingerprint(pkA);
  const b = fingerprint(pkB);
  return a < b ? a + b : b + a;
}

// ---------------------------------------------------------------------------
// DRBG (SPEC 3.4)

export class Drbg {
  constructor(seed) {
    if (seed.length !== 32) throw new Error('seed size');
    this.K = blake2b(32, concat(ascii('veil-drbg-seed-v1'), seed));
    this.buf = new Uint8Array(0);
  }
  reseed(seed) {
    if (seed.length !== 32) throw new Error('seed size');
    this.K = blake2b(32, concat(ascii('veil-drbg-reseed-v1'), this.K, seed));
    this.buf = new Uint8Array(0);
  }
  refill() {
    const s = chacha20(this.K, 256);
    this.K = s.slice(0, 32);
    this.buf = s.slice(32, 256);
  }
  read(n) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (this.buf.length === 0) this.refill();
      out[i] = this.buf[0];
      this.buf = this.buf.subarray(1);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Keys (SPEC 3.2) and public identities (SPEC 5.1)

const L_IDK = ascii('veil-idk-v1');
const L_SPK = ascii('veil-spk-v1');
const L_X3DH = ascii('veil-x3dh-v1');
const L_ROOT = ascii('veil-dr-root-v1');

export function dhKeypair(sk) {
  return { sk, pk: x25519Base(sk) };
}

export function newIdentity(rng) {
  const seed = rng(32);
  const sig = ed25519Keypair(seed);
  const dh = dhKeypair(rng(32));
  const idsig = sign(sig.sk, concat(L_IDK, dh.pk));
  return { seed, sig, dh, idsig, idpub: concat(sig.pk, dh.pk, idsig) };
}

export const spkMessage = (id, pk) => concat(L_SPK, u32(id), pk);
export const idkMessage = (dhPk) => concat(L_IDK, dhPk);

export function newSignedPrekey(identity, id, rng) {
  const kp = dhKeypair(rng(32));
  return { id, sk: kp.sk, pk: kp.pk, sig: sign(identity.sig.sk, spkMessage(id, kp.pk)) };
}
export function newOneTimePrekey(id, rng) {
  const kp = dhKeypair(rng(32));
  return { id, sk: kp.sk, pk: kp.pk };
}

// ---------------------------------------------------------------------------
// X3DH (SPEC 5)

export const BUNDLE_LEN = 266;
export const INIT_HEADER_LEN = 170;

export function encodeBundle(identity, spk, opk) {
  return concat(
    u8(1), identity.sig.pk, identity.dh.pk, identity.idsig,
    u32(spk.id), spk.pk, spk.sig,
    u8(opk ? 1 : 0), u32(opk ? opk.id : 0), opk ? opk.pk : ZERO32,
  );
}

export function decodeBundle(b) {
  if (b.length !== BUNDLE_LEN) fail('VEIL_EINVAL', 'bundle length');
  if (b[0] !== 1) fail('VEIL_EVERSION', 'bundle version');
  const f = {
    iksPk: b.slice(1, 33),
    ikdPk: b.slice(33, 65),
    idsig: b.slice(65, 129),
    spkId: rdU32(b, 129),
    spkPk: b.slice(133, 165),
    spkSig: b.slice(165, 229),
    hasOpk: b[229],
    opkId: rdU32(b, 230),
    opkPk: b.slice(234, 266),
  };
  if (f.hasOpk > 1) fail('VEIL_EINVAL', 'has_opk');
  if (f.hasOpk === 0 && (f.opkId !== 0 || !isZero(f.opkPk))) fail('VEIL_EINVAL', 'opk fields without opk');
  return f;
}

export function verifyBundle(f) {
  if (!verify(f.iksPk, idkMessage(f.ikdPk), f.idsig)) fail('VEIL_ESIG', 'bundle idsig');
  if (!verify(f.iksPk, spkMessage(f.spkId, f.spkPk), f.spkSig)) fail('VEIL_ESIG', 'bundle spk_sig');
}

function x3dhKdf(dhs) {
  const okm = hkdf(ZERO32, concat(FF32, ...dhs), L_X3DH, 96);
  return { sk: okm.slice(0, 32), hka: okm.slice(32, 64), nhkb: okm.slice(64, 96) };
}

export function encodeInitHeader(idpub, ekPk, spkId, hasOpk, opkId) {
  return concat(u8(1), idpub, ekPk, u32(spkId), u8(hasOpk), u32(opkId));
}

// Alice's side. Returns every intermediate value for the vectors.
export function x3dhInitiate(alice, bundle, rng) {
  const f = decodeBundle(bundle);
  verifyBundle(f);
  const ek = dhKeypair(rng(32));
  const dh1 = x25519(alice.dh.sk, f.spkPk);
  const dh2 = x25519(ek.sk, f.ikdPk);
  const dh3 = x25519(ek.sk, f.spkPk);
  const dhs = [dh1, dh2, dh3];
  let dh4 = null;
  if (f.hasOpk) { dh4 = x25519(ek.sk, f.opkPk); dhs.push(dh4); }
  const k = x3dhKdf(dhs);
  const ad = concat(alice.sig.pk, alice.dh.pk, f.iksPk, f.ikdPk);
  const header = encodeInitHeader(alice.idpub, ek.pk, f.spkId, f.hasOpk, f.hasOpk ? f.opkId : 0);
  return { ek, dh1, dh2, dh3, dh4, ...k, ad, header, bobSpkPk: f.spkPk };
}

// Bob's side: bob = {identity, spks: [current, previous?], opks: [..]}.
// Bob's prekeys are not consumed here (that happens only once the first
// ratchet message decrypts, SPEC 5.5 step 6).
export function x3dhRespond(bob, h) {
  if (h.length !== INIT_HEADER_LEN) fail('VEIL_EINVAL', 'header length');
  if (h[0] !== 1) fail('VEIL_EVERSION', 'header version');
  const iksA = h.slice(1, 33);
  const ikdA = h.slice(33, 65);
  const idsigA = h.slice(65, 129);
  const ekPk = h.slice(129, 161);
  const spkId = rdU32(h, 161);
  const hasOpk = h[165];
  const opkId = rdU32(h, 166);
  if (hasOpk > 1) fail('VEIL_EINVAL', 'has_opk');
  if (hasOpk === 0 && opkId !== 0) fail('VEIL_EINVAL', 'opk_id without opk');
  if (!verify(iksA, idkMessage(ikdA), idsigA)) fail('VEIL_ESIG', 'initiator idsig');
  const spk = bob.spks.find((s) => s && s.id === spkId);
  if (!spk) fail('VEIL_ENOPREKEY', 'unknown spk_id');
  let opk = null;
  if (hasOpk) {
    opk = bob.opks.find((o) => o.id === opkId);
    if (!opk) fail('VEIL_ENOPREKEY', 'unknown opk_id');
  }
  const dh1 = x25519(spk.sk, ikdA);
  const dh2 = x25519(bob.identity.dh.sk, ekPk);
  const dh3 = x25519(spk.sk, ekPk);
  const dhs = [dh1, dh2, dh3];
  let dh4 = null;
  if (opk) { dh4 = x25519(opk.sk, ekPk); dhs.push(dh4); }
  const k = x3dhKdf(dhs);
  const ad = concat(iksA, ikdA, bob.identity.sig.pk, bob.identity.dh.pk);
  return { dh1, dh2, dh3, dh4, ...k, ad, spk, opk };
}

// ---------------------------------------------------------------------------
// Double Ratchet with header encryption (SPEC 6)

export const MAX_SKIP = 1000;
export const MAX_SKIPPED = 1000;
export const SLOTS = 6;
export const MSG_OVERHEAD = 97;
export const MIN_MSG = 97 + 64;
export const MAX_MSG = 97 + 67584;
const U32_MAX = 0xffffffff;

export function kdfRk(rk, dhOut) {
  const okm = hkdf(rk, dhOut, L_ROOT, 96);
  return { rk: okm.slice(0, 32), ck: okm.slice(32, 64), nhk: okm.slice(64, 96) };
}
export function kdfCk(ck) {
  return { ck: hmac(ck, u8(0x02)), mk: hmac(ck, u8(0x01)) };
}

function emptyStore() {
  return {
    entries: [],
    slots: Array.from({ length: SLOTS }, () => ({ used: 0, hk: zeros(32) })),
  };
}

export function storeSlotOf(store, hk) {
  for (let i = 0; i < SLOTS; i++) if (store.slots[i].used && equal(store.slots[i].hk, hk)) return i;
  return -1;
}
function freeSlotIfEmpty(store, slot) {
  if (!store.entries.some((e) => e.slot === slot)) store.slots[slot] = { used: 0, hk: zeros(32) };
}
// SPEC 6.7, insertion.
export function storeInsert(store, hk, n, mk) {
  if (store.entries.length === MAX_SKIPPED) {
    const old = store.entries.shift();
    freeSlotIfEmpty(store, old.slot);
  }
  let slot = storeSlotOf(store, hk);
  if (slot < 0) {
    if (store.slots.every((s) => s.used)) {
      const victim = store.entries[0].slot;
      store.entries = store.entries.filter((e) => e.slot !== victim);
      store.slots[victim] = { used: 0, hk: zeros(32) };
    }
    slot = store.slots.findIndex((s) => !s.used);
    store.slots[slot] = { used: 1, hk: hk.slice() };
  }
  store.entries.push({ slot, n, mk });
}
function storeFind(store, slot, n) {
  return store.entries.findIndex((e) => e.slot === slot && e.n === n);
}
function storeDelete(store, idx) {
  const [e] = store.entries.splice(idx, 1);
  freeSlotIfEmpty(store, e.slot);
}

export function cloneState(st) {
  return structuredClone(st);
}

// A canonical snapshot of a state, used to assert "no change on failure".
export function stateSnapshot(st) {
  return JSON.stringify(st, (k, v) => (v instanceof Uint8Array ? hex(v) : v));
}

// SPEC 6.3
export function initAlice({ sk, hka, nhkb, ad }, bobSpkPk, rng) {
  const DHRs = dhKeypair(rng(32));
  const r = kdfRk(sk, x25519(DHRs.sk, bobSpkPk));
  return {
    DHRs, DHRr: bobSpkPk.slice(), RK: r.rk, CKs: r.ck, CKr: null,
    HKs: hka.slice(), HKr: null, NHKs: r.nhk, NHKr: nhkb.slice(),
    Ns: 0, Nr: 0, PN: 0, AD: ad.slice(), pending: 0, skipped: emptyStore(),
  };
}
export function initBob({ sk, hka, nhkb, ad }, spk) {
  return {
    DHRs: { sk: spk.sk.slice(), pk: spk.pk.slice() }, DHRr: null, RK: sk.slice(), CKs: null, CKr: null,
    HKs: null, HKr: null, NHKs: nhkb.slice(), NHKr: hka.slice(),
    Ns: 0, Nr: 0, PN: 0, AD: ad.slice(), pending: 0, skipped: emptyStore(),
  };
}

export const encodeHdr = (dhPk, pn, n) => concat(dhPk, u32(pn), u32(n));

// Builds a wire message from its parts (SPEC 6.4). Exposed so the generator
// can also build deliberately inconsistent messages.
export function buildMessage({ hk, mk, nonce, hdr, ad, padded }) {
  const eh = aeadEnc(hk, nonce, u8(1), hdr);
  const prefix = concat(u8(1), nonce, eh);
  const eb = aeadEnc(mk, nonce, concat(ad, prefix), padded);
  return concat(prefix, eb);
}

// RatchetEncrypt (SPEC 6.4). Returns the new state and the message; the
// given state is not modified.
export function ratchetEncrypt(state, pt, rng) {
  if (pt.length > MAX_PLAINTEXT) fail('VEIL_EINVAL', 'plaintext too long');
  const st = cloneState(state);
  if (st.pending) {
    st.DHRs = dhKeypair(rng(32));
    const r = kdfRk(st.RK, x25519(st.DHRs.sk, st.DHRr));
    st.RK = r.rk; st.CKs = r.ck; st.NHKs = r.nhk;
    st.pending = 0;
  }
  if (!st.CKs) fail('VEIL_ESTATE', 'cannot send before receiving');
  if (st.Ns === U32_MAX) fail('VEIL_ELIMIT', 'Ns');
  const c = kdfCk(st.CKs);
  st.CKs = c.ck;
  const nonce = rng(24);
  const hdr = encodeHdr(st.DHRs.pk, st.PN, st.Ns);
  const msg = buildMessage({ hk: st.HKs, mk: c.mk, nonce, hdr, ad: st.AD, padded: pad(pt) });
  st.Ns += 1;
  return { state: st, message: msg, hdr, mk: c.mk, nonce };
}

// Derives message keys Nr..N of a chain in temporaries.
function deriveChain(ck, from, to) {
  const skipped = [];
  let mk = null;
  for (let i = from; i <= to; i++) {
    const c = kdfCk(ck);
    if (i < to) skipped.push({ n: i, mk: c.mk }); else mk = c.mk;
    ck = c.ck;
  }
  return { skipped, mk, ck };
}

// RatchetDecrypt (SPEC 6.6). Returns {state, plaintext, kase}; throws a
// VeilError and leaves the given state untouched on failure.
export function ratchetDecrypt(state, m) {
  // 1.
  if (m.length < MIN_MSG || m.length > MAX_MSG) fail('VEIL_EINVAL', 'message length');
  if (m[0] !== 1) fail('VEIL_EVERSION', 'message version');
  const nonce = m.slice(1, 25);
  const eh = m.slice(25, 81);
  const eb = m.slice(81);
  const hdrAd = u8(1);
  // 2.
  let kase = null;
  let hdr = null;
  let cslot = -1;
  if (state.HKr) {
    hdr = aeadDec(state.HKr, nonce, hdrAd, eh);
    if (hdr) kase = 'a';
  }
  if (!kase && !state.pending) {
    hdr = aeadDec(state.NHKr, nonce, hdrAd, eh);
    if (hdr) kase = 'b';
  }
  if (!kase) {
    for (let i = 0; i < SLOTS; i++) {
      const s = state.skipped.slots[i];
      if (!s.used) continue;
      if (state.HKr && equal(s.hk, state.HKr)) continue;
      hdr = aeadDec(s.hk, nonce, hdrAd, eh);
      if (hdr) { kase = 'c'; cslot = i; break; }
    }
  }
  if (!kase) fail('VEIL_EAUTH', 'no header key opens the header');
  if (hdr.length !== 40) fail('VEIL_EAUTH', 'header length');
  const dh = hdr.slice(0, 32);
  const PN = rdU32(hdr, 32);
  const N = rdU32(hdr, 36);

  let mk;
  let storedIdx = -1;
  let chain = null; // case a (N >= Nr) or b: derivation results
  let root = null; // case b: RK', CKr', NHKr'
  if (kase === 'a') {
    if (!equal(dh, state.DHRr)) fail('VEIL_EAUTH', 'case a: dh differs from DHRr');
    if (N === U32_MAX) fail('VEIL_ELIMIT', 'case a: N = 2^32-1');
    if (N < state.Nr) {
      const slot = storeSlotOf(state.skipped, state.HKr);
      storedIdx = slot < 0 ? -1 : storeFind(state.skipped, slot, N);
      if (storedIdx < 0) fail('VEIL_EREPLAY', 'case a: key not stored');
      mk = state.skipped.entries[storedIdx].mk;
    } else {
      if (N - state.Nr > MAX_SKIP) fail('VEIL_ESKIP', 'case a: too many skipped');
      chain = deriveChain(state.CKr, state.Nr, N);
      mk = chain.mk;
    }
  } else if (kase === 'b') {
    if (state.DHRr && equal(dh, state.DHRr)) fail('VEIL_EAUTH', 'case b: dh equals DHRr');
    if (state.CKr) {
      if (PN < state.Nr) fail('VEIL_EAUTH', 'case b: PN < Nr');
      if (PN - state.Nr > MAX_SKIP) fail('VEIL_ESKIP', 'case b: PN - Nr too large');
    }
    if (N > MAX_SKIP) fail('VEIL_ESKIP', 'case b: N too large');
    root = kdfRk(state.RK, x25519(state.DHRs.sk, dh));
    chain = deriveChain(root.ck, 0, N);
    mk = chain.mk;
  } else {
    storedIdx = storeFind(state.skipped, cslot, N);
    if (storedIdx < 0) fail('VEIL_EREPLAY', 'case c: key not stored');
    mk = state.skipped.entries[storedIdx].mk;
  }
  // 3.
  const padded = aeadDec(mk, nonce, concat(state.AD, m.slice(0, 81)), eb);
  if (!padded) fail('VEIL_EAUTH', 'body');
  // 4.
  const plaintext = unpad(padded);
  // 6. Commit.
  const st = cloneState(state);
  if (kase === 'c' || (kase === 'a' && N < state.Nr)) {
    storeDelete(st.skipped, storedIdx);
  } else if (kase === 'a') {
    for (const s of chain.skipped) storeInsert(st.skipped, st.HKr, s.n, s.mk);
    st.CKr = chain.ck;
    st.Nr = N + 1;
  } else {
    if (st.CKr) {
      const old = deriveChain(st.CKr, st.Nr, PN);
      for (const s of old.skipped) storeInsert(st.skipped, st.HKr, s.n, s.mk);
    }
    st.PN = st.Ns; st.Ns = 0; st.Nr = 0;
    st.HKs = st.NHKs; st.HKr = st.NHKr;
    st.DHRr = dh;
    st.RK = root.rk; st.CKr = root.ck; st.NHKr = root.nhk;
    st.pending = 1;
    for (const s of chain.skipped) storeInsert(st.skipped, st.HKr, s.n, s.mk);
    st.CKr = chain.ck;
    st.Nr = N + 1;
  }
  return { state: st, plaintext, kase, hdr };
}

// ---------------------------------------------------------------------------
// Sealed blobs (SPEC 10.1)

export const SEAL_HEADER = 56;
export const SEAL_MIN = 72;

export function seal({ kind, kdf, key, passphrase, opslimit = 0, memlimitKib = 0 }, plaintext, rng) {
  let salt = zeros(16);
  let k = key;
  if (kdf === 1) {
    salt = rng(16);
    k = argon2id(32, passphrase, salt, opslimit, memlimitKib * 1024);
  } else if (kdf === 0) {
    if (!key || key.length !== 32) fail('VEIL_EINVAL', 'raw key size');
    opslimit = 0; memlimitKib = 0;
  } else {
    fail('VEIL_EINVAL', 'kdf');
  }
  const nonce = rng(24);
  const header = concat(ascii('VEIL'), u8(1), u8(kind), u8(kdf), u8(0), u32(opslimit), u32(memlimitKib), salt, nonce);
  return concat(header, aeadEnc(k, nonce, header, plaintext));
}

// The checks whose outcome SPEC 10.1 states unambiguously, in the order
// listed there; a blob in the vectors has exactly one defect.
export function unseal(blob, expectedKind, { key, passphrase }) {
  if (blob.length < SEAL_MIN) fail('VEIL_ECORRUPT', 'short');
  if (!equal(blob.slice(0, 4), ascii('VEIL'))) fail('VEIL_ECORRUPT', 'magic');
  if (blob[4] !== 1) fail('VEIL_EVERSION', 'version');
  if (blob[7] !== 0) fail('VEIL_ECORRUPT', 'reserved');
  if (blob[5] !== expectedKind) fail('VEIL_ECORRUPT', 'kind');
  const kdf = blob[6];
  const ops = rdU32(blob, 8);
  const mem = rdU32(blob, 12);
  const salt = blob.slice(16, 32);
  const nonce = blob.slice(32, 56);
  let k;
  if (kdf === 1) {
    if (ops < 1 || ops > 16 || mem < 8 || mem > 1048576) fail('VEIL_ECORRUPT', 'kdf limits');
    if (!passphrase) fail('VEIL_EINVAL', 'passphrase needed');
    k = argon2id(32, passphrase, salt, ops, mem * 1024);
  } else if (kdf === 0) {
    if (!key) fail('VEIL_EINVAL', 'raw key needed');
    k = key;
  } else {
    fail('VEIL_ECORRUPT', 'kdf');
  }
  const pt = aeadDec(k, nonce, blob.slice(0, SEAL_HEADER), blob.slice(SEAL_HEADER));
  if (!pt) fail('VEIL_EAUTH', 'aead');
  return pt;
}
