import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  finish,
  freePort,
  jsonEvents,
  killAll,
  type Proc,
  sigkill,
  spawnNode,
  startRanks,
  startRendezvous,
  startStandalone,
  type TestRendezvous,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// Elastic jobs with real processes: workers SIGKILLed mid-step, during commit() and during sync(),
// a newcomer joining at a commit, the job dropping below its minimum, and errors that are not
// membership changes. Every worker keeps a counter that each step raises by exactly 1 (an
// all-reduce of ones divided by the size): it ends equal to the step count on every survivor.

const FIXTURE = fileURLToPath(new URL('./fixtures/elastic.mjs', import.meta.url));
let rdv: TestRendezvous;
type Formed = { job: string; generation: number; size: number; change: { joined: string[]; left: string[] } };
/** The rendezvous's 'formed' events, by job: what ringrun prints one line for. */
const formed = new Map<string, Formed[]>();

beforeAll(async () => {
  rdv = await startRendezvous();
  rdv.server.on('formed', (f: Formed) => formed.set(f.job, [...(formed.get(f.job) ?? []), f]));
});
afterAll(() => rdv.close());
afterEach(() => killAll());

type Gen = { id: string; generation: number; rank: number; size: number; step: number };

/** Starts an elastic job of `size` workers (ids w0..), min..max, with the fixture's environment. */
function startElastic(
  size: number,
  {
    min = 2,
    max = size,
    env = {},
    perRank = () => ({}),
  }: {
    min?: number;
    max?: number;
    env?: Record<string, string>;
    perRank?: (r: number) => Record<string, string>;
  } = {},
) {
  const elasticEnv = (id: string) => ({
    RINGWIRE_MIN_SIZE: String(min),
    RINGWIRE_MAX_SIZE: String(max),
    RINGWIRE_WORKER_ID: id,
    RINGWIRE_ELASTIC_SETTLE_MS: '500',
    ...env,
  });
  const { procs, job } = startRanks(rdv, FIXTURE, size, {
    perRank: (r) => ({ ...elasticEnv(`w${r}`), ...perRank(r) }),
  });
  /** Starts one more worker of the same job later. */
  const add = (id: string) =>
    spawnNode(FIXTURE, [], {
      RINGWIRE_SIZE: String(size),
      RINGWIRE_RENDEZVOUS: rdv.url,
      RINGWIRE_JOB_ID: job,
      RINGWIRE_TOKEN: rdv.token,
      ...elasticEnv(id),
    });
  return { procs, job, add };
}

/** Waits until `p` has reported step `n`. */
const atStep = (p: Proc, n: number) => p.waitFor(new RegExp(`"event":"step".*"step":${n},`), 30_000);

/** Every survivor finished with counter === steps; returns the generations each went through. */
function expectFinished(procs: Proc[], codes: number[], output: string): Gen[][] {
  procs.forEach((p, i) => {
    expect(codes[i], output).toBe(0);
    const [check] = jsonEvents<{ ok: boolean; detail: string }>(p, 'check');
    expect(check?.ok, `${check?.detail}\n${output}`).toBe(true);
  });
  return procs.map((p) => jsonEvents<Gen>(p, 'generation'));
}

