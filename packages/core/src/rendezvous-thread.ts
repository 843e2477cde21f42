import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { DEFAULTS, isLoopback, RendezvousError, RingwireError } from '@ringwire/common';
import { RendezvousServer } from '@ringwire/rendezvous';

/**
 * The thread an embedded rendezvous runs in (see embedded-rendezvous.ts). Not the caller's
 * thread: training code blocks that for seconds at a time, and a server that cannot read its
 * members' heartbeats declares them lost.
 */

/** What the caller asks for: a loopback server for a job of one, or rank 0's server at `url` if absent. */
export type ServeRequest =
  | { mode: 'alone'; token: string }
  | { mode: 'if-absent'; url: string; token: string };

/** What the thread answers first; then it waits for 'close'. */
export type ServeReply =
  | { t: 'serving'; url: string }
  | { t: 'absent' }
  | { t: 'error'; code?: string; message: string };

/**
 * Builds the embedded server. One small function so that the server's credentials scheme can
 * change in one place: today it checks the token every rank shares.
 */
export function embeddedServer(opts: { host: string; port: number; token: string }): RendezvousServer {
  return new RendezvousServer({ host: opts.host, port: opts.port, token: opts.token, log: () => {} });
}

/** Serves as asked; undefined when someone else serves `url` (or it is not this host's). */
async function serve(req: ServeRequest): Promise<{ server: RendezvousServer; url: string } | undefined> {
  if (req.mode === 'alone') {
    const server = embeddedServer({ host: '127.0.0.1', port: 0, token: req.token });
    return { server, url: (await server.listen()).url };
  }
  const { hostname: rawHost, port: rawPort } = new URL(req.url);
  const host = rawHost.replace(/^\[|\]$/g, '');
  const port = Number(rawPort);
  if (!port || !(await isOwnHost(host)) || (await answers(host, port))) return undefined;
  // Peers on other hosts reach us by name: listen on every interface unless the name is loopback.
  const server = embeddedServer({ host: isLoopback(host) ? host : '0.0.0.0', port, token: req.token });
  try {
    await server.listen();
  } catch (err) {
    // Someone bound it between our probe and our bind: they serve, we connect like every rank.
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw err;
  }
  return { server, url: req.url };
}

/** Whether `host` names this machine: loopback, our hostname, or an address of one of our interfaces. */
export async function isOwnHost(host: string): Promise<boolean> {
  const me = hostname();
  if (isLoopback(host) || host === me || host === me.split('.')[0]) return true;
  const mine = new Set(
    Object.values(networkInterfaces())
      .flat()
      .map((i) => i?.address),
  );
  try {
    const addrs = await lookup(host, { all: true });
    return addrs.some((a) => isLoopback(a.address) || mine.has(a.address));
  } catch {
    return false; // unresolvable: not ours (the other ranks will say they cannot reach it)
  }
}

/** Whether a TCP connection to host:port is accepted within a second. */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 1000 });
    const done = (ok: boolean) => (s.destroy(), resolve(ok));
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

/**
 * Closes the server once the other ranks have left it (bounded): closing under them would look
 * to them like a lost rendezvous while they finish their own close.
 */
async function closeWhenLeft(server: RendezvousServer): Promise<void> {
  const deadline = Date.now() + DEFAULTS.closeTimeoutMs;
  type Status = { jobs: { members: { alive: boolean }[] }[] };
  const alive = () => (server.status() as Status).jobs.some((j) => j.members.some((m) => m.alive));
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await server.close();
}

if (parentPort) {
  const port = parentPort;
  const reply = (m: ServeReply) => port.postMessage(m);
  try {
    const served = await serve(workerData as ServeRequest);
    if (!served) {
      reply({ t: 'absent' });
      port.close();
    } else {
      reply({ t: 'serving', url: served.url });
      port.once('message', () => void closeWhenLeft(served.server).finally(() => port.close()));
    }
  } catch (err) {
    const e =
      err instanceof RingwireError ? err : new RendezvousError(String((err as Error)?.message ?? err));
    reply({ t: 'error', code: e.code, message: e.message });
    port.close();
  }
}
