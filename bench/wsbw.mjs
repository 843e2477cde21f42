// Ceiling check: two processes each streaming TOTAL bytes to the other over ws (server->client
// direction carries the data, as in ringwire), message size MSG, at most WINDOW unacked bytes.

import { fork } from 'node:child_process';
import WebSocket, { WebSocketServer } from 'ws';

const MSG = Number(process.env.MSG ?? 1 << 20),
  TOTAL = 256 << 20,
  WINDOW = Number(process.env.WINDOW ?? 8 << 20);
const [role, myPort, peerPort] = process.argv.slice(2);
if (!role) {
  const a = fork(new URL(import.meta.url).pathname, ['a', '29611', '29612']);
  const b = fork(new URL(import.meta.url).pathname, ['b', '29612', '29611']);
  await Promise.all([a, b].map((p) => new Promise((r) => p.on('exit', r))));
} else {
  const wss = new WebSocketServer({ port: Number(myPort), perMessageDeflate: false });
  const server = new Promise((r) => wss.on('connection', r));
  await new Promise((r) => setTimeout(r, 300));
  const client = new WebSocket(`ws://127.0.0.1:${peerPort}`, {
    perMessageDeflate: false,
    maxPayload: 1 << 30,
  });
  await new Promise((r) => client.on('open', r));
  const out = await server;
  const payload = Buffer.alloc(MSG, 1);
  const dst = Buffer.alloc(MSG);
  let got = 0,
    acked = 0,
    sent = 0;
  const t0 = process.hrtime.bigint();
  const recvDone = new Promise((r) =>
    client.on('message', (d) => {
      d.copy(dst);
      got += d.length;
      client.send('k');
      if (got >= TOTAL) r();
    }),
  );
  const sendDone = new Promise((r) => {
    const pump = () => {
      while (sent < TOTAL && sent - acked < WINDOW) {
        out.send(payload);
        sent += MSG;
      }
      if (acked >= TOTAL) r();
    };
    out.on('message', () => {
      acked += MSG;
      pump();
    });
    pump();
  });
  await Promise.all([recvDone, sendDone]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (role === 'a') console.log(`msg ${MSG} window ${WINDOW}: ${(TOTAL / s / 1e9).toFixed(2)} GB/s each way`);
  process.exit(0);
}