describe('elastic jobs', () => {
  it('4 workers, one SIGKILLed mid-step: the other three finish with every step counted once', async () => {
    const { procs, job } = startElastic(4, { env: { STEPS: '60', COMMIT_EVERY: '3' } });
    await atStep(procs[2], 10);
    await sigkill(procs[2]);
    const survivors = [procs[0], procs[1], procs[3]];
    const { codes, output } = await finish(survivors, 50_000);
    const gens = expectFinished(survivors, codes, output);
    for (const g of gens) {
      expect(g[0]).toMatchObject({ generation: 1, size: 4 });
      expect(g.at(-1)).toMatchObject({ generation: 2, size: 3 });
    }
    // Dense renumbering, survivors in their old order (generation 1 numbered them by arrival).
    const byOldRank = [...gens].sort((a, b) => a[0].rank - b[0].rank);
    expect(byOldRank.map((g) => g.at(-1)!.rank)).toEqual([0, 1, 2]);
    expect(formed.get(job)!.at(-1)).toMatchObject({ size: 3, change: { left: ['w2'], joined: [] } });
  }, 60_000);

  it('a worker killed during commit(), then one killed during the next sync()', async () => {
    const { procs } = startElastic(4, {
      env: { STEPS: '40', COMMIT_EVERY: '4' },
      perRank: (r) =>
        r === 1 ? { DIE_IN: 'commit', DIE_AT: '8' } : r === 3 ? { DIE_IN: 'sync', DIE_GEN: '2' } : {},
    });
    const survivors = [procs[0], procs[2]];
    const { codes, output } = await finish(survivors, 50_000);
    expect(jsonEvents(procs[1], 'dying')).toMatchObject([{ where: 'commit' }]);
    expect(jsonEvents(procs[3], 'dying')).toMatchObject([{ where: 'sync' }]);
    const gens = expectFinished(survivors, codes, output);
    for (const g of gens) expect(g.at(-1)).toMatchObject({ size: 2 });
  }, 60_000);

  it('two workers killed at once: the other two finish', async () => {
    const { procs } = startElastic(4, { env: { STEPS: '50', COMMIT_EVERY: '2' } });
    await atStep(procs[0], 12);
    await Promise.all([sigkill(procs[1]), sigkill(procs[2])]);
    const survivors = [procs[0], procs[3]];
    const { codes, output } = await finish(survivors, 50_000);
    const gens = expectFinished(survivors, codes, output);
    for (const g of gens) expect(g.at(-1)).toMatchObject({ size: 2 });
  }, 60_000);

  it('dropping below the minimum fails with a typed error naming the minimum', async () => {
    const { procs } = startElastic(4, {
      min: 3,
      env: { STEPS: '400', RINGWIRE_ELASTIC_TIMEOUT_MS: '3000' },
    });
    await atStep(procs[0], 5);
    await Promise.all([sigkill(procs[1]), sigkill(procs[2])]);
    const survivors = [procs[0], procs[3]];
    const { codes, errors, output } = await finish(survivors, 30_000);
    expect(codes, output).toEqual([1, 1]);
    for (const [e] of errors) {
      expect(e.code).toBe('RINGWIRE_ERR_TIMEOUT');
      expect(e.message).toMatch(/no generation formed within 3000 ms.*the minimum is 3/);
    }
  }, 45_000);

  it('a worker started later joins at the next commit (membership notice)', async () => {
    const { procs, add, job } = startElastic(3, { max: 4, env: { STEPS: '80', COMMIT_EVERY: '5' } });
    await atStep(procs[0], 10);
    const late = add('late');
    const all = [...procs, late];
    const { codes, output } = await finish(all, 50_000);
    const gens = expectFinished(all, codes, output);
    for (const g of gens.slice(0, 3)) expect(g.map((x) => x.size)).toEqual([3, 4]);
    // The newcomer got the state at a commit (a multiple of 5), and is ranked after the survivors.
    const joined = gens[3][0];
    expect(joined).toMatchObject({ generation: 2, rank: 3, size: 4 });
    expect(joined.step % 5).toBe(0);
    expect(joined.step).toBeGreaterThanOrEqual(10);
    expect(formed.get(job)!.at(-1)).toMatchObject({ size: 4, change: { joined: ['late'], left: [] } });
  }, 60_000);

  it('a MISMATCH propagates at once on every rank, without a new generation', async () => {
    const { procs } = startElastic(3, { env: { STEPS: '30', MISMATCH_AT: '5' } });
    const { codes, errors, output } = await finish(procs, 30_000);
    expect(codes, output).toEqual([1, 1, 1]);
    for (const [e] of errors) expect(e.code).toBe('RINGWIRE_ERR_MISMATCH');
    for (const p of procs) expect(jsonEvents(p, 'generation')).toHaveLength(1);
  }, 45_000);

  it("the function's own error propagates at once", async () => {
    const { procs } = startElastic(2, { env: { STEPS: '30', USER_ERROR_AT: '4' } });
    const { codes, errors, output } = await finish(procs, 30_000);
    expect(codes, output).toEqual([1, 1]);
    for (const [e] of errors) expect(e.message).toBe('user error at step 4');
    for (const p of procs) expect(jsonEvents(p, 'generation')).toHaveLength(1);
  }, 45_000);

  it('survives its rendezvous being SIGKILLed and restarted, then re-forms through the new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ringwire-elastic-'));
    try {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, rdv.token);
      const port = await freePort();
      let server = await startStandalone(port, tokenFile);
      const url = `ws://127.0.0.1:${port}`;
      const procs = [0, 1, 2].map((r) =>
        spawnNode(FIXTURE, [], {
          RINGWIRE_SIZE: '3',
          RINGWIRE_RENDEZVOUS: url,
          RINGWIRE_JOB_ID: `elastic-restart-${process.pid}`,
          RINGWIRE_TOKEN: rdv.token,
          RINGWIRE_MIN_SIZE: '2',
          RINGWIRE_MAX_SIZE: '3',
          RINGWIRE_WORKER_ID: `w${r}`,
          STEPS: '200',
          COMMIT_EVERY: '5',
        }),
      );
      await atStep(procs[0], 10);
      await sigkill(server);
      await new Promise((r) => setTimeout(r, 300));
      server = await startStandalone(port, tokenFile);
      // The members re-register with the new server (rejoin, carrying the elastic bounds; the
      // reconnection backoff is at most 2 s), while their steps go on.
      await new Promise((r) => setTimeout(r, 2500));
      const at = Math.max(...jsonEvents<{ step: number }>(procs[0], 'step').map((e) => e.step));
      await atStep(procs[0], at + 5);
      await sigkill(procs[2]);
      const survivors = procs.slice(0, 2);
      const { codes, output } = await finish(survivors, 50_000);
      const gens = expectFinished(survivors, codes, output);
      for (const g of gens) expect(g.at(-1)).toMatchObject({ generation: 2, size: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
