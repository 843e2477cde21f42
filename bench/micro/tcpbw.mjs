// Ceiling check: raw TCP between two processes, both directions at once, reads into one reused
// buffer (onread). Prints `raw tcp both ways: X GB/s each way`.
//   node bench/micro/tcpbw.mjs [--read-buffer B] [--total B]      (environment: RB)
import net from 'node:net';
import { benchArgs } from '../lib/args.mjs';
import { processPair } from '../lib/pair.mjs';

const o = benchArgs('node bench/micro/tcpbw.mjs [options]', {
  'read-buffer': { type: 'number', env: 'RB', default: 1 << 20, help: 'bytes of the reused read buffer' },
  total: { type: 'number', default: 256 << 20, help: 'bytes each way (a multiple of 1 MiB)' },
});
const TOTAL = o.total,
  MSG = 1 << 20;

const srv = net.createServer({ noDelay: true });
const conn = new Promise((r) => srv.once('connection', r));
const { role, peerPort } = await processPair(
  import.meta.url,
  () => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port))),
);
const readBuf = Buffer.alloc(o['read-buffer']);
const dst = Buffer.alloc(MSG);
let got = 0,
  recvDone;
const rd = new Promise((r) => (recvDone = r));
const _inSock = net.connect({
  host: '127.0.0.1',
  port: peerPort,
  noDelay: true,
  onread: {
    buffer: readBuf,
    callback: (n, buf) => {
      buf.copy(dst, 0, 0, n);
      got += n;
      if (got >= TOTAL) recvDone();
    },
  },
});
const outSock = await conn;
outSock.setNoDelay(true);
const payload = Buffer.alloc(MSG, 1);
const t0 = process.hrtime.bigint();
let sent = 0;
const sd = new Promise((r) => {
  const pump = () => {
    while (sent < TOTAL) {
      sent += MSG;
      if (!outSock.write(payload)) return outSock.once('drain', pump);
    }
    r();
  };
  pump();
});
await Promise.all([rd, sd]);
const s = Number(process.hrtime.bigint() - t0) / 1e9;
if (role === 'a') console.log(`raw tcp both ways: ${(TOTAL / s / 1e9).toFixed(2)} GB/s each way`);
process.exit(0);
