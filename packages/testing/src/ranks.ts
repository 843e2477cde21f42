import { RendezvousServer } from '@ringwire/rendezvous';
import { jsonEvents, type Proc, spawnNode } from './procs.js';

/** The token of the test rendezvous servers (tests that forge a peer need it). */
export const TOKEN = 'ringwire-test-token';

/** A rendezvous server for the jobs of one test file: start it in beforeAll, close it in afterAll. */
export interface TestRendezvous {
  server: RendezvousServer;
  url: string;
  token: string;
  close(): Promise<void>;
}

/** Starts a quiet rendezvous server on a free local port. */
export async function startRendezvous(token = TOKEN): Promise<TestRendezvous> {
  const server = new RendezvousServer({ token, log: () => {} });
  const { url } = await server.listen();
  return { server, url, token, close: () => server.close() };
}

export interface RanksOptions {
  /** Arguments after the script, the same for every rank. */
  args?: string[];
  /** Environment added for every rank (over this process's). */
  env?: Record<string, string>;
  /** Environment added for one rank (over `env`). */
  perRank?: (rank: number) => Record<string, string>;
  /** A command that runs node (e.g. under unshare), as for spawnNode. */
  prefix?: string[];
}

let jobs = 0;

/**
 * Starts `size` real `node script` processes as the ranks of one new job, each with the
 * environment ringrun would give it. They are tracked by killAll() like any spawned process.
 */
export function startRanks(
  rdv: TestRendezvous,
  script: string,
  size: number,
  { args = [], env = {}, perRank = () => ({}), prefix = [] }: RanksOptions = {},
): { procs: Proc[]; job: string } {
  const job = `job-${process.pid}-${++jobs}`;
  const procs = Array.from({ length: size }, (_, r) =>
    spawnNode(
      script,
      args,
      {
        RINGWIRE_RANK: String(r),
        RINGWIRE_SIZE: String(size),
        RINGWIRE_LOCAL_RANK: String(r),
        RINGWIRE_LOCAL_SIZE: String(size),
        RINGWIRE_RENDEZVOUS: rdv.url,
        RINGWIRE_JOB_ID: job,
        RINGWIRE_TOKEN: rdv.token,
        ...env,
        ...perRank(r),
      },
      prefix,
    ),
  );
  return { procs, job };
}

/** A `{"event":"check"}` line of a fixture. */
export type Check = { name: string; ok: boolean; detail?: string; n?: number };
/** A `{"event":"error"}` line of a fixture: a caught RingwireError. */
export type ErrorEvent = { code: string; message: string; rank?: number; ranks?: number[] };

/** What the ranks of a job reported, per rank; `output` is everything they printed, for messages. */
export interface JobResult {
  codes: number[];
  checks: Check[][];
  errors: ErrorEvent[][];
  output: string;
}

const outputOf = (procs: Proc[]) =>
  procs.map((p, r) => `--- rank ${r}\n${p.lines.join('\n')}\n${p.stderr.join('\n')}`).join('\n');

/**
 * Waits for every process to exit and returns their checks and errors. A process still running
 * after `timeoutMs` is killed, and the job fails naming it, with everything the ranks printed
 * (keep the bound under the test's own timeout so that message is what the test reports).
 */
export async function finish(procs: Proc[], timeoutMs = 55_000): Promise<JobResult> {
  const all = Promise.all(procs.map((p) => p.exited));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
  const codes = await Promise.race([all, late]).finally(() => clearTimeout(timer));
  if (codes === 'late') {
    const running = procs.flatMap((p, r) =>
      p.child.exitCode === null && p.child.signalCode === null ? [r] : [],
    );
    for (const r of running) procs[r].child.kill('SIGKILL');
    await all;
    throw new Error(
      `rank(s) ${running.join(', ')} still running after ${timeoutMs} ms, killed:\n${outputOf(procs)}`,
    );
  }
  return {
    codes,
    checks: procs.map((p) => jsonEvents<Check>(p, 'check')),
    errors: procs.map((p) => jsonEvents<ErrorEvent>(p, 'error')),
    output: outputOf(procs),
  };
}
