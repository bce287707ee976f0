// SPDX-License-Identifier: ISC
//
// Generates tests/vectors/*.json from the independent implementation of
// SPEC.md in veil.mjs. `node gen.mjs` writes the files; `node gen.mjs --check`
// regenerates them in memory and compares them with the committed ones.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as V from './veil.mjs';
import { hex, unhex, ascii, concat, equal, u8, u32, SMALL_ORDER } from './veil.mjs';
import { det, recordingRng, fixedRng } from './det.mjs';
import { ratchetConversations, ratchetVectors } from './ratchet_cases.mjs';
import { stateVectors } from './state_cases.mjs';
import { groupVectors } from './group_cases.mjs';

const OUT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

function assert(cond, what) {
  if (!cond) throw new Error(`generator self-check failed: ${what}`);
}
function assertHex(got, want, what) {
  assert(hex(got) === want, `${what}: got ${hex(got)}, want ${want}`);
}
function expectError(fn, name, what) {
  try {
    fn();
  } catch (e) {
    if (e instanceof V.VeilError) {
      assert(e.veil === name, `${what}: got ${e.message}, want ${name}`);
      return e;
    }
    throw e;
  }
  throw new Error(`generator self-check failed: ${what}: succeeded, want ${name}`);
}
const flip = (b, offset, x = 0x01) => { const c = b.slice(); c[offset] ^= x; return c; };
const range = (from, n) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);

// ---------------------------------------------------------------------------
// hkdf.json: RFC 5869 A.1-A.3, checked against the RFC's own outputs.

function hkdfVectors() {
  const rfc = [
    {
      name: 'rfc5869_a1', ikm: new Uint8Array(22).fill(0x0b), salt: range(0x00, 13), info: range(0xf0, 10), length: 42,
      prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5',
      okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    },
    {
      name: 'rfc5869_a2', ikm: range(0x00, 80), salt: range(0x60, 80), info: range(0xb0, 80), length: 82,
      prk: '06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244',
      okm: 'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c'
        + '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71'
        + 'cc30c58179ec3e87c14c01d5c1f3434f1d87',
    },
    {
      name: 'rfc5869_a3', ikm: new Uint8Array(22).fill(0x0b), salt: new Uint8Array(0), info: new Uint8Array(0), length: 42,
      prk: '19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04',
      okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    },
  ];
  const cases = rfc.map((c) => {
    const prk = V.hkdfExtract(c.salt, c.ikm);
    assertHex(prk, c.prk, `${c.name} PRK`);
    const okm = V.hkdfExpand(prk, c.info, c.length);
    assertHex(okm, c.okm, `${c.name} OKM`);
    assertHex(V.hkdf(c.salt, c.ikm, c.info, c.length), c.okm, `${c.name} HKDF`);
    return { name: c.name, ikm: hex(c.ikm), salt: hex(c.salt), info: hex(c.info), length: c.length, prk: c.prk, okm: c.okm };
  });
  // An empty salt is ZERO32 (SPEC 4.1).
  assert(equal(V.hkdfExtract(new Uint8Array(0), ascii('x')), V.hkdfExtract(V.ZERO32, ascii('x'))), 'empty salt');
  return { cases };
}

// ---------------------------------------------------------------------------
// padding.json (SPEC 7.1)

