import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { encode, proof } from '@ringwire/rendezvous';
import {
  type ErrorEvent,
  finish,
  killAll,
  startRanks,
  startRendezvous,
  type TestRendezvous,
  waitForJson,
} from '@ringwire/testing';
import { type Communicator, init } from 'ringwire';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const COLLECTIVES = fileURLToPath(new URL('./fixtures/collectives.mjs', import.meta.url));
let rdv: TestRendezvous;
beforeAll(async () => (rdv = await startRendezvous()));
afterAll(() => rdv?.close());
afterEach(() => killAll());

/** A job of the collectives fixture running `scenario`, with `env` for every rank. */
const startJob = (size: number, scenario: string, env: Record<string, string> = {}) =>
  startRanks(rdv, COLLECTIVES, size, { args: [scenario], env });

describe('a dead peer', () => {
  for (const shm of ['1', '0'])
    it(`SIGKILL of one rank during a 64 MiB all-reduce fails every other rank within 3 s, naming it (${shm === '1' ? 'shared memory' : 'TCP'})`, async () => {
      const { procs } = startJob(4, 'hold', { RINGWIRE_SHM: shm });
      await Promise.all(procs.map((p) => waitForJson(p, 'looping', 30_000)));
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      procs[2].child.kill('SIGKILL');
      const errs = await Promise.all([0, 1, 3].map((r) => waitForJson<ErrorEvent>(procs[r], 'error', 3000)));
      expect(Date.now() - t0).toBeLessThan(3000);
      for (const e of errs) {
        expect(e.code).toBe('RINGWIRE_ERR_PEER_LOST');
        expect(e.rank).toBe(2);
        expect(e.message).toMatch(/rank 2 .*(connection closed|lost)/);
      }
      for (const r of [0, 1, 3])
        expect((await waitForJson<ErrorEvent>(procs[r], 'after')).code).toBe('RINGWIRE_ERR_ABORTED');
      expect(await Promise.all([0, 1, 3].map((r) => procs[r].exited))).toEqual([1, 1, 1]);
      // Shared-memory files are unlinked once mapped, so even a killed rank leaves none.
      expect(
        readdirSync('/dev/shm').filter((f) => procs.some((p) => f.startsWith(`ringwire-${p.child.pid}-`))),
      ).toEqual([]);
    });
});

