import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Proc, spawnNode } from './procs.js';

/** The standalone `ringwire-rendezvous` CLI (built). */
export const RENDEZVOUS_CLI = fileURLToPath(new URL('../../rendezvous/dist/cli.js', import.meta.url));

/** A loopback port that was free a moment ago (to restart a rendezvous on the same one). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts `ringwire-rendezvous` on a loopback port and waits until it listens; killAll() stops it. */
export async function startStandalone(port: number, tokenFile: string): Promise<Proc> {
  const p = spawnNode(RENDEZVOUS_CLI, ['--port', String(port), '--token-file', tokenFile]);
  await p.waitFor(/listening on/, 10_000);
  return p;
}

/** SIGKILLs a process and waits until it is gone. */
export async function sigkill(p: Proc): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}
