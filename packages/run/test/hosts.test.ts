import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ALLREDUCE,
  allGone,
  events,
  killRingrunIn,
  NODE,
  ringrunIn,
  sleep,
  WORKER,
  waitEvents,
} from './helpers.js';
import {
  buildCluster,
  type Cluster,
  clusterUnavailable,
  destroyCluster,
  pidsIn,
  qdiscUnavailable,
  shape,
} from './netns.js';

// Across hosts for real: network namespaces joined by a bridge, an sshd in each, ringrun in h0.
// Where that cannot be built, say exactly why instead of passing.
const noCluster = clusterUnavailable();
if (noCluster) console.warn(`ringrun cross-host tests skipped: ${noCluster}`);
const TBF = ['tbf', 'rate', '50mbit', 'burst', '64kb', 'latency', '500ms'];
const NETEM = ['netem', 'delay', '30ms', 'rate', '50mbit'];
const noTbf = noCluster ?? qdiscUnavailable(TBF);
const noNetem = noCluster ?? qdiscUnavailable(NETEM);
if (!noCluster && noTbf) console.warn(`ringrun bandwidth-limited link test skipped: ${noTbf}`);
if (!noCluster && noNetem) console.warn(`ringrun high-latency link test skipped: ${noNetem}`);

type Reduced = {
  size: number;
  localRank: number;
  localSize: number;
  wrong: number;
  first: number;
  ms: number;
  addrs: string[];
  shm: number[];
};