describe('a frozen peer that then dies', () => {
  it('fails the others with PEER_LOST, and they close at once, not at the op timeout', async () => {
    // A stopped rank answers no status query, so the others' stall checks each wait their full
    // second: the failure lands in the middle of one, which must not keep the engine alive.
    const { procs } = startJob(3, 'skip', { RINGWIRE_TIMEOUT_MS: '30000' });
    await waitForJson(procs[2], 'skipping');
    procs[2].child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 3500));
    const t0 = Date.now();
    procs[2].child.kill('SIGKILL');
    const errs = await Promise.all([0, 1].map((r) => waitForJson<ErrorEvent>(procs[r], 'error', 3000)));
    for (const e of errs) expect(e).toMatchObject({ code: 'RINGWIRE_ERR_PEER_LOST', rank: 2 });
    expect(await Promise.all([procs[0].exited, procs[1].exited])).toEqual([1, 1]);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

describe('mismatched collectives fail on every rank with both descriptors', () => {
  const cases: [string, RegExp, string?][] = [
    [
      'count',
      /allreduce\(float32, count=1000, op=sum\).*allreduce\(float32, count=999, op=sum\)|count=999.*count=1000/,
    ],
    ['dtype', /float64.*float32|float32.*float64/],
    ['op', /op=max.*op=sum|op=sum.*op=max/],
    ['kind', /broadcast\(float32, count=1000, root=0\)/],
    ['layout', /laid out differently/],
  ];
  for (const [kind, pattern, late] of [...cases, ['count', cases[0][1], '1']]) {
    it(`different ${kind}${late ? ', with rank 1 calling after the others failed' : ''}`, async () => {
      const { procs } = startJob(3, 'mismatch', {
        MISMATCH: kind,
        RINGWIRE_TIMEOUT_MS: '20000',
        LATE: late ?? '',
      });
      const t0 = Date.now();
      const { codes, errors, output } = await finish(procs);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(codes, output).toEqual([1, 1, 1]);
      for (const [e] of errors) {
        expect(e.code, output).toBe('RINGWIRE_ERR_MISMATCH');
        expect(e.message).toMatch(/collective mismatch at op #1/);
        expect(e.message).toMatch(pattern);
        expect(e.message).toMatch(/rank 2/);
      }
      // The first call to meet the failure gets its cause; the next gets ABORTED.
      for (const p of procs)
        expect((await waitForJson<ErrorEvent>(p, 'after')).code).toBe('RINGWIRE_ERR_ABORTED');
    });
  }
});

describe('an all-gather output too small on one rank', () => {
  it('fails the collective on every rank, naming that rank', async () => {
    const { procs } = startJob(3, 'mismatch', { MISMATCH: 'out' });
    const { codes, errors, output } = await finish(procs);
    expect(codes, output).toEqual([1, 1, 1]);
    for (const [e] of errors)
      expect(e, output).toMatchObject({
        code: 'RINGWIRE_ERR_INVALID_ARG',
        rank: 2,
        message: "allgather: rank 2's out holds 100 bytes, the result needs 120",
      });
    for (const p of procs)
      expect((await waitForJson<ErrorEvent>(p, 'after')).code).toBe('RINGWIRE_ERR_ABORTED');
  });
});

describe('a program that forgets close()', () => {
  it('exits by itself once idle, and no rank sees a failure', async () => {
    const { procs } = startJob(3, 'loop', { ITERS: '20', NO_CLOSE: '1' });
    const t0 = Date.now();
    const { codes, checks, errors, output } = await finish(procs);
    expect(codes, output).toEqual([0, 0, 0]);
    expect(Date.now() - t0).toBeLessThan(20_000);
    for (const c of checks) expect(c.map((x) => x.ok)).toEqual([true]);
    expect(errors.flat()).toEqual([]);
    expect(output).not.toMatch(/PEER_LOST|lost/);
  });
});

describe('a rank that never arrives', () => {
  it('times out naming it, after a stall warning that names it earlier', async () => {
    const { procs } = startJob(3, 'skip', { RINGWIRE_TIMEOUT_MS: '2000' });
    await waitForJson(procs[2], 'skipping');
    const errs = await Promise.all([0, 1].map((r) => waitForJson<ErrorEvent>(procs[r], 'error', 10_000)));
    for (const e of errs) {
      expect(e.code).toBe('RINGWIRE_ERR_TIMEOUT');
      expect(e.ranks).toEqual([2]);
      expect(e.message).toMatch(/op #2 allreduce\(float32, count=10, op=sum\) made no progress for \d+ ms/);
      expect(e.message).toMatch(/ranks not arrived at op #2: 2 \(at op #1\)/);
    }
    await Promise.all([procs[0].exited, procs[1].exited]);
    for (const r of [0, 1])
      expect(procs[r].stderr.join('\n')).toMatch(/stall: op #2 .* ranks not arrived at op #2: 2/);
  });
});

describe('junk traffic to the peer ports', () => {
  it('1,000 junk connections and frames during a job leave it undisturbed', async () => {
    const { procs, job } = startJob(3, 'loop', { ITERS: '300' });
    await Promise.all(procs.map((p) => waitForJson(p, 'running', 30_000)));
    const status = rdv.server.status() as {
      jobs: { id: string; generation: number; members: { port: number }[] }[];
    };
    const j = status.jobs.find((x) => x.id === job)!;
    const ports = j.members.map((m) => m.port);
    const junk = async (i: number) => {
      const port = ports[i % ports.length];
      const kind = i % 6;
      if (kind === 0) {
        return new Promise<void>((resolve) => {
          const s = netConnect(port, '127.0.0.1', () => s.end(randomBytes(1 + (i % 500))));
          s.resume();
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.setTimeout(3000, () => s.destroy());
        });
      }
      return new Promise<void>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}`);
        const timer = setTimeout(() => (ws.terminate(), resolve()), 3000);
        ws.on('error', () => {});
        ws.on('close', () => (clearTimeout(timer), resolve()));
        ws.on('message', (data: Buffer) => {
          const nonce = data.subarray(data.length - 32);
          if (kind === 1) ws.send(randomBytes(1 + (i % 64)));
          else if (kind === 2)
            ws.send(
              encode({
                t: 'hello',
                job,
                generation: j.generation,
                rank: 0,
                proof: randomBytes(32),
                nonce: randomBytes(32),
              }),
            );
          else if (kind === 3)
            ws.send(
              encode({
                t: 'hello',
                job: 'another-job',
                generation: 1,
                rank: 0,
                proof: proof(rdv.token, nonce, 'another-job'),
                nonce: randomBytes(32),
              }),
            );
          else if (kind === 4)
            ws.send(Buffer.concat([Buffer.from('RWF1'), randomBytes(100)])); // a data frame before any handshake
          else ws.send(Buffer.alloc(2 * 1024 * 1024)); // over the frame bound
        });
      });
    };
    for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => junk(i + k)));
    const { codes, checks, output } = await finish(procs, 110_000);
    expect(codes, output).toEqual([0, 0, 0]);
    for (const c of checks)
      expect(c.map(({ name, ok }) => ({ name, ok }))).toEqual([{ name: 'loop', ok: true }]);
  }, 120_000);
});

describe('bad input gets a clear error', () => {
  let comm: Communicator;
  beforeAll(async () => (comm = await init()));
  afterAll(() => comm.close());

  it('wrong types, sizes, ops and roots', async () => {
    const bad = async (p: Promise<unknown>, re: RegExp) =>
      expect(p).rejects.toMatchObject({
        code: 'RINGWIRE_ERR_INVALID_ARG',
        message: expect.stringMatching(re),
      });
    await bad(comm.allreduce([1, 2, 3] as unknown as Float32Array), /expected a Float32Array.*got Array/);
    await bad(comm.allreduce(new Int32Array(4), { op: 'mean' }), /'mean' needs a float type, not int32/);
    await bad(comm.allreduce(new Uint16Array(4)), /Uint16Array needs \{ dtype: 'float16' \}/);
    await bad(
      comm.allreduce(new Float32Array(4), { dtype: 'float64' }),
      /dtype float64 does not match a Float32Array/,
    );
    await bad(
      comm.allreduce(new Float32Array(4), { op: 'avg' as 'sum' }),
      /op must be one of sum, mean, min, max, prod/,
    );
    await bad(comm.broadcast(new Float32Array(4), 1), /root must be an integer in 0..0, got 1/);
    await bad(
      comm.allreduce(new Float32Array(4), { algo: 'fast' as 'ring' }),
      /algo must be one of auto, ring, tree, hierarchical/,
    );
    await bad(
      comm.allreduce(new Float32Array(4), { transfer: 1 as unknown as boolean }),
      /transfer must be a boolean, got number/,
    );
    await bad(
      comm.allreduce(new Float64Array(4), { wire: 'float16' }),
      /wire must be 'float16' or 'bfloat16', for a Float32Array \(got "float16" for float64\)/,
    );
    await bad(
      comm.allreduce(new Float32Array(4), { wire: 'int8' as 'float16' }),
      /wire must be 'float16' or 'bfloat16'/,
    );
    expect(() => comm.allocate('float32', -1)).toThrow(/count must be a non-negative integer/);
    await bad(
      comm.allgather(new Float32Array(4), { out: new Float32Array(4) }),
      /out must be a Float32Array from comm.allocate\(\), got Float32Array/,
    );
    await bad(
      comm.allgather(new Float32Array(4), { out: comm.allocate('int32', 4) as unknown as Float32Array }),
      /out must be a Float32Array from comm.allocate\(\), got Int32Array/,
    );
    // Size 1 works without a rendezvous, and the communicator is still usable after bad calls.
    const x = new Float32Array([1, 2, 3]);
    await comm.allreduce(x, { op: 'mean' });
    expect(Array.from(x)).toEqual([1, 2, 3]);
    const [only] = await comm.allgather(new Int32Array([4, 5]));
    await comm.allreduce(new Int32Array([9, 9])); // reuses the staging buffer the input went through
    expect(Array.from(only)).toEqual([4, 5]);
    // transfer moves an ordinary array's buffer (the input is detached) and leaves shared ones alone.
    const plain = new Float32Array([1, 2, 3]);
    const moved = await comm.allreduce(plain, { transfer: true });
    expect([plain.length, Array.from(moved)]).toEqual([0, [1, 2, 3]]);
    const shared = comm.allocate('float32', 2);
    expect(await comm.allreduce(shared, { transfer: true })).toBe(shared);
  });

  it('bad options and environment', async () => {
    await expect(init({ size: 0 })).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_INVALID_ARG',
      message: 'size must be an integer >= 1, got 0',
    });
    await expect(init({ size: 2, rank: 2 })).rejects.toMatchObject({
      message: 'rank 2 is out of range for size 2',
    });
    await expect(init({ size: 2 })).rejects.toMatchObject({
      message: expect.stringMatching(/no rendezvous: set RINGWIRE_RENDEZVOUS/),
    });
    await expect(init({ algo: 'x' as 'ring' })).rejects.toMatchObject({
      message: expect.stringMatching(/algo must be one of auto, ring, tree/),
    });
    await expect(init({ sharedMemory: 1 as unknown as boolean })).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_INVALID_ARG',
      message: 'sharedMemory must be a boolean, got 1',
    });
    process.env.RINGWIRE_SHM = 'yes';
    try {
      await expect(init()).rejects.toMatchObject({
        code: 'RINGWIRE_ERR_INVALID_ARG',
        message: 'RINGWIRE_SHM must be 0 or 1, got "yes"',
      });
    } finally {
      delete process.env.RINGWIRE_SHM;
    }
    process.env.RINGWIRE_TIMEOUT_MS = 'abc';
    try {
      await expect(init()).rejects.toMatchObject({
        code: 'RINGWIRE_ERR_INVALID_ARG',
        message: 'RINGWIRE_TIMEOUT_MS must be a positive integer, got "abc"',
      });
    } finally {
      delete process.env.RINGWIRE_TIMEOUT_MS;
    }
    await expect(
      init({ size: 2, rendezvous: rdv.url, jobId: 'bad-token', token: 'wrong', connectTimeoutMs: 3000 }),
    ).rejects.toMatchObject({ code: 'RINGWIRE_ERR_AUTH' });
  });

  it('an all-gather output too small for the result fails naming the rank, then refuses work', async () => {
    const c = await init();
    await expect(
      c.allgather(new Float32Array(4), { out: c.allocate('float32', 3) as Float32Array }),
    ).rejects.toMatchObject({
      code: 'RINGWIRE_ERR_INVALID_ARG',
      rank: 0,
      message: "allgather: rank 0's out holds 12 bytes, the result needs 16",
    });
    await expect(c.barrier()).rejects.toMatchObject({ code: 'RINGWIRE_ERR_ABORTED' });
    await c.close();
  });

  it('a closed communicator refuses work', async () => {
    const c = await init();
    await c.close();
    await expect(c.allreduce(new Float32Array(1))).rejects.toMatchObject({ code: 'RINGWIRE_ERR_CLOSED' });
  });
});
