import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAll } from '@ringwire/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  LineTagger,
  launch,
  parseHostfile,
  parseHostList,
  placeRanks,
  shellQuote,
  splitWords,
} from '../src/index.js';
import {
  alive,
  allGone,
  BARRIER,
  events,
  FAILING,
  NODE,
  ringrun,
  sleep,
  WORKER,
  waitEvents,
} from './helpers.js';

// Processes a test saw that ringrun may fail to stop (children in their own session): never left behind.
const strays: number[] = [];
afterEach(async () => {
  await killAll();
  for (const pid of strays.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});
const tmp = mkdtempSync(join(tmpdir(), 'ringrun-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('exit codes and fail-fast', () => {
  it('exits 0 when every rank succeeds', async () => {
    const p = ringrun(['-np', '3', NODE, WORKER, 'ok']);
    expect(await p.exited).toBe(0);
    expect(
      events(p, 'hello')
        .map((e) => e.rank)
        .sort(),
    ).toEqual([0, 1, 2]);
    expect(p.stderr).toEqual([]);
  });

  it('a rank exiting 3: the others are stopped, ringrun exits 3 naming the rank', async () => {
    const p = ringrun(['-np', '3', NODE, WORKER, 'exit', '1', '3']);
    expect(await p.exited).toBe(3);
    const pids = events(p, 'pid').map((e) => e.pid); // a rank slow to start may have been stopped first
    expect(pids.length).toBeGreaterThanOrEqual(1);
    expect(p.stderr).toContain('ringrun: rank 1 exited with code 3');
    await allGone(pids, 1000);
  });

  it('SIGKILL of one worker: ringrun exits 137 within 5 s naming the rank, no worker left', async () => {
    const p = ringrun(['-np', '4', NODE, WORKER, 'hang']);
    const started = await waitEvents(p, 'pid', 4);
    const victim = started.find((e) => e.rank === 2)!;
    const t0 = Date.now();
    process.kill(victim.pid, 'SIGKILL');
    expect(await p.exited).toBe(137);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(p.stderr).toContain('ringrun: rank 2 was killed by SIGKILL');
    await allGone(
      started.map((e) => e.pid),
      1000,
    );
  });

  it('SIGINT to ringrun stops every worker, SIGKILL after the grace period for one ignoring SIGTERM', async () => {
    const p = ringrun(['-np', '3', '--grace', '1', NODE, WORKER, 'stubborn']);
    const pids = (await waitEvents(p, 'pid', 3)).map((e) => e.pid);
    const t0 = Date.now();
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900); // they ignored SIGTERM, so it took the grace period
    expect(took).toBeLessThan(4000);
    expect(p.stderr).toContain('ringrun: SIGINT: stopping 3 workers');
    expect(events(p, 'ignored-sigterm')).toHaveLength(3);
    await allGone(pids, 500);
  });

  it('SIGKILL to ringrun itself: its watchdog stops the workers', async () => {
    const p = ringrun(['-np', '3', '--grace', '1', NODE, WORKER, 'hang']);
    const pids = (await waitEvents(p, 'pid', 3)).map((e) => e.pid);
    p.child.kill('SIGKILL');
    await p.exited;
    await allGone(pids, 3000);
  });

  it('a worker that exits leaves nothing behind in its process group', async () => {
    const p = ringrun(['-np', '2', NODE, WORKER, 'orphan']);
    expect(await p.exited).toBe(0);
    const kids = events<{ child: number }>(p, 'pid').map((e) => e.child);
    expect(kids).toHaveLength(2);
    await allGone(kids, 1000);
  });
});