function paddingVectors() {
  const lengths = [0, 1, 2, 62, 63, 64, 65, 100, 255, 256, 1000, 4096, 65535, 65536];
  const expectPadded = {
    0: 64, 1: 64, 2: 64, 62: 64, 63: 64, 64: 72, 65: 72, 100: 104, 255: 256, 256: 272,
    1000: 1024, 4096: 4352, 65535: 65536, 65536: 67584,
  };
  const cases = lengths.map((len) => {
    const pt = det(`padding/plaintext/${len}`, len);
    const padded = V.pad(pt);
    assert(padded.length === expectPadded[len], `padme(${len})`);
    assert(equal(V.unpad(padded), pt), `unpad(${len})`);
    return { length: len, padded_length: padded.length, plaintext: hex(pt), padded: hex(padded) };
  });
  expectError(() => V.pad(new Uint8Array(65537)), 'VEIL_EINVAL', 'pad 65537');

  const withMarker = (ptLen, total, extra = {}) => {
    const b = new Uint8Array(total);
    b.set(det(`padding/invalid/${ptLen}/${total}`, ptLen).map((x) => x | 1), 0); // non-zero content
    b[ptLen] = 0x80;
    for (const [o, v] of Object.entries(extra)) b[Number(o)] = v;
    return b;
  };
  const invalid = [
    { name: 'empty', padded: new Uint8Array(0) },
    { name: 'all_zero_64', padded: new Uint8Array(64) },
    { name: 'all_zero_72', padded: new Uint8Array(72) },
    { name: 'marker_then_nonzero', padded: withMarker(10, 64, { 11: 0x01 }) },
    { name: 'marker_then_nonzero_last', padded: withMarker(10, 64, { 63: 0x01 }) },
    { name: 'last_octet_not_marker', padded: withMarker(63, 64, { 63: 0x81 }) },
    { name: 'short_63_octets', padded: withMarker(10, 63) },
    { name: 'short_1_octet', padded: Uint8Array.of(0x80) },
    { name: 'too_long_for_length_10', padded: withMarker(10, 72) },
    { name: 'too_long_for_length_64', padded: withMarker(64, 80) },
    { name: 'too_short_for_length_64', padded: withMarker(64, 65) },
    { name: 'too_short_for_length_100', padded: withMarker(100, 101) },
  ].map((c) => {
    expectError(() => V.unpad(c.padded), 'VEIL_EPAD', `unpad ${c.name}`);
    return { name: c.name, padded: hex(c.padded), error: 'VEIL_EPAD' };
  });
  return { cases, invalid };
}

// ---------------------------------------------------------------------------
// safety.json (SPEC 7.2)

function safetyVectors() {
  let swapped = 0;
  const cases = [0, 1, 2].map((i) => {
    let a = V.ed25519Keypair(det(`safety/${i}/a`, 32)).pk;
    let b = V.ed25519Keypair(det(`safety/${i}/b`, 32)).pk;
    // Case 1 has fingerprint_a > fingerprint_b, cases 0 and 2 the reverse.
    if ((i === 1) !== (V.fingerprint(a) > V.fingerprint(b))) [a, b] = [b, a];
    const fa = V.fingerprint(a);
    const fb = V.fingerprint(b);
    assert(/^[0-9]{30}$/.test(fa) && /^[0-9]{30}$/.test(fb), 'fingerprint digits');
    const sn = V.safetyNumber(a, b);
    assert(sn === V.safetyNumber(b, a), 'safety number symmetric');
    if (fa > fb) swapped++;
    return { ik_a: hex(a), ik_b: hex(b), fingerprint_a: fa, fingerprint_b: fb, safety_number: sn };
  });
  assert(swapped > 0 && swapped < 3, 'safety cases cover both orders');
  return { cases };
}

// ---------------------------------------------------------------------------
// drbg.json (SPEC 3.4)

function drbgVectors() {
  const seed = det('drbg/seed', 32);
  const reseed = det('drbg/reseed', 32);
  const d = new V.Drbg(seed);
  const output = d.read(512);
  // Independent recomputation from the definition.
  let K = V.blake2b(32, concat(ascii('veil-drbg-seed-v1'), seed));
  const ref = [];
  for (let i = 0; i < 3; i++) { const s = V.chacha20(K, 256); K = s.slice(0, 32); ref.push(s.slice(32)); }
  assert(equal(concat(...ref).slice(0, 512), output), 'drbg output');
  // chacha20 argument order: compare with the _xor form (message, nonce, key).
  assert(equal(V.chacha20(K, 64), V.sodium.crypto_stream_chacha20_xor(new Uint8Array(64), new Uint8Array(8), K)), 'chacha20 args');
  d.reseed(reseed);
  const K2 = V.blake2b(32, concat(ascii('veil-drbg-reseed-v1'), K, reseed));
  const after = d.read(64);
  assert(equal(after, V.chacha20(K2, 256).slice(32, 96)), 'drbg reseed');
  return { seed: hex(seed), output: hex(output), reseed: hex(reseed), output_after_reseed: hex(after) };
}

