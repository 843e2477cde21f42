import { fileURLToPath } from 'node:url';
import { RendezvousServer } from '@ringwire/rendezvous';
import { jsonEvents, type Proc, spawnNode } from './procs.js';

export const COLLECTIVES = fileURLToPath(new URL('../fixtures/collectives.mjs', import.meta.url));

let server: RendezvousServer | undefined;
let url = '';
let jobs = 0;
export const TOKEN = 'ringwire-test-token';

/** One rendezvous for the whole test file (start in beforeAll, stop in afterAll). */
export async function startRendezvous(): Promise<RendezvousServer> {
  server = new RendezvousServer({ token: TOKEN, log: () => {} });
  ({ url } = await server.listen());
  return server;
}
export const stopRendezvous = () => server?.close();

/** Starts `size` real worker processes of one job with the environment ringrun would give them. */
export function startJob(
  size: number,
  args: string[],
  env: Record<string, string> = {},
  perRank: (r: number) => Record<string, string> = () => ({}),
  prefix: string[] = [],
): { procs: Proc[]; job: string } {
  const job = `job-${process.pid}-${++jobs}`;
  const procs = Array.from({ length: size }, (_, r) =>
    spawnNode(
      COLLECTIVES,
      args,
      {
        RINGWIRE_RANK: String(r),
        RINGWIRE_SIZE: String(size),
        RINGWIRE_LOCAL_RANK: String(r),
        RINGWIRE_LOCAL_SIZE: String(size),
        RINGWIRE_RENDEZVOUS: url,
        RINGWIRE_JOB_ID: job,
        RINGWIRE_TOKEN: TOKEN,
        ...env,
        ...perRank(r),
      },
      prefix,
    ),
  );
  return { procs, job };
}

export type Check = { name: string; ok: boolean; detail?: string; n?: number };
export type ErrorEvent = { code: string; message: string; rank?: number; ranks?: number[] };

/** Waits for every process to exit and returns their checks; failures come with their output. */
export async function finish(
  procs: Proc[],
): Promise<{ codes: number[]; checks: Check[][]; errors: ErrorEvent[][]; output: string }> {
  const codes = await Promise.all(procs.map((p) => p.exited));
  return {
    codes,
    checks: procs.map((p) => jsonEvents<Check>(p, 'check')),
    errors: procs.map((p) => jsonEvents<ErrorEvent>(p, 'error')),
    output: procs.map((p, r) => `--- rank ${r}\n${p.lines.join('\n')}\n${p.stderr.join('\n')}`).join('\n'),
  };
}