describe('root cause of a failure', () => {
  it('a stalled rank is named, not the rank that timed out waiting for it', async () => {
    const p = ringrun(['-np', '3', NODE, FAILING, 'stall', '1'], { RINGWIRE_TIMEOUT_MS: '2000' });
    expect(await p.exited).toBe(3);
    const said = p.stderr.filter((l) => /^ringrun: (rank|then)/.test(l));
    expect(said[0], p.stderr.join('\n')).toMatch(
      /^ringrun: rank 1 failed first \(rank [02] timed out\): op #1 allreduce\(.*ranks not (arrived at op #1: 1 \(at op #0\)|answering: 1); it was still running and was stopped; exit code 3 \(rank [02]'s\)$/,
    );
    expect(said.slice(1).sort()).toEqual([
      'ringrun: then rank 0 exited with code 3',
      'ringrun: then rank 2 exited with code 3',
    ]);
    await allGone(
      events(p, 'pid').map((e) => e.pid),
      1000,
    );
  });

  it('a rank that reports a failure and exits 3 late is named with its code, not the ranks told of it that exit 1 first', async () => {
    const p = ringrun(['-np', '3', NODE, FAILING, 'report', '1']);
    expect(await p.exited).toBe(3);
    expect(events(p, 'aborted')).toHaveLength(2); // ranks 0 and 2 were told and exited 1 before rank 1 exited
    const said = p.stderr.filter((l) => /^ringrun: (rank|then)/.test(l));
    expect(said[0]).toBe('ringrun: rank 1 failed first: disk full; exit code 3');
    expect(said.slice(1).sort()).toEqual([
      'ringrun: then rank 0 exited with code 1',
      'ringrun: then rank 2 exited with code 1',
    ]);
  });

  it('a rank that crashes with 3 is named with code 3 although the others exit 1 a moment after', async () => {
    // Once both have exited, Node reports the exits in its own order, not by time (seen: 1 run in 4).
    const p = ringrun(['-np', '3', NODE, FAILING, 'crash', '1']);
    expect(await p.exited).toBe(3);
    expect(events(p, 'failed')).toHaveLength(2);
    const said = p.stderr.filter((l) => /^ringrun: (rank|then)/.test(l));
    expect(said[0]).toBe('ringrun: rank 1 exited with code 3');
    expect(said.slice(1).sort()).toEqual([
      'ringrun: then rank 0 exited with code 1',
      'ringrun: then rank 2 exited with code 1',
    ]);
  });
});

describe('stopping what the workers started', () => {
  /** Workers' pids and their children's, once every rank has started its detached child. */
  const started = async (p: ReturnType<typeof ringrun>, n: number) => {
    const got = await waitEvents<{ child: number }>(p, 'pid', n);
    const kids = got.map((e) => e.child);
    strays.push(...kids);
    for (const kid of kids) {
      // In a session of its own: out of reach of the worker's process group.
      const sid = Number(readFileSync(`/proc/${kid}/stat`, 'utf8').split(') ')[1].split(' ')[3]);
      expect(sid).toBe(kid);
    }
    return { pids: got.map((e) => e.pid), kids };
  };

  it('Ctrl-C: a child that moved to its own session is gone within 5 s', async () => {
    const p = ringrun(['-np', '2', NODE, WORKER, 'detach']);
    const { pids, kids } = await started(p, 2);
    const t0 = Date.now();
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(130);
    await allGone([...pids, ...kids], Math.max(0, 5000 - (Date.now() - t0)));
  });

  it("a failing rank: each worker's child in its own session is gone within 5 s", async () => {
    const p = ringrun(['-np', '2', NODE, WORKER, 'detach', '1', '3']);
    const { pids, kids } = await started(p, 2);
    const t0 = Date.now();
    expect(await p.exited).toBe(3);
    expect(p.stderr).toContain('ringrun: rank 1 exited with code 3');
    await allGone([...pids, ...kids], Math.max(0, 5000 - (Date.now() - t0)));
  });

  it('SIGKILL to ringrun: its watchdog stops a child in its own session too', async () => {
    const p = ringrun(['-np', '2', '--grace', '1', NODE, WORKER, 'detach']);
    const { pids, kids } = await started(p, 2);
    await sleep(1200); // ringrun collects the workers' descendants every 0.5 s
    p.child.kill('SIGKILL');
    await p.exited;
    await allGone([...pids, ...kids], 3000);
  });
});

describe('shared-memory files of a killed worker', () => {
  it("a rank SIGKILLed before its peer answered leaves no /dev/shm file: ringrun removes those named by its pid, no other's", async () => {
    const other = `/dev/shm/ringwire-${process.pid}-0123456789abcdef`; // this process's: kept
    writeFileSync(other, '');
    try {
      // What createRegion leaves when its process dies before unlinking: a file named by its pid.
      const body = `const f = '/dev/shm/ringwire-' + process.pid + '-fedcba9876543210';
        require('fs').writeFileSync(f, ''); console.log('made ' + f); process.kill(process.pid, 'SIGKILL');`;
      const p = ringrun(['-np', '1', NODE, '-e', body]);
      expect(await p.exited).toBe(137);
      const made = p.lines.map((l) => /^\[0\] made (\S+)$/.exec(l)?.[1]).find(Boolean);
      expect(made, p.lines.join('\n')).toMatch(/^\/dev\/shm\/ringwire-\d+-fedcba9876543210$/);
      expect(existsSync(made!)).toBe(false);
      expect(existsSync(other)).toBe(true);
    } finally {
      rmSync(other, { force: true });
    }
  });
});

