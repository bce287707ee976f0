// SPDX-License-Identifier: ISC
//
// The one load generator of the relay benchmark, with an adapter per server:
//   veil  veil-relay, SPEC.md section 9 (AUTH, JOIN with proof, PUBLISH, DELIVER)
//   sio   a Socket.IO 4 room-broadcast server (sio_server.mjs)
//   ws    a bare `ws` broadcast server (ws_server.mjs)
//
// Modes:
//   fanout  ROOMS x MEMBERS connections, each member publishing RATE bodies of
//           SIZE octets per second; after WARMUP s it measures SECONDS s: server
//           CPU (utime + stime of /proc/PID/stat) per delivered body, and the
//           delivery latency (a send timestamp in the body; one clock, as all
//           clients live in this process).
//   idle    CONNS connections, authenticated and joined (rooms of MEMBERS),
//           silent; server RSS (/proc/PID/status VmRSS) per connection, above
//           a baseline taken with WARMCONNS connections open.
//
// Prints "name value unit" lines (scripts/bench.sh turns them into JSON).
// Usage: node load.mjs KIND PORT SERVER_PID MODE [key=value ...]
import crypto from 'node:crypto';
import fs from 'node:fs';
import WebSocket from 'ws';
import { encode, decode } from '@msgpack/msgpack';
import { io } from 'socket.io-client';
import { blake2b } from '@noble/hashes/blake2b';

const [kind, portArg, pidArg, mode, ...rest] = process.argv.slice(2);
const opt = {
  rooms: 10, members: 20, size: 256, rate: 5, warmup: 3, seconds: 10, conns: 5000, warmconns: 100, batch: 100,
  clk_tck: 100,
};
for (const kv of rest) {
  const [k, v] = kv.split('=');
  opt[k] = Number(v);
}
const port = Number(portArg);
const pid = Number(pidArg);

function cpuTicks() {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
}

function rssKiB() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cat = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));

// ---------------------------------------------------------------- veil keys (Node crypto only)

function ed25519(seed) {
  const key = crypto.createPrivateKey({
    key: cat(Buffer.from('302e020100300506032b657004220420', 'hex'), seed), format: 'der', type: 'pkcs8',
  });
  const pk = crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(12);
  return { pk, sign: (m) => crypto.sign(null, m, key) };
}

const roomCache = new Map();
function veilRoom(index) {
  if (!roomCache.has(index)) {
    const secret = crypto.createHash('sha256').update(`bench room ${index}`).digest();
    const seed = Buffer.from(crypto.hkdfSync('sha256', secret, Buffer.alloc(0), 'veil-room-access-v1', 32));
    const access = ed25519(seed);
    roomCache.set(index, { access, id: Buffer.from(blake2b(cat('veil-room-id-v1', access.pk), { dkLen: 32 })) });
  }
  return roomCache.get(index);
}

// ---------------------------------------------------------------- adapters

let deliveries = 0;
let measuring = false;
let latencies = [];
let errors = 0;

function onBody(body) {
  deliveries++;
  if (measuring && body.length >= 8) {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    latencies.push(Number(process.hrtime.bigint() - b.readBigUInt64BE(0)));
  }
}

function veilClient(roomIndex, memberIndex) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, 'veil.v1', { perMessageDeflate: false });
    const id = ed25519(crypto.randomBytes(32));
    const room = veilRoom(roomIndex);
    let nonce;
    let nextId = 1;
    ws.binaryType = 'nodebuffer';
    ws.on('error', reject);
    ws.on('message', (data) => {
      const f = decode(data);
      switch (f.t) {
        case 0x01:
          nonce = f.nonce;
          ws.send(encode({ v: 1, t: 0x10, id: nextId++, ik: id.pk, sig: id.sign(cat('veil-relay-auth-v1', nonce, id.pk)) }));
          break;
        case 0x11:
          ws.send(encode({ v: 1, t: 0x20, id: nextId++, room: room.id, apk: room.access.pk,
            sig: room.access.sign(cat('veil-room-join-v1', nonce, room.id)), tag: Buffer.from([memberIndex & 0xff, memberIndex >> 8]) }));
          break;
        case 0x21:
          resolve({
            publish(body) { ws.send(encode({ v: 1, t: 0x30, id: nextId++, room: room.id, cmid: crypto.randomBytes(16), env: body })); },
            close() { ws.terminate(); },
          });
          break;
        case 0x32:
          onBody(f.env);
          break;
        case 0x02:
          errors++;
          if (errors < 5) console.error(`# veil error ${f.code} ${f.msg}`);
          break;
        default:
          break;
      }
    });
  });
}

