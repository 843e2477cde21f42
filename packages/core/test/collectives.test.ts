import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  finish,
  jsonEvents,
  killAll,
  type Proc,
  type RanksOptions,
  startRanks,
  startRendezvous,
  type TestRendezvous,
} from '@ringwire/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const COLLECTIVES = fileURLToPath(new URL('./fixtures/collectives.mjs', import.meta.url));

/** Whether this user may give a process a /dev/shm of its own (root, or CAP_SYS_ADMIN). */
const privateMounts = (() => {
  try {
    execFileSync('unshare', ['-m', '--propagation', 'private', 'mount', '-t', 'tmpfs', 'tmpfs', '/dev/shm'], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
})();

/** Shared-memory files (src/transport/shared-memory.ts) that these processes created and left. */
const leftoverRegions = (procs: Proc[]) =>
  readdirSync('/dev/shm').filter((f) => procs.some((p) => f.startsWith(`ringwire-${p.child.pid}-`)));

let rdv: TestRendezvous;
beforeAll(async () => (rdv = await startRendezvous()));
afterAll(() => rdv?.close());
afterEach(() => killAll());

const startJob = (size: number, scenario: string, opts: RanksOptions = {}) =>
  startRanks(rdv, COLLECTIVES, size, { args: [scenario], ...opts });

// Per rank: 6 dtypes; all-reduce over ops x lengths x 2 algorithms; then per length a broadcast
// per algorithm, an all-gather and a reduce-scatter; then 4 grouped, shared, all-gather into out, sync, 6 concurrent, barrier.
function expectedChecks(lengths: number) {
  const ops = 4 * 5 + 2 * 4; // float types have mean
  return ops * lengths * 2 + 6 * lengths * 4 + 4 * lengths + 4 + 1 + 1 + 1 + 1 + 1 + 1 + 6 + 1;
}

describe('every collective, type and op against exact expected values', () => {
  for (const size of [1, 2, 3, 4, 5]) {
    it(`${size} rank${size > 1 ? 's' : ''}: lengths 0, 1, 7, 1000 and one not divisible by the size`, async () => {
      const { procs } = startJob(size, 'all');
      const { codes, checks, output } = await finish(procs, 110_000);
      expect(codes, output).toEqual(Array(size).fill(0));
      // Same host: every peer's payloads come through shared memory, and no file is left behind.
      expect(
        procs.map((p) => jsonEvents<{ sharedMemoryPeers: number[] }>(p, 'ready')[0].sharedMemoryPeers),
      ).toEqual(procs.map((_, r) => [...Array(size).keys()].filter((i) => i !== r)));
      expect(leftoverRegions(procs)).toEqual([]);
      for (const c of checks) {
        expect(
          c.filter((x) => !x.ok),
          output,
        ).toEqual([]);
        expect(c).toHaveLength(expectedChecks(5));
      }
    }, 120_000);
  }

  it('8 ranks, lengths 0, 7 and 8003', async () => {
    const { procs } = startJob(8, 'all', { env: { LENGTHS: '0,7,8003' } });
    const { codes, checks, output } = await finish(procs, 170_000);
    expect(codes, output).toEqual(Array(8).fill(0));
    for (const c of checks) {
      expect(
        c.filter((x) => !x.ok),
        output,
      ).toEqual([]);
      expect(c).toHaveLength(expectedChecks(3));
    }
  }, 180_000);

  for (const [size, shm] of [
    [2, '1'],
    [3, '1'],
    [4, '1'],
    [3, '0'],
  ] as const) {
    it(`16 MiB all-reduce and broadcast at ${size} ranks ${shm === '1' ? 'through shared memory' : 'over TCP (RINGWIRE_SHM=0)'}`, async () => {
      const { procs } = startJob(size, 'big', { env: { RINGWIRE_SHM: shm } });
      const { codes, checks, output } = await finish(procs, 110_000);
      expect(codes, output).toEqual(Array(size).fill(0));
      expect(
        procs.map((p) => jsonEvents<{ sharedMemoryPeers: number[] }>(p, 'ready')[0].sharedMemoryPeers.length),
      ).toEqual(Array(size).fill(shm === '1' ? size - 1 : 0));
      for (const c of checks)
        expect(c.map((x) => [x.name, x.ok, x.n])).toEqual([
          ['allreduce float32 16MiB', true, 4194304],
          ['allreduce float32 16MiB as float16 mean', true, 4194304],
          ['allreduce float32 16MiB as float16: same bits on every rank', true, 4194304],
          ['broadcast float32 16MiB', true, 4194304],
        ]);
    }, 120_000);
  }

  it('one rank without shared memory (RINGWIRE_SHM=0): its peers fall back to TCP with it only', async () => {
    const { procs } = startJob(3, 'all', {
      env: { LENGTHS: '7,3001' },
      perRank: (r): Record<string, string> => (r === 1 ? { RINGWIRE_SHM: '0' } : {}),
    });
    const { codes, checks, output } = await finish(procs, 110_000);
    expect(codes, output).toEqual([0, 0, 0]);
    expect(
      procs.map((p) => jsonEvents<{ sharedMemoryPeers: number[] }>(p, 'ready')[0].sharedMemoryPeers),
    ).toEqual([[2], [], [0]]);
    for (const c of checks) {
      expect(
        c.filter((x) => !x.ok),
        output,
      ).toEqual([]);
      expect(c).toHaveLength(expectedChecks(2));
    }
  }, 120_000);

  // Like containers that share a network but not /dev/shm: each rank gets a tmpfs of its own there,
  // too small for a region (the sender cannot offer) or not the one its peers see (offers fail).
  const warnings: [string, RegExp][] = [
    [
      '1m',
      /shared memory unavailable, using TCP: reserve \d+ bytes in \/dev\/shm\/ringwire-.*: No space left on device/,
    ],
    [
      '64m',
      /cannot map rank \d's shared memory, using TCP: open \/dev\/shm\/ringwire-.*: No such file or directory/,
    ],
  ];
  for (const [size, warning] of warnings) {
    it.skipIf(!privateMounts)(
      `ranks that cannot share /dev/shm fall back to TCP with a warning (private ${size} tmpfs)`,
      async () => {
        const prefix = [
          'unshare',
          '-m',
          '--propagation',
          'private',
          'sh',
          '-c',
          `mount -t tmpfs -o size=${size} tmpfs /dev/shm && exec "$@"`,
          'sh',
        ];
        const { procs } = startJob(3, 'all', { env: { LENGTHS: '7,3001' }, prefix });
        const { codes, checks, output } = await finish(procs, 110_000);
        expect(codes, output).toEqual([0, 0, 0]);
        expect(
          procs.map((p) => jsonEvents<{ sharedMemoryPeers: number[] }>(p, 'ready')[0].sharedMemoryPeers),
        ).toEqual([[], [], []]);
        for (const p of procs)
          expect(
            p.stderr.filter((l) => warning.test(l)),
            output,
          ).toHaveLength(1); // said once, not per peer
        for (const c of checks) {
          expect(
            c.filter((x) => !x.ok),
            output,
          ).toEqual([]);
          expect(c).toHaveLength(expectedChecks(2));
        }
      },
      120_000,
    );
  }

  it('the JS kernels give the same results (RINGWIRE_NO_NATIVE=1)', async () => {
    const { procs } = startJob(3, 'all', { env: { RINGWIRE_NO_NATIVE: '1', LENGTHS: '7,3001' } });
    const { codes, checks, output } = await finish(procs, 110_000);
    expect(codes, output).toEqual([0, 0, 0]);
    expect(procs[0].lines.some((l) => l.includes('"kernels":"js"'))).toBe(true);
    // Shared memory needs the addon: everything goes over TCP.
    expect(
      procs.map((p) => jsonEvents<{ sharedMemoryPeers: number[] }>(p, 'ready')[0].sharedMemoryPeers),
    ).toEqual([[], [], []]);
    for (const c of checks) {
      expect(
        c.filter((x) => !x.ok),
        output,
      ).toEqual([]);
      expect(c).toHaveLength(expectedChecks(2));
    }
  }, 120_000);
});
