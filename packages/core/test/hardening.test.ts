// Failure paths found by attacking ringwire (issue 18, items 5, 7 and 9), with real processes.
import { fileURLToPath } from 'node:url';
import {
  type Check,
  type ErrorEvent,
  finish,
  jsonEvents,
  killAll,
  type Proc,
  startRanks as startJob,
  startRendezvous,
  type TestRendezvous,
  waitForJson,
} from '@ringwire/testing';
import { type Communicator, init, type RingwireArray } from 'ringwire';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/hardening.mjs', import.meta.url));

let rdv: TestRendezvous;
beforeAll(async () => (rdv = await startRendezvous()));
afterAll(() => rdv.close());
afterEach(() => killAll());

/** `size` ranks of hardening.mjs running `scenario`, with the environment ringrun would give them. */
function startRanks(size: number, scenario: string, env: Record<string, string> = {}): Proc[] {
  return startJob(rdv, FIXTURE, size, { args: [scenario], env }).procs;
}

/** An array whose buffer has been moved away (as `{ transfer: true }` does). */
function detached<T extends RingwireArray>(x: T): T {
  structuredClone(x.buffer, { transfer: [x.buffer as ArrayBuffer] });
  return x;
}

describe('a detached array (reused after { transfer: true })', () => {
  let comm: Communicator;
  beforeAll(async () => (comm = await init()));
  afterAll(() => comm.close());

  it('is refused by every collective, naming the rank, the argument and the detachment', async () => {
    const refused = (p: Promise<unknown> | (() => unknown), what: string) => {
      const re = new RegExp(`^${what}: rank 0's ${'\\w+'} is detached .*transfer: true`);
      const expected = { code: 'RINGWIRE_ERR_INVALID_ARG', rank: 0, message: expect.stringMatching(re) };
      if (typeof p === 'function') expect(p).toThrow(expect.objectContaining(expected));
      else return expect(p).rejects.toMatchObject(expected);
    };
    await refused(comm.allreduce(detached(new Float32Array(4))), 'allreduce');
    await refused(comm.allreduce(detached(new Float32Array(4)), { transfer: true }), 'allreduce');
    await refused(comm.allreduce(detached(new Float32Array(4)), { wire: 'bfloat16' }), 'allreduce');
    refused(() => comm.allreduceSync(detached(new Float64Array(4))), 'allreduceSync');
    await refused(
      comm.groupedAllreduce([new Float32Array(2), detached(new Float32Array(2))]),
      'groupedAllreduce\\[1\\]',
    );
    await refused(comm.broadcast(detached(new Int32Array(4)), 0), 'broadcast');
    await refused(comm.allgather(detached(new Uint8Array(4))), 'allgather');
    await refused(comm.allgather(new Float32Array(4), { out: detached(new Float32Array(8)) }), 'allgather');
    await refused(comm.reduceScatter(detached(new Float32Array(4))), 'reduceScatter');
    // A view into part of a detached buffer, and a zero-length array of a live buffer (allowed).
    const whole = new Float32Array(8);
    const view = whole.subarray(2, 4);
    detached(whole);
    await refused(comm.allreduce(view), 'allreduce');
    expect(await comm.allreduce(new Float32Array(0))).toHaveLength(0);
    // Nothing was consumed: the communicator still works.
    const x = new Float32Array([1, 2]);
    expect(Array.from(await comm.allreduce(x))).toEqual([1, 2]);
  });

  it('fails with INVALID_ARG on the rank that reused it, and the job goes on', async () => {
    const procs = startRanks(2, 'detached');
    const { codes, checks, errors, output } = await finish(procs);
    expect(codes, output).toEqual([0, 0]);
    expect(errors.flat(), output).toEqual([]);
    for (const c of checks)
      expect(
        c.every((k) => k.ok),
        output,
      ).toBe(true);
    expect(checks.map((c) => c.length)).toEqual([2, 2]);
    const [refusal] = jsonEvents<ErrorEvent>(procs[1], 'refused');
    expect(refusal, output).toMatchObject({
      code: 'RINGWIRE_ERR_INVALID_ARG',
      rank: 1,
      message: expect.stringMatching(/^allreduce: rank 1's x is detached/),
    });
    expect(jsonEvents(procs[0], 'refused')).toEqual([]);
  });
});

describe('a peer frozen for good', () => {
  // Found by the survivors' own op timeout (TIMEOUT naming it), or by the rendezvous' heartbeats
  // (PEER_LOST naming it; 3 s here, below the op timeout).
  for (const [timeoutMs, code] of [
    ['2000', 'RINGWIRE_ERR_TIMEOUT'],
    ['60000', 'RINGWIRE_ERR_PEER_LOST'],
  ])
    it(`does not hold up the survivors' close() once they have failed with ${code.slice(13)}`, async () => {
      const env = { RINGWIRE_TIMEOUT_MS: timeoutMs, RINGWIRE_HEARTBEAT_TIMEOUT_MS: '3000' };
      const procs = startRanks(3, 'frozen', env);
      await waitForJson(procs[2], 'skipping', 30_000);
      procs[2].child.kill('SIGSTOP');
      const errs = await Promise.all([0, 1].map((r) => waitForJson<ErrorEvent>(procs[r], 'error', 20_000)));
      for (const e of errs) expect(e.code).toBe(code);
      const closed = await Promise.all(
        [0, 1].map((r) => waitForJson<{ ms: number }>(procs[r], 'closed', 20_000)),
      );
      console.log(
        `frozen peer, ${code}: the survivors closed in ${closed.map((c) => c.ms).join(' and ')} ms`,
      );
      for (const { ms } of closed) expect(ms).toBeLessThan(1000);
      expect(await Promise.all([procs[0].exited, procs[1].exited])).toEqual([1, 1]);
    }, 60_000);
});

describe('staging buffers', () => {
  it('every collective is right above the kept staging size (80 MiB), twice', async () => {
    const { codes, checks, output } = await finish(startRanks(2, 'large'));
    expect(codes, output).toEqual([0, 0]);
    for (const c of checks)
      expect(
        c.filter((k) => !k.ok).map((k) => k.name),
        output,
      ).toEqual([]);
    expect(checks.map((c) => c.length)).toEqual([12, 12]);
  }, 120_000);

  it('a 512 MiB all-reduce of an ordinary array does not keep its 512 MiB staging copy', async () => {
    const procs = startRanks(2, 'staging', { MIB: '512' });
    const { codes, checks, output } = await finish(procs);
    expect(codes, output).toEqual([0, 0]);
    expect(
      checks.flat().every((c: Check) => c.ok),
      output,
    ).toBe(true);
    for (const p of procs) {
      const [m] = jsonEvents<{ before: number; filled: number; after: number; idle: number }>(p, 'rss');
      console.log(
        `staging: RSS ${m.before} MiB, with the array ${m.filled}, after the op ${m.after}, 5 s later ${m.idle}`,
      );
      // The array itself is 512 MiB; a kept staging copy would add another 512.
      expect(m.idle - m.filled, output).toBeLessThan(128);
    }
  }, 120_000);
});
