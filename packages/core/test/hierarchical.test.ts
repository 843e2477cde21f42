// Topology and the two-level all-reduce across real hosts: two network namespaces joined by a
// bridge, two ranks in each (dealt round the hosts, so the host order is not the rank order).
// Results must equal the flat ring's bit for bit, and the algorithm the engine chose is
// reported. Plus the auto cost model's choices. The namespaces are this file's own (prefix
// rwhier<pid>, subnet 10.246.<pid % 250>.0/24) and are removed afterwards.

import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '@ringwire/common';
import { finish, jsonEvents, killAll, type Proc, spawnNode, spawnProc } from '@ringwire/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseAllreduce, predictSeconds } from '../src/algorithms/choose.js';
import { Topology } from '../src/algorithms/topology.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/hierarchical.mjs', import.meta.url));
const RENDEZVOUS_CLI = fileURLToPath(new URL('../../rendezvous/dist/cli.js', import.meta.url));

describe('auto: the cost model', () => {
  const byHost = (hosts: number, per: number) =>
    new Topology(Array.from({ length: hosts }, (_, h) => Array.from({ length: per }, (_, l) => h * per + l)));
  const cross = DEFAULTS.crossoverBytes;

  it('small messages take the tree, large ones the two-level all-reduce where it applies', () => {
    expect(chooseAllreduce('auto', cross - 1, byHost(2, 2), cross)).toBe('tree');
    expect(chooseAllreduce('auto', 64 << 20, byHost(2, 2), cross)).toBe('hierarchical');
    expect(chooseAllreduce('auto', 64 << 20, byHost(3, 2), cross)).toBe('hierarchical');
    // One rank per host, or one host: the two levels collapse into the flat ring.
    expect(chooseAllreduce('auto', 64 << 20, byHost(4, 1), cross)).toBe('ring');
    expect(chooseAllreduce('auto', 64 << 20, byHost(1, 4), cross)).toBe('ring');
    // Uneven hosts: no two-level form.
    expect(chooseAllreduce('auto', 64 << 20, new Topology([[0, 1], [2]]), cross)).toBe('ring');
  });

  it('a forced algorithm is used; hierarchical falls back to the ring where it does not apply', () => {
    expect(chooseAllreduce('ring', 64 << 20, byHost(2, 2), cross)).toBe('ring');
    expect(chooseAllreduce('tree', 64 << 20, byHost(2, 2), cross)).toBe('tree');
    expect(chooseAllreduce('hierarchical', 10, byHost(2, 2), cross)).toBe('hierarchical');
    expect(chooseAllreduce('hierarchical', 64 << 20, byHost(4, 1), cross)).toBe('ring');
  });

  it('predicts 2x2 hierarchical at about 1.5x the flat ring for large messages', () => {
    const t = byHost(2, 2);
    const ratio = predictSeconds('ring', 256 << 20, t) / predictSeconds('hierarchical', 256 << 20, t);
    expect(ratio).toBeGreaterThan(1.1);
    expect(ratio).toBeLessThan(1.5);
  });

  it('orders the flat ring host by host', () => {
    const t = new Topology([
      [0, 2],
      [1, 3],
    ]);
    expect(t.order).toEqual([0, 2, 1, 3]);
    expect([t.layout, t.identity, byHost(2, 2).identity]).toEqual(['2x2', false, true]);
  });
});

// ---- two hosts of two ranks, in network namespaces --------------------------------------------

const TAG = `rwhier${process.pid}`;
const NET = `10.246.${process.pid % 250}`;
const HOSTS = [`${TAG}h0`, `${TAG}h1`];
const ROUTER = `${TAG}r`;
const TOKEN_FILE = `/tmp/${TAG}.token`;
const addr = (h: number) => `${NET}.${h + 1}`;
const sh = (args: string[]) =>
  execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
const inNs = (ns: string, args: string[]) => sh(['netns', 'exec', ns, ...args]);

/** Why namespaces cannot be made here (not root, no ip), or undefined. */
function unavailable(): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    return 'network namespaces need Linux and root';
  try {
    sh(['netns', 'add', `${TAG}p`]);
    sh(['netns', 'del', `${TAG}p`]);
  } catch (err) {
    return `cannot create a network namespace: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

function build(): void {
  sh(['netns', 'add', ROUTER]);
  inNs(ROUTER, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  inNs(ROUTER, ['ip', 'link', 'set', 'br0', 'up']);
  HOSTS.forEach((ns, h) => {
    sh(['netns', 'add', ns]);
    sh(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `v${h}`, 'netns', ROUTER]);
    inNs(ROUTER, ['ip', 'link', 'set', `v${h}`, 'master', 'br0', 'up']);
    inNs(ns, ['ip', 'addr', 'add', `${addr(h)}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  });
}

