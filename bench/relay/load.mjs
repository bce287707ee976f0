// SPDX-License-Identifier: ISC
//
// The one load generator of the relay benchmark, with an adapter per server:
//   veil  veil-relay, SPEC.md section 9 (AUTH, JOIN with proof, PUBLISH, DELIVER)
//   sio   a Socket.IO 4 room-broadcast server (sio_server.mjs)
//   ws    a bare `ws` broadcast server (ws_server.mjs)
//   lws   the minimal libwebsockets broadcast server (lws_server.c), same protocol as ws
//
// Modes:
//   fanout  ROOMS x MEMBERS connections, each member publishing RATE bodies of
//           SIZE octets per second; after WARMUP s it measures SECONDS s: server
//           CPU (every thread's, from /proc/PID/task/*/schedstat) per delivered body, and the
//           delivery latency (a send timestamp in the body; one clock, as all
//           clients live in this process).
//   idle    CONNS connections, authenticated and joined (rooms of MEMBERS),
//           silent; server RSS (/proc/PID/status VmRSS) per connection, above
//           a baseline taken with WARMCONNS connections open.
//   maxconns  (veil) as many authenticated, joined connections as the relay
//           holds, up to CONNS: WORKERS child processes (each with its own
//           descriptor limit and loopback source address 127.0.0.N, so the
//           client side runs out of neither descriptors nor ports) open
//           connections in turn until one fails or times out, or free memory
//           runs low; reports how many are still open after a settle, and why
//           it stopped.
//   room    (veil) ROOMSIZE members in one room; PUBLISHERS of them publish
//           in a closed loop (WINDOW PUBLISHes awaiting their ACK each) for
//           SECONDS s; publishes/s (ACKs) and deliveries/s (counted by every
//           member), server CPU. The members that only listen count frames
//           from the raw socket (no msgpack decoding), so that the load
//           generator, on one core, keeps up as long as it can.
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
  clk_tck: 100, workers: 4, worker: 0, first: 0, timeout: 10, roomsize: 1000, publishers: 10, window: 8, hold: 0,
};
for (const kv of rest) {
  const [k, v] = kv.split('=');
  opt[k] = Number(v);
}
const port = Number(portArg);
// SPEC.md 9.7: a cmid starts with the publisher's clock in milliseconds (48 bits, big-endian), then 10 random octets.
function cmidNow() {
  const c = crypto.randomBytes(16);
  c.writeUIntBE(Date.now(), 0, 6);
  return c;
}
const pid = Number(pidArg);

