// Ceiling check: raw TCP, both directions at once, reads into one reused buffer (onread).

import { fork } from 'node:child_process';
import net from 'node:net';

const TOTAL = 256 << 20,
  MSG = 1 << 20;
const [role, myPort, peerPort] = process.argv.slice(2);
if (!role) {
  const a = fork(new URL(import.meta.url).pathname, ['a', '29621', '29622']);
  const b = fork(new URL(import.meta.url).pathname, ['b', '29622', '29621']);
  await Promise.all([a, b].map((p) => new Promise((r) => p.on('exit', r))));
} else {
  const readBuf = Buffer.alloc(Number(process.env.RB ?? 1 << 20));
  const dst = Buffer.alloc(MSG);
  let got = 0,
    recvDone;
  const rd = new Promise((r) => (recvDone = r));
  const srv = net.createServer({ noDelay: true });
  const conn = new Promise((r) => srv.once('connection', r));
  srv.listen(Number(myPort));
  await new Promise((r) => setTimeout(r, 300));
  const _inSock = net.connect({
    port: Number(peerPort),
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
}