// ---------------------------------------------------------------------------
// x3dh.json (SPEC 5)

function makeParty(label, withPrekeys) {
  const rng = recordingRng(label);
  const identity = V.newIdentity(rng);
  const party = { identity };
  if (withPrekeys) {
    party.spk = V.newSignedPrekey(identity, withPrekeys.spkId, rng);
    party.opk = withPrekeys.opkId ? V.newOneTimePrekey(withPrekeys.opkId, rng) : null;
  }
  return party;
}

function identityJson(id) {
  return { sign_seed: hex(id.seed), dh_sk: hex(id.dh.sk), sign_pk: hex(id.sig.pk), dh_pk: hex(id.dh.pk), idpub: hex(id.idpub) };
}

function x3dhCase(name, spkId, opkId) {
  const alice = makeParty(`x3dh/${name}/alice`, null);
  const bob = makeParty(`x3dh/${name}/bob`, { spkId, opkId });
  const bundle = V.encodeBundle(bob.identity, bob.spk, bob.opk);
  const ekRng = recordingRng(`x3dh/${name}/alice/ek`);
  const init = V.x3dhInitiate(alice.identity, bundle, ekRng);
  const bobKeys = { identity: bob.identity, spks: [bob.spk], opks: bob.opk ? [bob.opk] : [] };
  const resp = V.x3dhRespond(bobKeys, init.header);
  for (const k of ['dh1', 'dh2', 'dh3', 'sk', 'hka', 'nhkb', 'ad']) assert(equal(init[k], resp[k]), `x3dh ${name} ${k}`);
  assert(opkId ? equal(init.dh4, resp.dh4) : init.dh4 === null && resp.dh4 === null, 'dh4');
  assert(init.header.length === 170 && bundle.length === 266, 'sizes');

  const bobJson = { ...identityJson(bob.identity), spk_id: bob.spk.id, spk_sk: hex(bob.spk.sk), spk_pk: hex(bob.spk.pk), spk_sig: hex(bob.spk.sig) };
  if (bob.opk) Object.assign(bobJson, { opk_id: bob.opk.id, opk_sk: hex(bob.opk.sk), opk_pk: hex(bob.opk.pk) });
  const json = {
    name,
    alice: identityJson(alice.identity),
    bob: bobJson,
    bundle: hex(bundle),
    ek_sk: hex(init.ek.sk),
    ek_pk: hex(init.ek.pk),
    dh1: hex(init.dh1), dh2: hex(init.dh2), dh3: hex(init.dh3),
  };
  if (init.dh4) json.dh4 = hex(init.dh4);
  Object.assign(json, { sk: hex(init.sk), hka: hex(init.hka), nhkb: hex(init.nhkb), ad: hex(init.ad), init_header: hex(init.header) });
  return { json, alice, bob, bundle, init, bobKeys };
}

