// SPDX-License-Identifier: ISC
//
// The veil relay protocol (SPEC.md section 9) spoken by off-the-shelf Node
// packages only: `ws` for WebSockets, `@msgpack/msgpack` for frames, Node's
// crypto for Ed25519 and HKDF, `@noble/hashes` for BLAKE2b. Nothing here comes
// from veil's C code: it proves the frames are plain msgpack over plain
// WebSockets, and it recomputes the examples of SPEC.md 9.13 independently.
//
// Run by ctest (tests/relay/CMakeLists.txt) with VEIL_RELAY_BIN set to the
// veil-relay binary; the relay runs on a loopback port with its store in a
// temporary directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { encode, decode } from '@msgpack/msgpack';
import { blake2b } from '@noble/hashes/blake2b';

const T = {
  HELLO: 0x01, ERROR: 0x02, AUTH: 0x10, AUTH_OK: 0x11, JOIN: 0x20, JOINED: 0x21, LEAVE: 0x22, LEFT: 0x23,
  PRESENCE: 0x24, CAUGHT_UP: 0x25, PUBLISH: 0x30, ACK: 0x31, DELIVER: 0x32, EPHEMERAL: 0x33, EPHEMERAL_OK: 0x34,
  EPHEMERAL_DELIVER: 0x35, HISTORY: 0x40, HISTORY_PAGE: 0x41, INBOX_POST: 0x50, INBOX_POSTED: 0x51,
  INBOX_FETCH: 0x52, INBOX_PAGE: 0x53, INBOX_ACK: 0x54, INBOX_ACKED: 0x55, INBOX_NEW: 0x56,
  PREKEY_UPLOAD: 0x60, PREKEY_STORED: 0x61, PREKEY_FETCH: 0x62, PREKEY_BUNDLE: 0x63, PREKEY_COUNT: 0x64,
  PREKEY_COUNTED: 0x65,
};
const hex = (b) => Buffer.from(b).toString('hex');
const cat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));

// ---------------------------------------------------------------- crypto from Node alone

function ed25519(seed) {
  const key = crypto.createPrivateKey({
    key: cat(Buffer.from('302e020100300506032b657004220420', 'hex'), seed), format: 'der', type: 'pkcs8',
  });
  const pk = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12);
  return { pk: new Uint8Array(pk), sign: (m) => new Uint8Array(crypto.sign(null, Buffer.from(m), key)) };
}

function roomFromSecret(secret) {
  const seed = Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), 'veil-room-access-v1', 32));
  const access = ed25519(seed);
  const id = blake2b(cat('veil-room-id-v1', access.pk), { dkLen: 32 });
  return { seed, access, id };
}

const authSig = (id, nonce) => id.sign(cat('veil-relay-auth-v1', nonce, id.pk));
const joinSig = (room, nonce) => room.access.sign(cat('veil-room-join-v1', nonce, room.id));

// ---------------------------------------------------------------- SPEC.md 9.13, recomputed

const SPEC = {
  ik: '8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c',
  seed: 'c672aa6386c898a02c6b58aa09331246992bb51e393d3f753c8771bfa2154a1a',
  apk: 'e7d249c2586d4c06228df9050d3382050596f7c39a37771f77cca0ef9a42d826',
  room: 'e4737e0c402df48971d54a9088102b23da8d28fd83e65be9985911dc59bebcba',
};

function specHex(name) {
  // The example blocks of SPEC.md 9.13: a caption line ending in ':' then hex lines.
  const spec = fs.readFileSync(new URL('../../SPEC.md', import.meta.url), 'utf8');
  const section = spec.slice(spec.indexOf('### 9.13 Examples'));
  const lines = section.split('\n');
  const at = lines.findIndex((l) => l.startsWith(name + ' ') || l.startsWith(name + ','));
  assert.ok(at >= 0, `SPEC.md 9.13 has no example ${name}`);
  let out = '';
  for (let i = at + 1; i < lines.length && /^[0-9a-f]+$/.test(lines[i]); i++) out += lines[i];
  return out;
}

