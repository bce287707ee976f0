// SPDX-License-Identifier: ISC
// veil's wasm build through its JS binding (wasm/veil.mjs) against libolm's
// WebAssembly build (npm @matrix-org/olm) through its JS API, in the same
// process, on the same work (issue 3, section 5):
//   - a session pair: veil X3DH (keyrings, bundle with a one-time prekey) and
//     olm's account pair with an outbound / inbound session, each followed by
//     one message each way so both sessions are fully established;
//   - same direction: A encrypts a 256-octet plaintext, B decrypts it;
//   - alternating: the sender changes every message, so every message is a
//     DH ratchet step in both protocols.
// olm's JS API takes and returns strings, so olm gets a 256-character ASCII
// string and veil the same 256 octets as a Uint8Array; each side pays its own
// binding's conversions, as an application would.
//
// Rounds interleave veil and olm, so load from other processes hits both;
// figures are medians over the rounds (ratios: median of per-round ratios),
// after a warm-up round. Prints "name value unit" lines; asserts no timing.
//
// Usage: node bench/crypto_js.mjs [--rounds N] [--batch N]
//   VEIL_WASM_DIR: the directory holding veil.mjs (default build/wasm/wasm).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import Olm from '@matrix-org/olm';

const here = path.dirname(fileURLToPath(import.meta.url));
const wasmDir = process.env.VEIL_WASM_DIR || path.join(here, '..', 'build', 'wasm', 'wasm');

function parseArgs(argv) {
  const opts = { rounds: 11, batch: 1000 };
  for (let i = 0; i < argv.length; i += 2) {
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`bad value for ${argv[i]}`);
    if (argv[i] === '--rounds') opts.rounds = v;
    else if (argv[i] === '--batch') opts.batch = v;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return opts;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function fail(what) {
  throw new Error(`crypto_js: ${what}`);
}

// ---- veil ----

function veilPair(veil) {
  const alice = veil.createKeyring(1700000000);
  const bob = veil.createKeyring(1700000000);
  if (bob.addOneTimePrekeys(1) !== 1) fail('veil one-time prekey');
  const { session: a, header } = veil.initiate(alice, bob.bundle(0));
  const { session: b, opkId } = veil.respond(bob, header);
  const pair = { a, b, keyrings: [alice, bob] };
  veilMessage(a, b, new Uint8Array(256));
  bob.removeOneTimePrekey(opkId);
  veilMessage(b, a, new Uint8Array(256));
  return pair;
}

function veilMessage(from, to, pt) {
  const out = to.decrypt(from.encrypt(pt));
  if (out.length !== pt.length) fail('veil decrypted length');
  return out;
}

function veilSame(p, pt, n) {
  let out;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) out = veilMessage(p.a, p.b, pt);
  const us = ((performance.now() - t0) * 1000) / n;
  if (out[255] !== pt[255] || out[0] !== pt[0]) fail('veil plaintext');
  return us;
}

// n even: B first (the same-direction batches end with A sending), A last.
function veilAlternating(p, pt, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) veilMessage(p.b, p.a, pt);
    else veilMessage(p.a, p.b, pt);
  }
  return ((performance.now() - t0) * 1000) / n;
}

// ---- olm ----

function olmPair() {
  const alice = new Olm.Account();
  const bob = new Olm.Account();
  alice.create();
  bob.create();
  bob.generate_one_time_keys(1);
  const bobId = JSON.parse(bob.identity_keys()).curve25519;
  const bobOtk = Object.values(JSON.parse(bob.one_time_keys()).curve25519)[0];
  bob.mark_keys_as_published();
  const a = new Olm.Session();
  a.create_outbound(alice, bobId, bobOtk);
  const first = a.encrypt('x'.repeat(256));
  if (first.type !== 0) fail('olm first message is not a prekey message');
  const b = new Olm.Session();
  b.create_inbound(bob, first.body);
  if (b.decrypt(first.type, first.body).length !== 256) fail('olm first message');
  bob.remove_one_time_keys(b);
  const pair = { a, b, accounts: [alice, bob] };
  // B's reply makes A stop sending prekey messages: A's next are normal ones.
  olmMessage(b, a, 'y'.repeat(256));
  return pair;
}

function olmMessage(from, to, pt) {
  const m = from.encrypt(pt);
  const out = to.decrypt(m.type, m.body);
  if (out.length !== pt.length) fail('olm decrypted length');
  return out;
}

function olmSame(p, pt, n) {
  let out;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) out = olmMessage(p.a, p.b, pt);
  const us = ((performance.now() - t0) * 1000) / n;
  if (out !== pt) fail('olm plaintext');
  return us;
}

function olmAlternating(p, pt, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) olmMessage(p.b, p.a, pt);
    else olmMessage(p.a, p.b, pt);
  }
  return ((performance.now() - t0) * 1000) / n;
}

// ---- main ----

const opts = parseArgs(process.argv.slice(2));
const { loadVeil } = await import(path.join(wasmDir, 'veil.mjs'));
const veil = await loadVeil();
await Olm.init();

let text = '';
for (let i = 0; i < 256; i++) text += String.fromCharCode(97 + (i % 26));
const bytes = new TextEncoder().encode(text);
if (text.length !== 256 || bytes.length !== 256) fail('plaintext size');

const vp = veilPair(veil);
const op = olmPair();
// A's sending chain first, so the first alternating message (B) is a DH step.
veilMessage(vp.a, vp.b, bytes);
olmMessage(op.a, op.b, text);

const alt = Math.max(2, 2 * Math.round(opts.batch / 20));
const fig = { veilSame: [], olmSame: [], same: [], veilAlt: [], olmAlt: [], alt: [] };
for (let r = 0; r <= opts.rounds; r++) {
  const vs = veilSame(vp, bytes, opts.batch);
  const os = olmSame(op, text, opts.batch);
  const va = veilAlternating(vp, bytes, alt);
  const oa = olmAlternating(op, text, alt);
  if (r === 0) continue; // warm-up: JIT and caches
  fig.veilSame.push(vs);
  fig.olmSame.push(os);
  fig.same.push(os / vs);
  fig.veilAlt.push(va);
  fig.olmAlt.push(oa);
  fig.alt.push(oa / va);
}

const out = [
  ['js.veil_same_direction_message_us', median(fig.veilSame), 'us'],
  ['js.olm_same_direction_message_us', median(fig.olmSame), 'us'],
  ['js.olm_vs_veil_same_direction', median(fig.same), 'ratio'],
  ['js.veil_alternating_message_us', median(fig.veilAlt), 'us'],
  ['js.olm_alternating_message_us', median(fig.olmAlt), 'us'],
  ['js.olm_vs_veil_alternating', median(fig.alt), 'ratio'],
];
for (const [name, value, unit] of out) console.log(`${name} ${value.toFixed(3)} ${unit}`);

for (const o of [vp.a, vp.b, ...vp.keyrings]) o.dispose();
for (const o of [op.a, op.b, ...op.accounts]) o.free();