function x3dhVectors() {
  const withOpk = x3dhCase('with_opk', 7, 300);
  const withoutOpk = x3dhCase('without_opk', 1, 0);
  const { alice, bob, bundle, init, bobKeys } = withOpk;
  const ek = unhex(withOpk.json.ek_sk);

  // --- invalid bundles, given to Alice (with_opk) whose EK draw is ek_sk.
  const B = (mutate) => { const b = bundle.slice(); mutate(b); return b; };
  const resignSpk = (b) => b.set(V.sign(bob.identity.sig.sk, V.spkMessage(V.rdU32(b, 129), b.slice(133, 165))), 165);
  const resignIdk = (b) => b.set(V.sign(bob.identity.sig.sk, V.idkMessage(b.slice(33, 65))), 65);
  const invalidBundles = [
    ['empty', new Uint8Array(0), 'VEIL_EINVAL'],
    ['truncated_265', bundle.slice(0, 265), 'VEIL_EINVAL'],
    ['extended_267', concat(bundle, u8(0)), 'VEIL_EINVAL'],
    ['version_0', B((b) => { b[0] = 0; }), 'VEIL_EVERSION'],
    ['version_2', B((b) => { b[0] = 2; }), 'VEIL_EVERSION'],
    ['has_opk_2', B((b) => { b[229] = 2; }), 'VEIL_EINVAL'],
    ['has_opk_0_with_opk_id', B((b) => { b[229] = 0; b.set(V.ZERO32, 234); }), 'VEIL_EINVAL'],
    ['has_opk_0_with_opk_pk', B((b) => { b[229] = 0; b.set(u32(0), 230); }), 'VEIL_EINVAL'],
    ['idsig_flipped', B((b) => { b[65 + 10] ^= 0x04; }), 'VEIL_ESIG'],
    ['spk_sig_flipped', B((b) => { b[165 + 3] ^= 0x01; }), 'VEIL_ESIG'],
    ['ikd_pk_changed', B((b) => { b[33] ^= 0x01; }), 'VEIL_ESIG'],
    ['spk_pk_changed', B((b) => { b[133] ^= 0x01; }), 'VEIL_ESIG'],
    ['spk_id_changed', B((b) => { b.set(u32(8), 129); }), 'VEIL_ESIG'],
    ['iks_pk_other', B((b) => { b.set(alice.identity.sig.pk, 1); }), 'VEIL_ESIG'],
    ['opk_pk_zero_point', B((b) => { b.set(SMALL_ORDER.zero, 234); }), 'VEIL_EKEY'],
    ['opk_pk_order8_point', B((b) => { b.set(SMALL_ORDER.order8, 234); }), 'VEIL_EKEY'],
    ['spk_pk_order8_point_signed', B((b) => { b.set(SMALL_ORDER.order8, 133); resignSpk(b); }), 'VEIL_EKEY'],
    ['ikd_pk_zero_point_signed', B((b) => { b.set(SMALL_ORDER.zero, 33); resignIdk(b); }), 'VEIL_EKEY'],
  ].map(([name, b, error]) => {
    expectError(() => V.x3dhInitiate(alice.identity, b, fixedRng(ek)), error, `bundle ${name}`);
    return { name, bundle: hex(b), error };
  });
  // The small-order cases really carry valid signatures.
  for (const c of invalidBundles.filter((x) => x.error === 'VEIL_EKEY')) V.verifyBundle(V.decodeBundle(unhex(c.bundle)));

  // --- invalid initial headers, given to Bob (with_opk: current SPK spk_id,
  // one unused OPK opk_id, no previous SPK).
  const h = init.header;
  const H = (mutate) => { const c = h.slice(); mutate(c); return c; };
  const resignAlice = (c) => c.set(V.sign(alice.identity.sig.sk, V.idkMessage(c.slice(33, 65))), 65);
  const invalidHeaders = [
    ['empty', new Uint8Array(0), 'VEIL_EINVAL'],
    ['truncated_169', h.slice(0, 169), 'VEIL_EINVAL'],
    ['extended_171', concat(h, u8(0)), 'VEIL_EINVAL'],
    ['version_0', H((c) => { c[0] = 0; }), 'VEIL_EVERSION'],
    ['version_2', H((c) => { c[0] = 2; }), 'VEIL_EVERSION'],
    ['has_opk_2', H((c) => { c[165] = 2; }), 'VEIL_EINVAL'],
    ['has_opk_0_with_opk_id', H((c) => { c[165] = 0; }), 'VEIL_EINVAL'],
    ['idsig_flipped', H((c) => { c[65 + 20] ^= 0x10; }), 'VEIL_ESIG'],
    ['ikd_pk_changed', H((c) => { c[33 + 5] ^= 0x01; }), 'VEIL_ESIG'],
    ['unknown_spk_id', H((c) => { c.set(u32(8), 161); }), 'VEIL_ENOPREKEY'],
    ['spk_id_0', H((c) => { c.set(u32(0), 161); }), 'VEIL_ENOPREKEY'],
    ['unknown_opk_id', H((c) => { c.set(u32(301), 166); }), 'VEIL_ENOPREKEY'],
    ['opk_id_0_with_has_opk', H((c) => { c.set(u32(0), 166); }), 'VEIL_ENOPREKEY'],
    ['ek_zero_point', H((c) => { c.set(SMALL_ORDER.zero, 129); }), 'VEIL_EKEY'],
    ['ek_order8_point', H((c) => { c.set(SMALL_ORDER.order8, 129); }), 'VEIL_EKEY'],
    ['ikd_pk_order8_point_signed', H((c) => { c.set(SMALL_ORDER.order8, 33); resignAlice(c); }), 'VEIL_EKEY'],
  ].map(([name, c, error]) => {
    expectError(() => V.x3dhRespond(bobKeys, c), error, `header ${name}`);
    return { name, init_header: hex(c), error };
  });
  // The same header without its OPK is valid for Bob (three DHs).
  const noOpk = H((c) => { c[165] = 0; c.set(u32(0), 166); });
  assert(V.x3dhRespond(bobKeys, noOpk).dh4 === null, 'header without opk accepted');

  return {
    file: { cases: [withOpk.json, withoutOpk.json], invalid_bundles: invalidBundles, invalid_headers: invalidHeaders },
    withOpk,
  };
}