test('SPEC.md 9.13 examples, recomputed with Node crypto and @msgpack/msgpack', () => {
  const id = ed25519(Buffer.alloc(32, 1));
  assert.equal(hex(id.pk), SPEC.ik);
  const nonce = new Uint8Array(32).fill(7);
  const room = roomFromSecret(Buffer.alloc(32, 2));
  assert.equal(hex(room.seed), SPEC.seed);
  assert.equal(hex(room.access.pk), SPEC.apk);
  assert.equal(hex(room.id), SPEC.room);
  const cmid = new Uint8Array(16).fill(0x0c);
  const hi = new TextEncoder().encode('hi');
  // @msgpack/msgpack writes keys in insertion order and integers in their shortest form,
  // so writing the keys in SPEC.md 9.4 order must give the relay's octets exactly.
  const cases = {
    HELLO: { v: 1, t: T.HELLO, id: 0, nonce, max_frame: 70656, max_env: 69632 },
    'HELLO+srv': { v: 1, t: T.HELLO, id: 0, nonce, max_frame: 70656, max_env: 69632, srv: 'veil-relay/0.1.0' },
    AUTH: { v: 1, t: T.AUTH, id: 1, ik: id.pk, sig: authSig(id, nonce) },
    JOIN: { v: 1, t: T.JOIN, id: 2, room: room.id, apk: room.access.pk, sig: joinSig(room, nonce),
      tag: new Uint8Array([0xaa]), since: 0 },
    JOINED: { v: 1, t: T.JOINED, id: 2, room: room.id, head: 0, first: 1, members: [new Uint8Array([0xaa])] },
    PUBLISH: { v: 1, t: T.PUBLISH, id: 3, room: room.id, cmid, env: hi },
    ACK: { v: 1, t: T.ACK, id: 3, room: room.id, cmid, seq: 1, dup: false },
    DELIVER: { v: 1, t: T.DELIVER, id: 0, room: room.id, seq: 1, cmid, env: hi },
    ERROR: { v: 1, t: T.ERROR, id: 9, code: -17, msg: 'room not joined', rt: 0x30 },
    HISTORY_PAGE: { v: 1, t: T.HISTORY_PAGE, id: 4, room: room.id, items: [[1, cmid, hi]], more: false },
  };
  for (const [name, frame] of Object.entries(cases)) {
    const want = specHex(name);
    assert.equal(hex(encode(frame)), want, `${name} encodes as in SPEC.md`);
    const back = decode(Buffer.from(want, 'hex'));
    assert.equal(back.t, frame.t);
  }
});

// ---------------------------------------------------------------- a live relay

let relay;
let port;
let dir;