describe('output', () => {
  it('tags heavy interleaved output: every line whole, prefixed, on its stream, none lost', async () => {
    const n = 3000;
    const ranks = 4;
    const p = ringrun(['-np', String(ranks), NODE, WORKER, 'spam', String(n)]);
    expect(await p.exited).toBe(0);
    for (const [stream, lines, mod] of [
      ['out', p.lines, (i: number) => i % 3 !== 0],
      ['err', p.stderr, (i: number) => i % 3 === 0],
    ] as const) {
      for (let r = 0; r < ranks; r++) {
        const mine = lines.filter((l) => l.startsWith(`[${r}] `)).map((l) => l.slice(`[${r}] `.length));
        const tail = stream === 'out' ? `tail r=${r} no newline` : `tail r=${r} stderr`;
        expect(mine.at(-1)).toBe(tail); // the unterminated last line is flushed at exit
        const expected = Array.from({ length: n }, (_, i) => i)
          .filter(mod)
          .map((i) => `${stream} r=${r} i=${i} ${'x'.repeat(i % 200)}€ end`);
        expect(mine.slice(0, -1)).toEqual(expected);
      }
      // Nothing untagged, nothing from another stream.
      expect(lines.every((l) => /^\[\d\] /.test(l))).toBe(true);
      expect(lines.length).toBe(ranks * ((n / 3) * (stream === 'out' ? 2 : 1) + 1));
    }
  });

  it('LineTagger holds partial lines and cuts none', () => {
    const got: string[] = [];
    const t = new LineTagger('[7] ', { write: (s: string) => got.push(s) });
    t.push('a');
    t.push('b\nc');
    expect(got).toEqual(['[7] ab\n']);
    t.push(Buffer.from([0xe2, 0x82])); // the first two bytes of '€'
    t.push(Buffer.from([0xac, 0x0a, 0x64, 0x0a, 0x65]));
    t.flush();
    expect(got.join('')).toBe('[7] ab\n[7] c€\n[7] d\n[7] e\n');
    expect(got.every((w) => w.endsWith('\n'))).toBe(true);
  });
});

