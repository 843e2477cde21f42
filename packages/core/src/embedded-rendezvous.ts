import { Worker } from 'node:worker_threads';
import { DEFAULTS, RendezvousError, RingwireError } from '@ringwire/common';
import type { ServeReply, ServeRequest } from './rendezvous-thread.js';

/**
 * The rendezvous a worker runs inside its own process, in a thread of its own: alone (size 1),
 * or as rank 0 under an engine (mpirun, srun, a Kubernetes Job) when nothing answers at the
 * job's address, after torch's TCPStore. Other ranks retry their connection until the connect
 * timeout, so whoever starts first does not matter; if rank 0 dies, they lose the rendezvous
 * and fail at once.
 */
export interface EmbeddedRendezvous {
  readonly url: string;
  /** Waits (bounded) for the other ranks to leave, then stops the server and its thread. */
  close(): Promise<void>;
}

async function start(req: ServeRequest): Promise<EmbeddedRendezvous | undefined> {
  const worker = new Worker(new URL('./rendezvous-thread.js', import.meta.url), { workerData: req });
  const reply = await new Promise<ServeReply>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) =>
      reject(new RendezvousError(`rendezvous thread exited (${code}) before serving`)),
    );
  });
  if (reply.t === 'error') {
    await worker.terminate();
    throw RingwireError.fromJSON({ code: reply.code ?? 'RINGWIRE_ERR_RENDEZVOUS', message: reply.message });
  }
  if (reply.t === 'absent') return undefined;
  worker.unref(); // it lives as long as the communicator, which closes it; it keeps nobody alive
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return {
    url: reply.url,
    async close() {
      worker.postMessage('close');
      const timer = setTimeout(() => void worker.terminate(), DEFAULTS.closeTimeoutMs + 2_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A loopback rendezvous for a job of one. */
export async function serveAlone(token: string): Promise<EmbeddedRendezvous> {
  return (await start({ mode: 'alone', token }))!;
}

/**
 * Rank 0 under an engine: serves the rendezvous at `url` when that is this host and nothing
 * answers there; undefined when someone else serves it (then it connects as every rank does).
 */
export function serveIfAbsent(url: string, token: string): Promise<EmbeddedRendezvous | undefined> {
  return start({ mode: 'if-absent', url, token });
}
