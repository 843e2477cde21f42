// Ceiling check: two processes each streaming --total bytes to the other over the `ws` library
// (the server->client direction carries the data, as in ringwire), messages of --msg bytes, at
// most --window unacknowledged bytes. Prints `msg M window W: X GB/s each way`.
//   node bench/micro/wsbw.mjs [--msg B] [--window B] [--total B]      (environment: MSG, WINDOW)
import WebSocket, { WebSocketServer } from 'ws';
import { benchArgs } from '../lib/args.mjs';
import { processPair } from '../lib/pair.mjs';

const o = benchArgs('node bench/micro/wsbw.mjs [options]', {
  msg: { type: 'number', env: 'MSG', default: 1 << 20, help: 'bytes per message' },
  window: {
    type: 'number',
    env: 'WINDOW',
    default: 8 << 20,
    help: 'most bytes sent and not yet acknowledged',
  },
  total: { type: 'number', default: 256 << 20, help: 'bytes each way (a multiple of --msg)' },
});
const MSG = o.msg,
  TOTAL = o.total,
  WINDOW = o.window;

let wss;
const { role, peerPort } = await processPair(
  import.meta.url,
  () =>
    new Promise((r) => {
      wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false }, () =>
        r(wss.address().port),
      );
    }),
);
const server = new Promise((r) => wss.on('connection', r));
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
