// SPDX-License-Identifier: ISC
// The ES-module binding (wasm/veil.mjs) over the WebAssembly core, under Node's
// test runner: a full X3DH + ratchet exchange through the JS API, errors as
// VeilError with the core's codes, persistence, disposal.
// Run: node --test tests/wasm/binding.test.mjs  (VEIL_WASM_DIR points at the build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

const dir = process.env.VEIL_WASM_DIR;
assert.ok(dir, 'VEIL_WASM_DIR must point at build/wasm/wasm');
const { loadVeil, VeilError } = await import(path.join(dir, 'veil.mjs'));
const veil = await loadVeil();
const enc = new TextEncoder();
const dec = new TextDecoder();

function pair() {
  const bob = veil.createKeyring(1700000000);
  assert.equal(bob.addOneTimePrekeys(5), 5);
  const alice = veil.createKeyring(1700000000);
  const { session: a, header } = veil.initiate(alice, bob.bundle(0));
  return { alice, bob, a, header };
}

test('sizes come from the core', () => {
  assert.equal(veil.sizes.bundle, 266);
  assert.equal(veil.sizes.x3dhInit, 170);
  assert.equal(veil.sizes.overhead, 97);
});

test('first contact, conversation, replay rejected', () => {
  const { alice, bob, a, header } = pair();
  const m1 = a.encrypt(enc.encode('hello bob'));
  const { session: b, opkId } = veil.respond(bob, header);
  assert.equal(dec.decode(b.decrypt(m1)), 'hello bob');
  assert.ok(opkId > 0);
  bob.removeOneTimePrekey(opkId);
  assert.equal(bob.oneTimePrekeyCount(), 4);
  assert.throws(() => veil.respond(bob, header), (e) => e instanceof VeilError && e.veilName === 'VEIL_ENOPREKEY');
  for (let i = 0; i < 10; i++) {
    const from = i % 2 ? a : b;
    const to = i % 2 ? b : a;
    const msg = enc.encode(`message ${i}`);
    const ct = from.encrypt(msg);
    assert.deepEqual(to.decrypt(ct), msg);
    assert.throws(() => to.decrypt(ct), (e) => e.code === -6 && e.veilName === 'VEIL_EREPLAY');
  }
  const tampered = a.encrypt(enc.encode('x'));
  tampered[90] ^= 1;
  assert.throws(() => b.decrypt(tampered), (e) => e.veilName === 'VEIL_EAUTH');
  for (const o of [alice, bob, a, b]) o.dispose();
});

test('safety numbers agree and fingerprints are digits', () => {
  const x = veil.createKeyring();
  const y = veil.createKeyring();
  const px = x.publicIdentity().slice(0, 32);
  const py = y.publicIdentity().slice(0, 32);
  assert.match(x.fingerprint(), /^[0-9]{30}$/);
  const s1 = veil.safetyNumber(px, py);
  assert.match(s1, /^[0-9]{60}$/);
  assert.equal(s1, veil.safetyNumber(py, px));
  x.dispose();
  y.dispose();
});

test('sessions and keyrings survive a sealed round trip', () => {
  const { bob, a, header } = pair();
  const key = new Uint8Array(32).fill(7);
  const m1 = a.encrypt(enc.encode('before restart'));
  const sealed = veil.seal(3, key, bob.serialize());
  bob.dispose();
  const bob2 = veil.restoreKeyring(veil.unseal(3, key, sealed));
  const { session: b } = veil.respond(bob2, header);
  assert.equal(dec.decode(b.decrypt(m1)), 'before restart');
  const b2 = veil.restoreSession(b.serialize());
  const reply = b2.encrypt(enc.encode('after'));
  assert.equal(dec.decode(a.decrypt(reply)), 'after');
  const bad = veil.seal(3, key, new Uint8Array([1, 2, 3]));
  bad[bad.length - 1] ^= 1;
  assert.throws(() => veil.unseal(3, key, bad), (e) => e.veilName === 'VEIL_EAUTH');
  assert.throws(() => veil.restoreSession(new Uint8Array([1, 2, 3])), (e) => e.veilName === 'VEIL_ECORRUPT');
});

test('a disposed object refuses to work', () => {
  const { a } = pair();
  a.dispose();
  assert.throws(() => a.encrypt(enc.encode('x')), (e) => e.veilName === 'VEIL_ESTATE');
  a.dispose(); // idempotent
});

test('bad bundles are refused', () => {
  const bob = veil.createKeyring();
  const alice = veil.createKeyring();
  const b = bob.bundle();
  b[200] ^= 1; // inside the signed prekey signature
  assert.throws(() => veil.initiate(alice, b), (e) => e.veilName === 'VEIL_ESIG');
  assert.throws(() => veil.initiate(alice, b.slice(0, 100)), (e) => e.veilName === 'VEIL_EINVAL');
});