function destroy(): void {
  rmSync(TOKEN_FILE, { force: true });
  for (const ns of [...HOSTS, ROUTER]) {
    try {
      for (const pid of sh(['netns', 'pids', ns]).toString().split('\n').filter(Boolean))
        process.kill(Number(pid), 'SIGKILL');
      sh(['netns', 'del', ns]);
    } catch {
      // never made, or gone already
    }
  }
}

const why = unavailable();
afterAll(async () => {
  await killAll();
  destroy();
});

describe.skipIf(why)('two hosts x two ranks in network namespaces', () => {
  it('hierarchical equals the flat ring bit for bit, and the chosen algorithm is reported', async () => {
    build();
    process.once('exit', destroy); // even if the runner is interrupted
    writeFileSync(TOKEN_FILE, `${TAG}-token\n`, { mode: 0o600 });
    const port = 29_000 + (process.pid % 1000);
    const rdv = spawnProc([
      'ip',
      'netns',
      'exec',
      HOSTS[0],
      process.execPath,
      RENDEZVOUS_CLI,
      '--host',
      addr(0),
      '--port',
      String(port),
      '--token-file',
      TOKEN_FILE,
    ]);
    await rdv.waitFor(/listening on/, 15_000);
    // Rank r on host r % 2: ranks 0, 2 on h0 and 1, 3 on h1.
    const procs: Proc[] = [0, 1, 2, 3].map((r) =>
      spawnNode(
        FIXTURE,
        [],
        {
          RINGWIRE_RANK: String(r),
          RINGWIRE_SIZE: '4',
          RINGWIRE_LOCAL_RANK: String(r >> 1),
          RINGWIRE_LOCAL_SIZE: '2',
          RINGWIRE_RENDEZVOUS: `ws://${addr(0)}:${port}`,
          RINGWIRE_JOB_ID: TAG,
          RINGWIRE_TOKEN: `${TAG}-token`,
          RINGWIRE_HOST: addr(r % 2),
        },
        ['ip', 'netns', 'exec', HOSTS[r % 2]],
      ),
    );
    const { codes, output } = await finish(procs, 50_000);
    expect(codes, output).toEqual([0, 0, 0, 0]);
    // Same-host peers talk through shared memory (when the addon that maps it loaded), the others over the veth.
    const ready = procs.map(
      (p) => jsonEvents<{ sharedMemoryPeers: number[]; kernels: string }>(p, 'ready')[0],
    );
    if (ready[0].kernels === 'native')
      expect(ready.map((x) => x.sharedMemoryPeers)).toEqual([[2], [3], [0], [1]]);
    else expect(ready.map((x) => x.sharedMemoryPeers)).toEqual([[], [], [], []]);
    type Result = { count: number; op: string; algo: string; chosen: string; digest: string; first: number };
    // Reduce-scatter: two-level equals the ring on every rank; all-gather: two-level (auto), every rank alike.
    for (const [r, p] of procs.entries()) {
      const rs = jsonEvents<{ algo: string; chosen: string; digest: string }>(p, 'rs');
      expect(
        rs.map((x) => x.chosen),
        `rank ${r}`,
      ).toEqual(['ring', 'hierarchical']);
      expect(rs[1].digest, `rank ${r}: two-level reduce-scatter differs from the ring`).toBe(rs[0].digest);
    }
    const ag = procs.map(
      (p) => jsonEvents<{ chosen: string; digest: string; lengths: number[] }>(p, 'ag')[0],
    );
    for (const [r, x] of ag.entries()) {
      expect(x.ok, `rank ${r}: all-gather result`).toBe(true);
      expect(x.chosen, `rank ${r}`).toBe('hierarchical');
      expect(x.lengths).toEqual([200_000, 200_003, 200_006, 200_009]);
      expect(x.digest, `rank ${r}: all-gather differs from rank 0's`).toBe(ag[0].digest);
    }
    const results = procs.map((p) => jsonEvents<Result>(p, 'result'));
    for (const [r, mine] of results.entries()) {
      expect(mine.length).toBe(18);
      for (const x of mine) {
        const ring = mine.find((y) => y.count === x.count && y.op === x.op && y.algo === 'ring')!;
        const what = `rank ${r}: ${x.algo} ${x.op} of ${x.count}`;
        expect(x.digest, `${what} differs from the flat ring`).toBe(ring.digest);
        expect(x.digest, `${what} differs from rank 0's`).toBe(
          results[0].find((y) => y.algo === x.algo && y.op === x.op && y.count === x.count)!.digest,
        );
        const big = x.count * 4 >= DEFAULTS.crossoverBytes;
        expect(x.chosen, what).toBe(x.algo === 'auto' ? (big ? 'hierarchical' : 'tree') : x.algo);
      }
    }
    // Element 1 of the sum: sum over ranks of ((7r + 13) % 17) - 8.
    expect(results[0].find((x) => x.op === 'sum')!.first).toBe(
      [0, 1, 2, 3].reduce((s, r) => s + (((r * 7 + 13) % 17) - 8), 0),
    );
  }, 60_000);
});