// CPU time of each thread of the server (the relay's WAL checkpointer is one
// of them), in ns: the first field of /proc/PID/task/TID/schedstat, the
// scheduler's own count, where utime + stime of /proc/PID/stat come in clock
// ticks (10 ms: 3% of what the relay spends in a fan-out window).
function threadCpu() {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      let ns;
      try {
        ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ns = ((Number(f[11]) + Number(f[12])) * 1e9) / opt.clk_tck; // utime, stime: fields 14 and 15 of stat
      }
      out.set(tid, { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ns });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

// Seconds of CPU between two threadCpu() snapshots, by thread; a thread that ended in between is left out.
function cpuBetween(th0, th1) {
  const by = [];
  let sum = 0;
  for (const [tid, t] of th1) {
    const dt = (t.ns - (th0.has(tid) ? th0.get(tid).ns : 0)) / 1e9;
    sum += dt;
    by.push([dt, `${t.comm}/${tid}${String(tid) === String(pid) ? ' (main)' : ''}`]);
  }
  by.sort((a, b) => b[0] - a[0]);
  return { sum, by };
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

function veilClient(roomIndex, memberIndex, how = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, 'veil.v1', {
      perMessageDeflate: false, localAddress: how.localAddress, handshakeTimeout: opt.timeout * 1000,
    });
    const id = ed25519(crypto.randomBytes(32));
    const room = how.room || veilRoom(roomIndex);
    let nonce;
    let nextId = 1;
    let joined = false;
    const timer = setTimeout(() => { if (!joined) { ws.terminate(); reject(new Error('timed out before JOINED')); } },
      opt.timeout * 1000);
    ws.binaryType = 'nodebuffer';
    ws.on('error', (e) => { clearTimeout(timer); if (!joined) reject(e); });
    ws.on('close', (code) => {
      clearTimeout(timer);
      if (!joined) reject(new Error(`closed before JOINED (${code})`));
      else if (how.onClose) how.onClose(code);
    });
    ws.on('message', (data) => {
      if (joined && how.onFrame && how.onFrame(data)) return;
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
          joined = true;
          clearTimeout(timer);
          resolve({
            ws,
            publish(body) { ws.send(encode({ v: 1, t: 0x30, id: nextId++, room: room.id, cmid: cmidNow(), env: body })); },
            close() { ws.terminate(); },
          });
          break;
        case 0x31:
          if (how.onAck) how.onAck(f);
          break;
        case 0x32:
          onBody(f.env);
          break;
        case 0x02:
          errors++;
          if (errors < 5 && mode !== 'maxconns-worker') console.error(`# veil error ${f.code} ${f.msg}`);
          if (!joined) { clearTimeout(timer); ws.terminate(); reject(new Error(`error frame ${f.code} ${f.msg}`)); }
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

const connectOne = { veil: veilClient, sio: sioClient, ws: wsClient, lws: wsClient }[kind];
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
  const th0 = threadCpu();
  const d0 = deliveries;
  const p0 = published;
  const t0 = process.hrtime.bigint();
  latencies = [];
  measuring = true;
  await sleep(opt.seconds * 1000);
  measuring = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const { sum: cpu, by } = cpuBetween(th0, threadCpu());
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
  // Where the server's CPU went, by thread.
  console.log(`# ${kind} server CPU by thread (ms): ` +
    by.filter(([dt]) => dt > 0).slice(0, 4).map(([dt, n]) => `${n} ${(dt * 1000).toFixed(0)}`).join(', '));
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

function memAvailableMiB() {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return Number(m[1]) / 1024;
}

// One child of maxconns: opens CONNS connections from 127.0.0.(2 + WORKER), stops at the first failure.
async function maxconnsWorker() {
  const how = { localAddress: `127.0.0.${2 + opt.worker}`, onClose: () => { open--; } };
  const clients = [];
  let open = 0;
  let why = '';
  for (let i = 0; i < opt.conns && !why; i += opt.batch) {
    if (memAvailableMiB() < 1024) {
      why = 'less than 1 GiB of memory left on the machine';
      break;
    }
    const batch = [];
    for (let k = i; k < Math.min(opt.conns, i + opt.batch); k++) {
      const index = opt.first + k;
      batch.push(connectOne(Math.floor(index / opt.members), index % opt.members, how));
    }
    for (const r of await Promise.allSettled(batch)) {
      if (r.status === 'fulfilled') {
        clients.push(r.value);
        open++;
      } else if (!why) {
        why = `a connection failed: ${r.reason && r.reason.message}`;
      }
    }
  }
  process.send({ opened: open, why });
  process.on('message', (m) => {
    if (m === 'count') {
      process.send({ open });
    } else {
      clients.forEach((c) => c.close());
      setTimeout(() => process.exit(0), 300);
    }
  });
  await new Promise(() => {});
}

async function maxconns() {
  const { fork } = await import('node:child_process');
  const per = Math.ceil(opt.conns / opt.workers);
  const workers = [];
  const ask = (c, m) => new Promise((resolve) => { c.once('message', resolve); if (m) c.send(m); });
  let opened = 0;
  let why = `reached the benchmark's cap of ${opt.conns}`;
  const t0 = process.hrtime.bigint();
  for (let w = 0; w < opt.workers && opened < opt.conns; w++) {
    const want = Math.min(per, opt.conns - opened);
    const child = fork(new URL(import.meta.url).pathname,
      [kind, portArg, pidArg, 'maxconns-worker', ...rest, `worker=${w}`, `conns=${want}`, `first=${opened}`],
      { execArgv: ['--max-old-space-size=4096'] });
    workers.push(child);
    const res = await ask(child);
    opened += res.opened;
    if (res.why) {
      why = res.why;
      break;
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await sleep(2000);
  const rss = rssKiB();
  let idleCpu = null;
  if (opt.hold > 0) {
    // The server's CPU while it only holds them (pings and pongs included if its idle time is short enough).
    const c0 = threadCpu();
    const t1 = process.hrtime.bigint();
    await sleep(opt.hold * 1000);
    idleCpu = (100 * cpuBetween(c0, threadCpu()).sum) / (Number(process.hrtime.bigint() - t1) / 1e9);
  }
  let held = 0;
  for (const c of workers) held += (await ask(c, 'count')).open;
  const name = `relay.${kind}`;
  console.log(`${name}.max_conns ${held} connections`);
  console.log(`${name}.max_conns_rss ${(rss / 1024).toFixed(1)} MiB`);
  console.log(`${name}.max_conns_open_rate ${(opened / secs).toFixed(0)} 1/s`);
  if (idleCpu !== null) console.log(`${name}.max_conns_idle_cpu ${idleCpu.toFixed(1)} %`);
  console.log(`# ${kind} max_conns: ${opened} opened (authenticated and joined) in ${secs.toFixed(1)} s, ${held} still open ${2 + opt.hold} s later; stopped: ${why}`);
  // The next run starts only once every client process has closed its connections and gone.
  for (const c of workers) c.send('close');
  await Promise.all(workers.map((c) => new Promise((resolve) => {
    if (c.exitCode !== null) resolve();
    c.once('exit', resolve);
    setTimeout(() => { c.kill('SIGKILL'); resolve(); }, 30000);
  })));
}

// Counts WebSocket frames straight from the socket of a listening member (server frames are unmasked).
function frameCounter(sock) {
  let skip = 0;
  let part = null;
  sock.removeAllListeners('data');
  sock.on('data', (chunk) => {
    let buf = chunk;
    if (part) {
      buf = Buffer.concat([part, chunk]);
      part = null;
    }
    let i = 0;
    while (i < buf.length) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length - i);
        skip -= n;
        i += n;
        continue;
      }
      let len = buf[i + 1] & 0x7f;
      let h = 2;
      if (buf.length - i < 2 || (len === 126 && buf.length - i < 4) || (len === 127 && buf.length - i < 10)) {
        part = Buffer.from(buf.subarray(i));
        break;
      }
      if (len === 126) {
        len = buf.readUInt16BE(i + 2);
        h = 4;
      } else if (len === 127) {
        len = Number(buf.readBigUInt64BE(i + 2));
        h = 10;
      }
      deliveries++;
      i += h;
      skip = len;
    }
  });
  sock.resume();
}

async function room() {
  const roomRef = veilRoom(1e6);
  let closed = 0;
  let acked = 0;
  const members = [];
  const pubs = [];
  const body = Buffer.alloc(opt.size, 0x5a);
  let running = true;
  for (let i = 0; i < opt.roomsize; i += opt.batch) {
    const batch = [];
    for (let k = i; k < Math.min(opt.roomsize, i + opt.batch); k++) {
      const isPub = k < opt.publishers;
      const how = { room: roomRef, onClose: () => { closed++; } };
      if (isPub) {
        how.onAck = () => {
          acked++;
          if (running) {
            body.writeBigUInt64BE(process.hrtime.bigint(), 0);
            pubs[k].publish(body);
          }
        };
      }
      batch.push(veilClient(0, k, how).then((c) => { if (isPub) pubs[k] = c; return c; }));
    }
    members.push(...(await Promise.all(batch)));
  }
  await sleep(1000); // presence of the last joins delivered; nobody sends now
  for (const c of members.slice(opt.publishers)) frameCounter(c.ws._socket);
  for (const p of pubs) {
    for (let w = 0; w < opt.window; w++) {
      body.writeBigUInt64BE(process.hrtime.bigint(), 0);
      p.publish(body);
    }
  }
  await sleep(opt.warmup * 1000);
  const th0 = threadCpu();
  const lg0 = process.cpuUsage();
  const d0 = deliveries;
  const a0 = acked;
  const c0 = closed;
  const t0 = process.hrtime.bigint();
  latencies = [];
  measuring = true;
  await sleep(opt.seconds * 1000);
  measuring = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuBetween(th0, threadCpu()).sum;
  const lg = process.cpuUsage(lg0);
  const d = deliveries - d0;
  const a = acked - a0;
  running = false;
  latencies.sort((x, y) => x - y);
  const name = `relay.${kind}.room${opt.roomsize}`;
  console.log(`${name}.publishes_per_s ${(a / secs).toFixed(0)} 1/s`);
  console.log(`${name}.deliveries_per_s ${(d / secs).toFixed(0)} 1/s`);
  console.log(`${name}.delivered_ratio ${(d / Math.max(1, a * (opt.roomsize - 1))).toFixed(3)} x`);
  console.log(`${name}.server_cpu ${((100 * cpu) / secs).toFixed(1)} %`);
  console.log(`${name}.cpu_per_delivery ${((cpu * 1e6) / Math.max(d, 1)).toFixed(3)} us`);
  console.log(`${name}.latency_p50 ${(pct(latencies, 50) / 1e6).toFixed(3)} ms`);
  console.log(`${name}.latency_p99 ${(pct(latencies, 99) / 1e6).toFixed(3)} ms`);
  console.log(`# ${kind} room of ${opt.roomsize}: ${opt.publishers} publishers with ${opt.window} PUBLISHes in flight each;` +
    ` ${closed - c0} members dropped while measured${errors ? `, ${errors} error frames` : ''}` +
    ` (latency: publish to delivery at the other publishers); load generator CPU ` +
    `${((lg.user + lg.system) / 1e4 / secs).toFixed(0)}% of its core (near 100%: it, not the relay, set the pace)`);
  members.forEach((c) => c.close());
}

const modes = { idle, fanout, maxconns, 'maxconns-worker': maxconnsWorker, room };
if (!modes[mode]) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
await modes[mode]();
await sleep(300);
process.exit(0);