describe('environment', () => {
  it('gives every rank the eight RINGWIRE_* variables and -x values', async () => {
    const p = ringrun(
      [
        '-np',
        '3',
        '-x',
        'RR_TEST_SET=a b=c',
        '-x',
        'RR_TEST_FWD',
        '-x',
        'RINGWIRE_LOG_LEVEL=debug',
        NODE,
        WORKER,
        'env',
      ],
      { RR_TEST_FWD: 'forwarded', RR_TEST_NOT: 'x' },
    );
    expect(await p.exited).toBe(0);
    const envs = events<{ vars: Record<string, string>; cwd: string }>(p, 'env').sort(
      (a, b) => a.rank - b.rank,
    );
    expect(envs).toHaveLength(3);
    const { RINGWIRE_JOB_ID: job, RINGWIRE_TOKEN: token, RINGWIRE_RENDEZVOUS: url } = envs[0].vars;
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(job).toMatch(/^ringrun-/);
    envs.forEach((e, r) => {
      expect(e.vars).toEqual({
        RINGWIRE_RANK: String(r),
        RINGWIRE_SIZE: '3',
        RINGWIRE_LOCAL_RANK: String(r),
        RINGWIRE_LOCAL_SIZE: '3',
        RINGWIRE_RENDEZVOUS: url,
        RINGWIRE_JOB_ID: job,
        RINGWIRE_TOKEN: token,
        RINGWIRE_HEARTBEAT_TIMEOUT_MS: '5000', // the default: RINGWIRE_TIMEOUT_MS is not set
        RINGWIRE_LOG_LEVEL: 'debug',
        RR_TEST_SET: 'a b=c',
        RR_TEST_FWD: 'forwarded',
        RR_TEST_NOT: 'x', // local workers inherit ringrun's environment
      });
      expect(e.cwd).toBe(process.cwd());
    });
  });

  it('a fresh token and job id per run', async () => {
    const runs = [ringrun(['-np', '1', NODE, WORKER, 'env']), ringrun(['-np', '1', NODE, WORKER, 'env'])];
    await Promise.all(runs.map((r) => r.exited));
    const [a, b] = runs.map((r) => events<{ vars: Record<string, string> }>(r, 'env')[0].vars);
    expect(a.RINGWIRE_TOKEN).not.toBe(b.RINGWIRE_TOKEN);
    expect(a.RINGWIRE_JOB_ID).not.toBe(b.RINGWIRE_JOB_ID);
  });

  it('places ranks on hosts in order; local names are one host and run without ssh', async () => {
    const hostfile = join(tmp, 'hosts');
    writeFileSync(hostfile, '# two here\nlocalhost slots=2\n\n127.0.0.1 slots=3  # and more\n');
    const p = ringrun(['--hostfile', hostfile, '-np', '4', '--ssh', 'false', NODE, WORKER, 'env']);
    expect(await p.exited).toBe(0);
    const envs = events<{ vars: Record<string, string> }>(p, 'env').sort((a, b) => a.rank - b.rank);
    expect(envs.map((e) => [e.vars.RINGWIRE_LOCAL_RANK, e.vars.RINGWIRE_LOCAL_SIZE])).toEqual([
      ['0', '4'],
      ['1', '4'],
      ['2', '4'],
      ['3', '4'],
    ]);
  });

  it('leaves the worker command flags alone', async () => {
    const p = ringrun(['-np', '1', NODE, WORKER, 'argv', '-np', '5', '--timeout', '-x', '--', 'y']);
    expect(await p.exited).toBe(0);
    expect(events<{ argv: string[] }>(p, 'argv')[0].argv).toEqual(['-np', '5', '--timeout', '-x', '--', 'y']);
  });
});

describe('timeouts', () => {
  it('--timeout stops the job and exits 124 saying so', async () => {
    const t0 = Date.now();
    const p = ringrun(['-np', '2', '--timeout', '1', NODE, WORKER, 'hang']);
    const pids = (await waitEvents(p, 'pid', 2)).map((e) => e.pid);
    expect(await p.exited).toBe(124);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(p.stderr).toContain('ringrun: timeout: the job ran longer than 1 s; stopping 2 workers');
    await allGone(pids, 500);
  });

  it('--start-timeout names the ranks that never joined the rendezvous', async () => {
    const p = ringrun(['-np', '3', '--start-timeout', '3', NODE, BARRIER], { RR_TEST_SKIP_RANK: '1' });
    expect(await p.exited).toBe(124);
    expect(p.stderr).toContain(
      'ringrun: start timeout: not every rank joined the rendezvous within 3 s; ranks never joined: 1 (2 of 3 joined)',
    );
    expect(events(p, 'done')).toEqual([]);
  });

  it('--start-timeout does not fire once everyone joined', async () => {
    const p = ringrun(['-np', '3', '--start-timeout', '10', '--timeout', '30', NODE, BARRIER]);
    expect(await p.exited).toBe(0);
    expect(events(p, 'done')).toHaveLength(3);
  });
});

describe('a real job on one host', () => {
  it('4 workers join the embedded rendezvous with the launcher env and pass barriers', async () => {
    const p = ringrun(['-np', '4', '--verbose', NODE, BARRIER]);
    expect(await p.exited).toBe(0);
    const joined = events<{ peers: { rank: number; localRank: number; localSize: number }[] }>(p, 'joined');
    expect(joined.map((e) => e.rank).sort()).toEqual([0, 1, 2, 3]);
    expect(joined[0].peers.map((x) => [x.rank, x.localRank, x.localSize])).toEqual([
      [0, 0, 4],
      [1, 1, 4],
      [2, 2, 4],
      [3, 3, 4],
    ]);
    expect(events(p, 'done')).toHaveLength(4);
    expect(p.stderr.join('\n')).toMatch(
      /ringrun: job ringrun-\S+: 4 workers, rendezvous ws:\/\/127\.0\.0\.1:\d+/,
    );
    expect(p.stderr).toContain('ringrun:   rank 3 on localhost (local rank 3 of 4)');
    expect(p.stderr).toContain('ringrun: all 4 ranks joined the rendezvous (generation 1)');
  });
});

