import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/** A stranger's connection to a loopback listener, and whether the listener has closed it. */
export interface Attacker {
  socket: Socket;
  /** Set once the listener closed or reset the connection. */
  closed: boolean;
  /** Resolves when the connection is gone (closed by either side). */
  gone: Promise<void>;
}

const UPGRADE = (port: number) =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

function open(port: number, first: string): Attacker {
  const socket = connect(port, '127.0.0.1');
  const a: Attacker = { socket, closed: false, gone: Promise.resolve() };
  a.gone = new Promise((resolve) => socket.once('close', () => ((a.closed = true), resolve())));
  socket.on('error', () => {});
  socket.write(first);
  return a;
}

/** One client frame header (masked with a zero key) declaring a binary message of `length` bytes. */
function frameHeader(length: number): Buffer {
  const h = Buffer.alloc(14);
  h[0] = 0x82;
  h[1] = 0x80 | 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h; // bytes 10..13: the mask key, zero
}

/**
 * Opens `n` connections (at most `batch` connecting at once) that upgrade to WebSocket, declare
 * a message of `bytes` bytes and send all of it but the last byte, then hold on: what a stranger
 * without the token could make a listener buffer until the auth timeout.
 */
export async function partialMessages(
  port: number,
  n: number,
  bytes: number,
  batch = 50,
): Promise<Attacker[]> {
  const body = Buffer.alloc(bytes - 1); // one buffer, written by every connection
  const all: Attacker[] = [];
  for (let i = 0; i < n; i += batch) {
    const wave = Array.from({ length: Math.min(batch, n - i) }, () => {
      const a = open(port, UPGRADE(port));
      a.socket.once('data', () => (a.socket.write(frameHeader(bytes)), a.socket.write(body)));
      return a;
    });
    // The wave has sent everything, or been cut off (bounded by the test's timeout).
    await Promise.all(
      wave.map(
        (a) =>
          new Promise<void>((resolve) => {
            const poll = setInterval(() => {
              if (a.closed || (a.socket.bytesWritten >= bytes && a.socket.writableLength === 0))
                clearInterval(poll), resolve();
            }, 20);
          }),
      ),
    );
    all.push(...wave);
  }
  return all;
}

/** Opens `n` connections that send half an HTTP request line and nothing more (slowloris). */
export function slowConnections(port: number, n: number): Attacker[] {
  return Array.from({ length: n }, () => open(port, 'GET / HTTP/1.1\r\nHost: '));
}

/** Ends every attacker's connection and waits until they are all gone. */
export async function disconnect(attackers: Attacker[]): Promise<void> {
  for (const a of attackers) a.socket.destroy();
  await Promise.all(attackers.map((a) => a.gone));
}

/** Resident memory of process `pid` in MB (Linux /proc). */
export function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Waits until `cond()` holds, polling; false when `timeoutMs` passed first. */
export async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * `n` strangers each hold a partial message of `bytes` on `port`, then go: the target process's
 * RSS before, under the attack and a second after, and how many of them it dropped.
 */
export async function memoryAttack(
  port: number,
  pid: number,
  n = 500,
  bytes = 1024 * 1024,
): Promise<{ baseline: number; attacked: number; dropped: number; after: number }> {
  const baseline = rssMB(pid);
  const partial = await partialMessages(port, n, bytes);
  await until(() => partial.every((a) => a.closed), 5_000);
  const attacked = rssMB(pid);
  const dropped = partial.filter((a) => a.closed).length;
  await disconnect(partial);
  await new Promise((r) => setTimeout(r, 1_000));
  return { baseline, attacked, dropped, after: rssMB(pid) };
}

/** `cap` idle strangers, then 50 more: resolves once the listener has dropped 50 of the first. */
export async function capAttack(
  port: number,
  cap: number,
): Promise<{ first: Attacker[]; second: Attacker[] }> {
  const first = slowConnections(port, cap);
  await until(() => first.every((a) => a.socket.readyState === 'open'), 10_000);
  await new Promise((r) => setTimeout(r, 300));
  const second = slowConnections(port, 50);
  await until(() => first.filter((a) => a.closed).length >= 50, 5_000);
  return { first, second };
}