// ---------------------------------------------------------------------------
// seal.json (SPEC 10.1)

function sealVectors() {
  const defs = [
    { name: 'raw_keyring', kind: 1, kdf: 0, len: 200 },
    { name: 'raw_session', kind: 2, kdf: 0, len: 1000 },
    { name: 'raw_opaque', kind: 3, kdf: 0, len: 33 },
    { name: 'raw_opaque_empty', kind: 3, kdf: 0, len: 0 },
    { name: 'argon2id_keyring', kind: 1, kdf: 1, len: 120, passphrase: 'correct horse battery staple' },
    { name: 'argon2id_session', kind: 2, kdf: 1, len: 513, passphrase: 'pässwörd ✓' },
    { name: 'argon2id_opaque', kind: 3, kdf: 1, len: 1, passphrase: 'hunter2' },
  ];
  const built = {};
  const cases = defs.map((d) => {
    const rng = recordingRng(`seal/${d.name}/rng`);
    const plaintext = det(`seal/${d.name}/plaintext`, d.len);
    const params = { kind: d.kind, kdf: d.kdf };
    const json = { name: d.name, kind: d.kind, kdf: d.kdf };
    if (d.kdf === 0) {
      params.key = det(`seal/${d.name}/key`, 32);
      json.key = hex(params.key);
      json.opslimit = 0; json.memlimit_kib = 0;
    } else {
      params.passphrase = new TextEncoder().encode(d.passphrase);
      params.opslimit = 1; params.memlimitKib = 8;
      json.passphrase = hex(params.passphrase);
      json.opslimit = 1; json.memlimit_kib = 8;
    }
    const blob = V.seal(params, plaintext, rng);
    const drawn = rng.take();
    assert(drawn.length === (d.kdf ? 40 : 24), 'seal draws');
    assert(blob.length === 72 + d.len, 'seal size');
    assert(equal(V.unseal(blob, d.kind, params), plaintext), `unseal ${d.name}`);
    built[d.name] = { blob, params };
    Object.assign(json, { rng: hex(drawn), plaintext: hex(plaintext), blob: hex(blob) });
    return json;
  });

  const raw = built.raw_session;
  const pw = built.argon2id_keyring;
  const mut = (b, f) => { const c = b.slice(); f(c); return c; };
  const invalid = [
    ['short_71', raw, 2, raw.blob.slice(0, 71), 'VEIL_ECORRUPT'],
    ['empty', raw, 2, new Uint8Array(0), 'VEIL_ECORRUPT'],
    ['bad_magic', raw, 2, mut(raw.blob, (c) => { c[0] = 0x76; }), 'VEIL_ECORRUPT'],
    ['version_2', raw, 2, mut(raw.blob, (c) => { c[4] = 2; }), 'VEIL_EVERSION'],
    ['version_0', raw, 2, mut(raw.blob, (c) => { c[4] = 0; }), 'VEIL_EVERSION'],
    ['reserved_nonzero', raw, 2, mut(raw.blob, (c) => { c[7] = 1; }), 'VEIL_ECORRUPT'],
    ['kind_not_expected', raw, 1, raw.blob, 'VEIL_ECORRUPT'],
    ['kind_changed_and_expected', raw, 1, mut(raw.blob, (c) => { c[5] = 1; }), 'VEIL_EAUTH'],
    ['nonce_flipped', raw, 2, flip(raw.blob, 40), 'VEIL_EAUTH'],
    ['ciphertext_flipped', raw, 2, flip(raw.blob, 56 + 500, 0x80), 'VEIL_EAUTH'],
    ['tag_flipped', raw, 2, flip(raw.blob, raw.blob.length - 1), 'VEIL_EAUTH'],
    ['truncated_by_one', raw, 2, raw.blob.slice(0, raw.blob.length - 1), 'VEIL_EAUTH'],
    ['wrong_key', { params: { key: det('seal/wrong_key', 32) } }, 2, raw.blob, 'VEIL_EAUTH'],
    ['argon2id_wrong_passphrase', { params: { passphrase: ascii('correct horse battery stapler') } }, 1, pw.blob, 'VEIL_EAUTH'],
    ['argon2id_salt_flipped', pw, 1, flip(pw.blob, 20), 'VEIL_EAUTH'],
    ['argon2id_opslimit_changed', pw, 1, mut(pw.blob, (c) => { c.set(u32(2), 8); }), 'VEIL_EAUTH'],
  ].map(([name, src, expectedKind, blob, error]) => {
    expectError(() => V.unseal(blob, expectedKind, src.params), error, `unseal ${name}`);
    const json = { name, blob: hex(blob), expected_kind: expectedKind };
    if (src.params.key) json.key = hex(src.params.key); else json.passphrase = hex(src.params.passphrase);
    json.error = error;
    return json;
  });
  return { cases, invalid };
}