describe('bad input', () => {
  const MARK = `rr-stray-${process.pid}`;
  const W = [NODE, WORKER, 'hang', MARK]; // would hang if it were ever started
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['--frobnicate', ...W], /unknown option '--frobnicate'/],
    ['-np 0', ['-np', '0', ...W], /-np <n>' argument '0' is invalid. must be a positive integer/],
    ['-np abc', ['-np', 'abc', ...W], /argument 'abc' is invalid/],
    ['-np 1.5', ['-np', '1.5', ...W], /argument '1.5' is invalid/],
    ['missing command', ['-np', '2'], /missing command/],
    ['no -np and no hosts', [...W], /-np is required when no hosts are given/],
    ['zero slots', ['-H', 'localhost:0', ...W], /slots must be a positive integer, got "0"/],
    ['bad slots', ['-H', 'localhost:two', ...W], /slots must be a positive integer, got "two"/],
    ['empty host entry', ['-H', 'a:1,,b:1', ...W], /empty host entry/],
    ['bad host name', ['-H', 'a;rm -rf:1', ...W], /bad host name "a;rm -rf"/],
    [
      'more ranks than slots',
      ['-np', '5', '-H', 'localhost:2,127.0.0.1:2', ...W],
      /-np 5 is more than the 4 slots/,
    ],
    ['missing hostfile', ['--hostfile', '/nonexistent/hosts', ...W], /cannot read --hostfile: ENOENT/],
    [
      '-x of a contract variable',
      ['-np', '1', '-x', 'RINGWIRE_RANK=9', ...W],
      /-x RINGWIRE_RANK: ringrun sets it/,
    ],
    ['bad -x name', ['-np', '1', '-x', '1BAD=x', ...W], /-x 1BAD=x: bad variable name/],
    ['bad --timeout', ['-np', '1', '--timeout', '-3', ...W], /--timeout <s>' argument '-3' is invalid/],
    [
      '--bind to an address not on this machine',
      ['-np', '1', '--bind', '203.0.113.77', ...W],
      /the rendezvous cannot listen on 203\.0\.113\.77: listen EADDRNOTAVAIL/,
    ],
    ['unterminated --ssh quote', ['-H', 'far.example:1', '--ssh', 'ssh "-i', ...W], /unterminated " quote/],
  ];
  for (const [name, args, message] of cases) {
    it(`${name}: a clear message, exit 2, nothing started`, async () => {
      const p = ringrun(args);
      expect(await p.exited).toBe(2);
      expect(p.stderr.join('\n')).toMatch(message);
      expect(p.lines).toEqual([]);
    });
  }

  it('a command that does not exist: exit 127 saying so', async () => {
    const p = ringrun(['-np', '2', 'no-such-command-ringrun', MARK]);
    expect(await p.exited).toBe(127);
    expect(p.stderr).toEqual(['ringrun: command not found: no-such-command-ringrun']);
  });

  it('left no process behind', () => {
    const stray = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(MARK) && !l.includes('ps -eo'));
    expect(stray).toEqual([]);
  });
});

describe('launch() API', () => {
  it('returns the result, writes to the given sinks and stops on an AbortSignal', async () => {
    const out: string[] = [];
    const logs: string[] = [];
    const sink = { write: (s: string) => out.push(s) };
    const failed = await launch({
      command: NODE,
      args: [WORKER, 'exit', '1', '3'],
      np: 2,
      stdout: sink,
      stderr: sink,
      log: (m) => logs.push(m),
    });
    expect(failed).toEqual({ code: 3, failedRank: 1, reason: 'rank 1 exited with code 3' });
    expect(logs).toEqual(['rank 1 exited with code 3']);
    expect(out.join('')).toContain('[1] {"event":"pid","rank":1');
    const ac = new AbortController();
    const running = launch({
      command: NODE,
      args: [WORKER, 'hang'],
      np: 2,
      stdout: sink,
      stderr: sink,
      log: (m) => logs.push(m),
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 800));
    ac.abort('SIGTERM');
    expect(await running).toEqual({ code: 143, reason: 'SIGTERM: stopping 2 workers' });
    await expect(launch({ command: NODE, np: 0 })).rejects.toThrow(/-np must be a positive integer, got 0/);
  });
});