function sioClient(roomIndex) {
  return new Promise((resolve, reject) => {
    const s = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false });
    const room = `room-${roomIndex}`;
    s.on('connect_error', reject);
    s.on('msg', (body) => onBody(body));
    s.on('connect', () => s.emit('join', room, () => resolve({
      publish(body) { s.emit('pub', room, body); },
      close() { s.close(); },
    })));
  });
}

function wsClient(roomIndex) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('open', () => ws.send(`room-${roomIndex}`));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        resolve({ publish(body) { ws.send(body, { binary: true }); }, close() { ws.terminate(); } });
      } else {
        onBody(data);
      }
    });
  });
}

const connectOne = { veil: veilClient, sio: sioClient, ws: wsClient }[kind];
if (!connectOne) {
  console.error(`unknown kind ${kind}`);
  process.exit(2);
}

async function connectMany(n, firstIndex) {
  const clients = [];
  for (let i = 0; i < n; i += opt.batch) {
    const batch = [];
    for (let k = i; k < Math.min(n, i + opt.batch); k++) {
      const index = firstIndex + k;
      batch.push(connectOne(Math.floor(index / opt.members), index % opt.members));
    }
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---------------------------------------------------------------- modes

async function fanout() {
  const n = opt.rooms * opt.members;
  const clients = await connectMany(n, 0);
  const perTick = (opt.rate * n) / 100; // a tick every 10 ms
  let carry = 0;
  let next = 0;
  let published = 0;
  const body = Buffer.alloc(opt.size, 0x5a);
  const timer = setInterval(() => {
    carry += perTick;
    while (carry >= 1) {
      carry -= 1;
      body.writeBigUInt64BE(process.hrtime.bigint(), 0);
      clients[next].publish(body);
      next = (next + 1) % n;
      published++;
    }
  }, 10);
  await sleep(opt.warmup * 1000);
  const cpu0 = cpuTicks();
  const d0 = deliveries;
  const p0 = published;
  const t0 = process.hrtime.bigint();
  latencies = [];
  measuring = true;
  await sleep(opt.seconds * 1000);
  measuring = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = (cpuTicks() - cpu0) / opt.clk_tck;
  const d = deliveries - d0;
  const p = published - p0;
  clearInterval(timer);
  await sleep(500);
  latencies.sort((a, b) => a - b);
  const name = `relay.${kind}`;
  console.log(`${name}.publishes_per_s ${(p / secs).toFixed(0)} 1/s`);
  console.log(`${name}.deliveries_per_s ${(d / secs).toFixed(0)} 1/s`);
  console.log(`${name}.delivered_ratio ${(d / (p * (opt.members - 1))).toFixed(3)} x`);
  console.log(`${name}.server_cpu ${((100 * cpu) / secs).toFixed(1)} %`);
  console.log(`${name}.cpu_per_delivery ${((cpu * 1e6) / Math.max(d, 1)).toFixed(3)} us`);
  console.log(`${name}.latency_p50 ${(pct(latencies, 50) / 1e6).toFixed(3)} ms`);
  console.log(`${name}.latency_p99 ${(pct(latencies, 99) / 1e6).toFixed(3)} ms`);
  if (errors) console.log(`# ${kind}: ${errors} error frames`);
  clients.forEach((c) => c.close());
}

async function idle() {
  const warm = await connectMany(opt.warmconns, 0);
  await sleep(2000);
  const rss0 = rssKiB();
  const more = await connectMany(opt.conns, opt.warmconns);
  await sleep(3000);
  const rss1 = rssKiB();
  const name = `relay.${kind}`;
  console.log(`${name}.idle_conns ${opt.conns} connections`);
  console.log(`${name}.idle_rss_per_conn ${((rss1 - rss0) / opt.conns).toFixed(2)} KiB`);
  console.log(`${name}.idle_rss_total ${(rss1 / 1024).toFixed(1)} MiB`);
  if (errors) console.log(`# ${kind}: ${errors} error frames`);
  warm.concat(more).forEach((c) => c.close());
}

await (mode === 'idle' ? idle() : fanout());
await sleep(300);
process.exit(0);
