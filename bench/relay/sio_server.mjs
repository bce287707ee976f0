// SPDX-License-Identifier: ISC
// Peer of the relay benchmark: a Socket.IO 4 room-broadcast server, the way a
// Socket.IO chat does it. `join` puts the socket in a room; `pub` re-emits the
// binary body to the other sockets of the room. Usage: node sio_server.mjs PORT
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] || 0);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, maxHttpBufferSize: 1e6 });
io.on('connection', (socket) => {
  socket.on('join', (room, ack) => { socket.join(room); if (typeof ack === 'function') ack(true); });
  socket.on('pub', (room, body) => { socket.to(room).emit('msg', body); });
});
http.listen(port, '127.0.0.1', () => console.log(`listening ${http.address().port}`));
process.on('SIGTERM', () => process.exit(0));