describe.skipIf(noCluster !== undefined)('across hosts (network namespaces + sshd)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await buildCluster(3);
  });
  afterAll(() => destroyCluster());
  afterEach(() => killRingrunIn());

  const hosts = () => `${c.addr[1]}:2,${c.addr[2]}:2`;
  /** Everything but the sshd listener has left hosts h1 and h2. */
  const remoteQuiet = async (timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = [1, 2].flatMap((i) => pidsIn(c.ns[i]).filter((p) => p !== c.sshd[i]));
      if (left.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `still running on the remote hosts: ${left.map((p) => `${p} ${cmdline(p)}`).join('; ')}`,
        );
      await sleep(50);
    }
  };

  it('a real job: 4 ranks on two hosts over ssh all-reduce, each on its own host', async () => {
    const p = ringrunIn(c.ns[0], [
      '-H',
      hosts(),
      '--ssh',
      c.ssh,
      '--verbose',
      '--timeout',
      '60',
      NODE,
      ALLREDUCE,
    ]);
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    const got = events<Reduced>(p, 'allreduce').sort((a, b) => a.rank - b.rank);
    expect(got.map((e) => [e.rank, e.size, e.localRank, e.localSize, e.wrong, e.first])).toEqual([
      [0, 4, 0, 2, 0, 10],
      [1, 4, 1, 2, 0, 10],
      [2, 4, 0, 2, 0, 10],
      [3, 4, 1, 2, 0, 10],
    ]);
    expect(got.map((e) => e.addrs)).toEqual([[c.addr[1]], [c.addr[1]], [c.addr[2]], [c.addr[2]]]);
    // Ranks on one host share memory; across hosts their data goes over TCP.
    expect(got.map((e) => e.shm)).toEqual([[1], [0], [3], [2]]);
    // Without --bind, the rendezvous took the address the hosts are routed through.
    expect(p.stderr.join('\n')).toMatch(
      new RegExp(`rendezvous ws://${c.addr[0].replaceAll('.', '\\.')}:\\d+`),
    );
    await remoteQuiet(3000);
  });

  it('mixes a local rank (no ssh) with remote ones', async () => {
    const p = ringrunIn(c.ns[0], [
      '-H',
      `localhost:1,${c.addr[1]}:1,${c.addr[2]}:1`,
      '--ssh',
      c.ssh,
      '--timeout',
      '60',
      NODE,
      ALLREDUCE,
    ]);
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    const got = events<Reduced>(p, 'allreduce').sort((a, b) => a.rank - b.rank);
    expect(got.map((e) => [e.addrs, e.wrong, e.first])).toEqual([
      [[c.addr[0]], 0, 6],
      [[c.addr[1]], 0, 6],
      [[c.addr[2]], 0, 6],
    ]);
  });

  it('remote workers get exactly the contract variables and -x values, safely quoted, in the same cwd', async () => {
    const nasty = `it's "quoted" $(touch /tmp/pwned-${process.pid}) \`x\` \\ *\nsecond line`;
    const p = ringrunIn(
      c.ns[0],
      [
        '-np',
        '3',
        '-H',
        hosts(),
        '--ssh',
        c.ssh,
        '-x',
        `RR_TEST_Q=${nasty}`,
        '-x',
        'RR_TEST_FWD',
        NODE,
        WORKER,
        'env',
      ],
      { RR_TEST_FWD: 'fwd', RR_TEST_NOT: 'x' },
    );
    expect(await p.exited, p.stderr.join('\n')).toBe(0);
    const envs = events<{ vars: Record<string, string>; cwd: string }>(p, 'env').sort(
      (a, b) => a.rank - b.rank,
    );
    expect(envs).toHaveLength(3);
    const { RINGWIRE_RENDEZVOUS: url, RINGWIRE_TOKEN: token, RINGWIRE_JOB_ID: job } = envs[0].vars;
    expect(url).toMatch(new RegExp(`^ws://${c.addr[0].replaceAll('.', '\\.')}:\\d+$`));
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    const placed = [
      [0, 2],
      [1, 2],
      [0, 1],
    ];
    envs.forEach((e, r) => {
      expect(e.vars).toEqual({
        RINGWIRE_RANK: String(r),
        RINGWIRE_SIZE: '3',
        RINGWIRE_LOCAL_RANK: String(placed[r][0]),
        RINGWIRE_LOCAL_SIZE: String(placed[r][1]),
        RINGWIRE_RENDEZVOUS: url,
        RINGWIRE_JOB_ID: job,
        RINGWIRE_TOKEN: token,
        RINGWIRE_HEARTBEAT_TIMEOUT_MS: '5000',
        RR_TEST_Q: nasty,
        RR_TEST_FWD: 'fwd',
      });
      expect(e.cwd).toBe(process.cwd());
    });
    expect(() => readFileSync(`/tmp/pwned-${process.pid}`)).toThrow();
  });

  it('a remote rank exiting 3: ringrun exits 3 naming it, both hosts are cleared', async () => {
    const p = ringrunIn(c.ns[0], ['-H', hosts(), '--ssh', c.ssh, NODE, WORKER, 'exit', '3', '3']);
    expect(await p.exited).toBe(3);
    // Ranks still starting when rank 3 failed may never have printed a pid: remoteQuiet covers them.
    const pids = events(p, 'pid').map((e) => e.pid);
    expect(pids.length).toBeGreaterThanOrEqual(1);
    expect(p.stderr).toContain(`ringrun: rank 3 (on ${c.addr[2]}) exited with code 3`);
    await allGone(pids, 2000);
    await remoteQuiet(3000);
  });

  it('SIGKILL of a remote worker: ringrun exits 137 within 5 s naming the rank', async () => {
    const p = ringrunIn(c.ns[0], ['-H', hosts(), '--ssh', c.ssh, NODE, WORKER, 'hang']);
    const started = await waitEvents(p, 'pid', 4);
    const t0 = Date.now();
    process.kill(started.find((e) => e.rank === 1)!.pid, 'SIGKILL');
    expect(await p.exited).toBe(137);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(p.stderr).toContain(
      `ringrun: rank 1 (on ${c.addr[1]}) was killed by SIGKILL (remote exit status 137)`,
    );
    await allGone(
      started.map((e) => e.pid),
      2000,
    );
    await remoteQuiet(3000);
  });

  it('SIGINT to ringrun stops every remote worker; the token is on no command line', async () => {
    const p = ringrunIn(c.ns[0], ['-H', hosts(), '--ssh', c.ssh, '--grace', '1', NODE, WORKER, 'envhang']);
    const started = await waitEvents(p, 'pid', 4);
    const token = events<{ vars: Record<string, string> }>(p, 'env')[0].vars.RINGWIRE_TOKEN;
    const exposed = readdirSync('/proc').filter((d) => /^\d+$/.test(d) && cmdline(Number(d)).includes(token));
    expect(exposed).toEqual([]);
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    await allGone(
      started.map((e) => e.pid),
      2000,
    );
    await remoteQuiet(3000);
  });

  it('SIGKILL to ringrun: the ssh sessions close and the remote workers stop', async () => {
    const p = ringrunIn(c.ns[0], ['-H', hosts(), '--ssh', c.ssh, '--grace', '1', NODE, WORKER, 'hang']);
    const started = await waitEvents(p, 'pid', 4);
    p.child.kill('SIGKILL');
    await p.exited;
    await allGone(
      started.map((e) => e.pid),
      4000,
    );
    await remoteQuiet(4000);
  });

  it("an unreachable sshd: exit 255, naming the rank and showing ssh's message", async () => {
    const p = ringrunIn(c.ns[0], [
      '-H',
      `${c.addr[1]}:1`,
      '--ssh',
      c.ssh.replace('-p 2222', '-p 2223'),
      NODE,
      WORKER,
      'ok',
    ]);
    expect(await p.exited).toBe(255);
    expect(p.stderr).toContain(
      `ringrun: rank 0 (on ${c.addr[1]}) exited with code 255: ssh failed (see its message above) or the command exited 255`,
    );
    expect(p.stderr.join('\n')).toMatch(/^\[0\] ssh: connect to host .* Connection refused/m);
  });

  it('refuses to guess when the hosts reach this machine through different addresses', async () => {
    // A second subnet on h0's loopback: 10.232.0.5 is routed from 10.232.0.1, not from h0's eth0 address.
    const { execFileSync } = await import('node:child_process');
    execFileSync('ip', ['netns', 'exec', c.ns[0], 'ip', 'addr', 'add', '10.232.0.1/24', 'dev', 'lo']);
    const p = ringrunIn(c.ns[0], ['-H', `${c.addr[1]}:1,10.232.0.5:1`, '--ssh', c.ssh, NODE, WORKER, 'ok']);
    expect(await p.exited).toBe(2);
    expect(p.stderr).toEqual([
      `ringrun: the hosts reach this machine through different addresses (${c.addr[1]} via ${c.addr[0]}; 10.232.0.5 via 10.232.0.1); pass --bind ADDR with one they all reach`,
    ]);
  });

  it.skipIf(noTbf !== undefined)(
    'a 50 mbit/s link (tbf): a 4 MB all-reduce is slowed but succeeds, no spurious timeout',
    async () => {
      shape(c, TBF);
      try {
        const p = ringrunIn(c.ns[0], [
          '-H',
          hosts(),
          '--ssh',
          c.ssh,
          '-x',
          'RR_TEST_COUNT=1000000',
          '--timeout',
          '60',
          NODE,
          ALLREDUCE,
        ]);
        expect(await p.exited, p.stderr.join('\n')).toBe(0);
        const got = events<Reduced>(p, 'allreduce');
        expect(got.map((e) => [e.wrong, e.first])).toEqual(Array(4).fill([0, 10]));
        // Each host must receive at least one reduced 4 MB vector from the other: >= 0.64 s at 50 Mbit/s.
        expect(Math.max(...got.map((e) => e.ms))).toBeGreaterThan(500);
      } finally {
        shape(c);
      }
    },
  );

  it.skipIf(noNetem !== undefined)(
    'a slow, distant link (netem delay 30ms rate 50mbit): the job still succeeds',
    async () => {
      shape(c, NETEM);
      try {
        const p = ringrunIn(c.ns[0], [
          '-H',
          hosts(),
          '--ssh',
          c.ssh,
          '-x',
          'RR_TEST_COUNT=1000000',
          '--timeout',
          '60',
          NODE,
          ALLREDUCE,
        ]);
        expect(await p.exited, p.stderr.join('\n')).toBe(0);
        const got = events<Reduced>(p, 'allreduce');
        expect(got.map((e) => [e.wrong, e.first])).toEqual(Array(4).fill([0, 10]));
        expect(Math.max(...got.map((e) => e.ms))).toBeGreaterThan(500);
      } finally {
        shape(c);
      }
    },
  );
});

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}