// ---------------------------------------------------------------------------

function generate() {
  const files = {};
  files['hkdf.json'] = hkdfVectors();
  files['padding.json'] = paddingVectors();
  files['safety.json'] = safetyVectors();
  const x = x3dhVectors();
  files['x3dh.json'] = x.file;
  const convs = ratchetConversations(x.withOpk);
  files['ratchet.json'] = ratchetVectors(x.withOpk, convs);
  files['seal.json'] = sealVectors();
  files['drbg.json'] = drbgVectors();
  files['group.json'] = groupVectors();
  files['state.json'] = stateVectors(convs);
  const out = {};
  for (const [name, obj] of Object.entries(files)) out[name] = `${JSON.stringify(obj, null, 1)}\n`;
  return out;
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  const line = a.slice(0, i).split('\n').length;
  return `first difference at character ${i} (line ${line}); committed ${a.length} chars, regenerated ${b.length}`;
}

const out = generate();
if (process.argv.includes('--check')) {
  let bad = 0;
  for (const [name, text] of Object.entries(out)) {
    const path = join(OUT_DIR, name);
    if (!existsSync(path)) { console.error(`vectors: ${name}: missing`); bad++; continue; }
    const have = readFileSync(path, 'utf8');
    if (have !== text) { console.error(`vectors: ${name}: differs: ${firstDifference(have, text)}`); bad++; }
  }
  if (bad) {
    console.error(`vectors: ${bad} of ${Object.keys(out).length} files differ from the generator`);
    process.exit(1);
  }
  console.log(`vectors: ${Object.keys(out).length} files match`);
} else {
  for (const [name, text] of Object.entries(out)) writeFileSync(join(OUT_DIR, name), text);
  const total = Object.values(out).reduce((s, t) => s + t.length, 0);
  console.log(`vectors: wrote ${Object.keys(out).length} files (${total} octets)`);
}