before(async () => {
  const bin = process.env.VEIL_RELAY_BIN;
  assert.ok(bin, 'VEIL_RELAY_BIN must name the veil-relay binary');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veil-relay-node-'));
  const portFile = path.join(dir, 'port');
  relay = spawn(bin, ['--host', '127.0.0.1', '--port', '0', '--port-file', portFile,
    '--db', path.join(dir, 'relay.db'), '--web', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 15000;
  while (!fs.existsSync(portFile)) {
    assert.ok(Date.now() < deadline, 'relay did not start');
    assert.equal(relay.exitCode, null, 'relay exited');
    await new Promise((r) => setTimeout(r, 20));
  }
  port = Number(fs.readFileSync(portFile, 'utf8'));
});

after(async () => {
  if (relay && relay.exitCode === null) {
    const exited = new Promise((r) => relay.once('exit', (code) => r(code)));
    relay.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10000).unref())]);
    assert.equal(code, 0, 'relay exits cleanly on SIGTERM');
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

// A connection with a queue of decoded frames and a bounded wait for the next one.
class Client {
  static async open(protocol = 'veil.v1') {
    const c = new Client();
    c.ws = new WebSocket(`ws://127.0.0.1:${port}/`, protocol);
    c.ws.binaryType = 'nodebuffer';
    c.frames = [];
    c.waiters = [];
    c.closed = null;
    c.nextId = 1;
    c.ws.on('message', (data, isBinary) => {
      assert.ok(isBinary, 'the relay sends binary messages only');
      if (c.helloRaw === undefined) c.helloRaw = Buffer.from(data);
      c.frames.push(decode(data));
      c.wake();
    });
    c.ws.on('close', (code) => { c.closed = code; c.wake(); });
    c.ws.on('error', () => {});
    c.hello = await c.next(T.HELLO);
    return c;
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  async next(type, ms = 5000) {
    const deadline = Date.now() + ms;
    while (this.frames.length === 0) {
      if (this.closed !== null) throw new Error(`closed (${this.closed}) waiting for 0x${type.toString(16)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for 0x${type.toString(16)}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, left).unref(); });
    }
    const f = this.frames.shift();
    if (type !== undefined && f.t !== type) {
      throw new Error(`expected 0x${type.toString(16)}, got 0x${f.t.toString(16)} ${f.t === T.ERROR ? f.code + ' ' + f.msg : ''}`);
    }
    return f;
  }

  send(frame) {
    const id = this.nextId++;
    this.ws.send(encode({ v: 1, id, ...frame }));
    return id;
  }

  async request(frame, replyType) {
    const id = this.send(frame);
    const f = await this.next(replyType);
    assert.equal(f.id, id);
    return f;
  }

  async auth(identity) {
    const f = await this.request({ t: T.AUTH, ik: identity.pk, sig: authSig(identity, this.hello.nonce) }, T.AUTH_OK);
    assert.equal(hex(f.ik), hex(identity.pk));
  }

  async join(room, tag, since) {
    const frame = { t: T.JOIN, room: room.id, apk: room.access.pk, sig: joinSig(room, this.hello.nonce), tag };
    if (since !== undefined) frame.since = since;
    return this.request(frame, T.JOINED);
  }

  close() { this.ws.close(); }
}

test('plain ws + msgpack: auth, rooms, presence, publish, deliver, catch-up, history', async () => {
  const alice = ed25519(Buffer.alloc(32, 0x41));
  const bob = ed25519(Buffer.alloc(32, 0x42));
  const room = roomFromSecret(crypto.randomBytes(32));
  const a = await Client.open();
  const b = await Client.open();
  assert.equal(a.hello.nonce.length, 32);
  assert.equal(a.hello.max_frame, 70656);
  // The relay's own HELLO octets are SPEC.md 9.13's HELLO+srv once the nonce is replaced.
  const at = a.helloRaw.indexOf(Buffer.from(a.hello.nonce));
  assert.ok(at > 0);
  const helloSpec = Buffer.from(a.helloRaw);
  helloSpec.fill(7, at, at + 32);
  assert.equal(hex(helloSpec), specHex('HELLO+srv'), "the relay's HELLO is SPEC.md 9.13's HELLO+srv");
  await a.auth(alice);
  await b.auth(bob);
  const ja = await a.join(room, new Uint8Array([1]));
  assert.equal(ja.head, 0);
  assert.equal(ja.first, 1);
  const jb = await b.join(room, new Uint8Array([2]));
  assert.equal(jb.members.length, 2);
  const p = await a.next(T.PRESENCE);
  assert.deepEqual([...p.tag], [2]);
  assert.equal(p.on, true);

  for (let i = 1; i <= 5; i++) {
    const cmid = crypto.randomBytes(16);
    const ack = await a.request({ t: T.PUBLISH, room: room.id, cmid, env: Buffer.from(`msg ${i}`) }, T.ACK);
    assert.equal(ack.seq, i);
    assert.equal(ack.dup, false);
    const d = await b.next(T.DELIVER);
    assert.equal(d.seq, i);
    assert.equal(Buffer.from(d.env).toString(), `msg ${i}`);
    assert.equal(hex(d.cmid), hex(cmid));
    if (i === 3) {
      const again = await a.request({ t: T.PUBLISH, room: room.id, cmid, env: Buffer.from('x') }, T.ACK);
      assert.equal(again.seq, 3);
      assert.equal(again.dup, true);
    }
  }
  await a.request({ t: T.EPHEMERAL, room: room.id, env: Buffer.from('typing') }, T.EPHEMERAL_OK);
  assert.equal(Buffer.from((await b.next(T.EPHEMERAL_DELIVER)).env).toString(), 'typing');

  const page = await b.request({ t: T.HISTORY, room: room.id, limit: 2 }, T.HISTORY_PAGE);
  assert.deepEqual(page.items.map((it) => it[0]), [4, 5]);
  assert.equal(page.more, true);

  // Bob reconnects and catches up from seq 2.
  b.close();
  const left = await a.next(T.PRESENCE);
  assert.equal(left.on, false);
  const b2 = await Client.open();
  await b2.auth(bob);
  const j2 = await b2.join(room, new Uint8Array([2]), 2);
  assert.equal(j2.head, 5);
  for (let s = 3; s <= 5; s++) assert.equal((await b2.next(T.DELIVER)).seq, s);
  assert.equal((await b2.next(T.CAUGHT_UP)).seq, 5);
  a.close();
  b2.close();
});

test('plain ws + msgpack: inbox and prekeys, anonymous where allowed', async () => {
  const bob = ed25519(Buffer.alloc(32, 0x43));
  const anon = await Client.open();
  const b = await Client.open();
  await b.auth(bob);
  const posted = await anon.request({ t: T.INBOX_POST, to: bob.pk, env: Buffer.from('first contact') }, T.INBOX_POSTED);
  const pushed = await b.next(T.INBOX_NEW);
  assert.equal(pushed.iid, posted.iid);
  const inbox = await b.request({ t: T.INBOX_FETCH, limit: 10 }, T.INBOX_PAGE);
  assert.equal(inbox.items.length, 1);
  assert.equal(Buffer.from(inbox.items[0][2]).toString(), 'first contact');
  const acked = await b.request({ t: T.INBOX_ACK, ids: [posted.iid] }, T.INBOX_ACKED);
  assert.equal(acked.n, 1);

  // A bundle base (SPEC.md 5.2 octets 0..228), signed with Node's Ed25519.
  const ikd = crypto.generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const spk = crypto.generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
  const spkId = Buffer.from([0, 0, 0, 7]);
  const base = cat([1], bob.pk, ikd, bob.sign(cat('veil-idk-v1', ikd)), spkId, spk,
    bob.sign(cat('veil-spk-v1', spkId, spk)));
  assert.equal(base.length, 229);
  const opks = [1, 2].map((n) => cat([0, 0, 0, n], crypto.randomBytes(32)));
  const stored = await b.request({ t: T.PREKEY_UPLOAD, base, opks }, T.PREKEY_STORED);
  assert.equal(stored.count, 2);
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const bundle = (await anon.request({ t: T.PREKEY_FETCH, ik: bob.pk }, T.PREKEY_BUNDLE)).bundle;
    assert.equal(bundle.length, 266);
    assert.equal(hex(bundle.subarray(0, 229)), hex(base));
    ids.push(bundle[229] ? bundle.readUInt32BE(230) : 0);
  }
  assert.deepEqual(ids, [1, 2, 0]);
  const counted = await b.request({ t: T.PREKEY_COUNT }, T.PREKEY_COUNTED);
  assert.equal(counted.count, 0);
  assert.equal(counted.spk_id, 7);
  // Anonymous connections may do nothing else.
  const err = await anon.request({ t: T.PREKEY_COUNT }, T.ERROR);
  assert.equal(err.code, -16);
  anon.close();
  b.close();
});

test('plain ws + msgpack: errors are frames with stable codes', async () => {
  const c = await Client.open();
  let e = await c.request({ t: 0x7e }, T.ERROR);
  assert.equal(e.code, -15);
  assert.equal(e.rt, 0x7e);
  e = await c.request({ t: T.LEAVE, room: 'not bytes' }, T.ERROR);
  assert.equal(e.code, -1);
  // Unknown keys are ignored (forward compatibility).
  await c.request({ t: T.INBOX_POST, to: new Uint8Array(32), env: Buffer.from('x'), future: { a: [1.5] } }, T.INBOX_POSTED);
  c.ws.send(Buffer.from([0xc1]));
  e = await c.next(T.ERROR);
  assert.equal(e.code, -1);
  c.close();
  // Without the subprotocol the relay closes with 1002.
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const code = await new Promise((r) => { ws.on('close', r); ws.on('error', () => {}); });
  assert.equal(code, 1002);
});
