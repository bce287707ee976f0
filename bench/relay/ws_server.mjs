// SPDX-License-Identifier: ISC
// Peer of the relay benchmark: a bare `ws` broadcast server. The first (text)
// message of a connection names its room; every binary message after it goes
// to the other connections of that room. Usage: node ws_server.mjs PORT
import { WebSocketServer } from 'ws';

const rooms = new Map();
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] || 0), perMessageDeflate: false });
wss.on('connection', (ws) => {
  let room = null;
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      room = data.toString();
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      ws.send('joined');
      return;
    }
    for (const peer of rooms.get(room) || []) {
      if (peer !== ws) peer.send(data, { binary: true });
    }
  });
  ws.on('close', () => { if (room) rooms.get(room).delete(ws); });
});
wss.on('listening', () => console.log(`listening ${wss.address().port}`));
process.on('SIGTERM', () => process.exit(0));