describe('--check, --help', () => {
  it('--check prints the version, the kernels and the TensorFlow.js backends', async () => {
    const p = ringrun(['--check']);
    expect(await p.exited).toBe(0);
    expect(p.lines[0]).toMatch(/^ringrun \d+\.\d+\.\d+ \(node v\d+/);
    expect(p.lines[1]).toMatch(/^native kernels: (yes|no, using JS kernels: .+)/);
    expect(p.lines[2]).toMatch(
      /^shared memory between same-host workers: yes \(\/dev\/shm, \d+\.\d GiB free\)$/,
    );
    expect(p.lines.slice(3)).toEqual([
      'TensorFlow.js backends:',
      ...[
        '@tensorflow/tfjs',
        '@tensorflow/tfjs-node',
        '@tensorflow/tfjs-node-gpu',
        '@tensorflow/tfjs-backend-webgpu',
      ].map((n) => expect.stringMatching(new RegExp(`^  ${n}: (installed|not installed)`))),
    ]);
  });

  it('--check with RINGWIRE_NO_NATIVE=1 reports the JS kernels and why', async () => {
    const p = ringrun(['--check'], { RINGWIRE_NO_NATIVE: '1' });
    expect(await p.exited).toBe(0);
    expect(p.lines[1]).toMatch(/^native kernels: no, using JS kernels: /);
    expect(p.lines[2]).toBe('shared memory between same-host workers: no, using TCP: RINGWIRE_NO_NATIVE=1');
    const off = ringrun(['--check'], { RINGWIRE_SHM: '0' });
    expect(await off.exited).toBe(0);
    expect(off.lines[2]).toBe('shared memory between same-host workers: off (RINGWIRE_SHM=0)');
  });

  it('--help documents the ssh option, the environment and the exit codes', async () => {
    const p = ringrun(['--help']);
    expect(await p.exited).toBe(0);
    const help = p.lines.join('\n');
    for (const s of [
      '--ssh <command>',
      'RINGRUN_SSH',
      'RINGWIRE_RENDEZVOUS',
      '128+n',
      '124',
      '--start-timeout',
      '-x <VAR[=value]>',
      '--hostfile',
    ])
      expect(help).toContain(s);
  });
});

describe('units', () => {
  it('host lists, hostfiles and placement', () => {
    expect(parseHostList('a:2,b,[::1]:3')).toEqual([
      { host: 'a', slots: 2 },
      { host: 'b', slots: 1 },
      { host: '::1', slots: 3 },
    ]);
    expect(parseHostfile('a slots=2 max_slots=4\n# c\nb\n')).toEqual([
      { host: 'a', slots: 2 },
      { host: 'b', slots: 1 },
    ]);
    expect(() => parseHostfile('a slots=2 junk')).toThrow(/hostfile:1: expected "host slots=N"/);
    const plan = placeRanks(3, [
      { host: 'h1', slots: 2 },
      { host: 'h2', slots: 2 },
    ]);
    expect(plan.map((p) => [p.rank, p.host, p.localRank, p.localSize])).toEqual([
      [0, 'h1', 0, 2],
      [1, 'h1', 1, 2],
      [2, 'h2', 0, 1],
    ]);
    expect(
      placeRanks(undefined, [
        { host: 'h1', slots: 1 },
        { host: 'h2', slots: 1 },
        { host: 'h1', slots: 1 },
      ]).map((p) => p.host),
    ).toEqual(['h1', 'h1', 'h2']);
  });

  it('shell words and quoting round-trip through a real sh', () => {
    expect(splitWords(`ssh -i "/a b/key" -o 'X=1 2' c\\ d`)).toEqual([
      'ssh',
      '-i',
      '/a b/key',
      '-o',
      'X=1 2',
      'c d',
    ]);
    const nasty = [`it's`, '$(touch /tmp/pwned)', '`x`', 'a\nb', '"q"', '\\', '', ' lead', '*'];
    const echoed = execFileSync('sh', ['-c', `printf '%s\\0' ${nasty.map(shellQuote).join(' ')}`], {
      encoding: 'utf8',
    });
    expect(echoed.split('\0').slice(0, -1)).toEqual(nasty);
  });
});
