import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { DEFAULTS, isLoopback } from '@ringwire/common';
import { RendezvousServer } from '@ringwire/rendezvous';

/**
 * The rendezvous a worker runs in its own process: alone (size 1), or as rank 0 under an engine
 * (mpirun, srun, a Kubernetes Job) when nothing answers at the job's address, after torch's
 * TCPStore. Other ranks retry their connection until the connect timeout, so whoever starts
 * first does not matter; if rank 0 dies, they lose the rendezvous and fail at once.
 */

/** What the communicator closes with itself. */
export interface EmbeddedRendezvous {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Builds the embedded server. One small function so that the server's credentials scheme can
 * change in one place: today it checks the token every rank shares.
 */
export function embeddedServer(opts: { host: string; port: number; token: string }): RendezvousServer {
  return new RendezvousServer({ host: opts.host, port: opts.port, token: opts.token, log: () => {} });
}

/** A loopback rendezvous for a job of one. */
export async function serveAlone(token: string): Promise<EmbeddedRendezvous> {
  const server = embeddedServer({ host: '127.0.0.1', port: 0, token });
  const { url } = await server.listen();
  return { url, close: () => server.close() };
}

/**
 * Rank 0 under an engine: serves the rendezvous at `url` when that is this host and nothing
 * answers there; undefined when someone else serves it (then connect as every other rank does).
 */
export async function serveIfAbsent(url: string, token: string): Promise<EmbeddedRendezvous | undefined> {
  const { hostname: rawHost, port: rawPort } = new URL(url);
  const host = rawHost.replace(/^\[|\]$/g, '');
  const port = Number(rawPort);
  if (!port || !(await isOwnHost(host)) || (await answers(host, port))) return undefined;
  // Peers on other hosts reach us by name: listen on every interface unless the name is loopback.
  const server = embeddedServer({ host: isLoopback(host) ? host : '0.0.0.0', port, token });
  try {
    await server.listen();
  } catch (err) {
    // Someone bound it between our probe and our bind: they serve, we connect.
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return undefined;
    throw err;
  }
  return { url, close: () => closeWhenLeft(server) };
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
 * Closes rank 0's server once the other ranks have left it (bounded): closing under them would
 * look to them like a lost rendezvous while they finish their own close.
 */
async function closeWhenLeft(server: RendezvousServer): Promise<void> {
  const deadline = Date.now() + DEFAULTS.closeTimeoutMs;
  type Status = { jobs: { members: { alive: boolean }[] }[] };
  const alive = () => (server.status() as Status).jobs.some((j) => j.members.some((m) => m.alive));
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await server.close();
}
