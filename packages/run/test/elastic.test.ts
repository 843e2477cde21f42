import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, type Proc } from '@ringwire/testing';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseDiscovery } from '../src/index.js';
import { allGone, NODE, ringrun, sleep } from './helpers.js';

// ringrun's elastic jobs with real processes: the fixture (core's) runs elastic.run over an
// ObjectState counter that every step raises by exactly 1 (an all-reduce of ones divided by the
// size) and commits every step; each worker prints a "check" line that the counter equals the
// step count. Workers are SIGKILLed from outside, restarted, added and removed by a discovery script.

const FIXTURE = fileURLToPath(new URL('../../core/test/fixtures/elastic.mjs', import.meta.url));
/** Fast re-formation, no native-kernel warning on every worker. */
const ENV = { RINGWIRE_ELASTIC_SETTLE_MS: '300', RINGWIRE_NO_NATIVE: '1' };
const tmp = mkdtempSync(join(tmpdir(), 'ringrun-elastic-'));
afterEach(() => killAll());
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Ev = { id: string; event: string; step?: number; generation?: number; ok?: boolean; detail?: string };

/** The JSON events workers printed through ringrun, with the tag ringrun gave each line. */
function events(p: Proc, event: string): (Ev & { tag: string })[] {
  return p.lines.flatMap((l) => {
    const m = /^\[([^\]]+)\] (\{.*\})$/.exec(l);
    const e = m && (JSON.parse(m[2]) as Ev);
    return e && e.event === event ? [{ ...e, tag: m[1] }] : [];
  });
}

/** Everything ringrun and its workers printed, for failure messages. */
const output = (p: Proc) =>
  `${p.lines.filter((l) => !l.includes('"step"')).join('\n')}\n${p.stderr.join('\n')}`;

/** Waits until `cond` holds (polling), failing with ringrun's output after `ms`. */
async function until(p: Proc, what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${output(p)}`);
    await sleep(25);
  }
}

/** Waits until worker `id` has printed step `n` or later. */
const atStep = (p: Proc, id: string, n: number) =>
  until(p, `${id} at step ${n}`, () => events(p, 'step').some((e) => e.id === id && e.step! >= n));

/** The pid of ringrun's worker with RINGWIRE_WORKER_ID `id` (a direct child of ringrun). */
function workerPid(p: Proc, id: string): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== p.child.pid) continue;
      if (readFileSync(`/proc/${name}/environ`, 'utf8').split('\0').includes(`RINGWIRE_WORKER_ID=${id}`))
        return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no worker ${id} under ringrun ${p.child.pid}`);
}

/** Every worker in `ids` printed a passing counter check; no other worker did. */
function expectCounters(p: Proc, ids: string[]): void {
  const checks = events(p, 'check');
  expect(checks.map((c) => c.tag).sort(), output(p)).toEqual([...ids].sort());
  for (const c of checks) expect(c.ok, `${c.id}: ${c.detail}\n${output(p)}`).toBe(true);
}

const generationLines = (p: Proc) => p.stderr.filter((l) => l.startsWith('ringrun: generation '));

/** A discovery script that prints (or does) what the file `name`.mode says: a host list, fail, junk or hang. */
function discoveryScript(name: string, mode: string): { script: string; set: (mode: string) => void } {
  const modeFile = join(tmp, `${name}.mode`);
  const script = join(tmp, `${name}.sh`);
  writeFileSync(
    script,
    `#!/bin/sh
m=$(cat '${modeFile}')
case "$m" in
  fail) echo 'cannot reach the cluster API' >&2; exit 3 ;;
  junk) echo 'hello world!' ;;
  hang) exec sleep 30 ;;
  *) printf '%s\\n' $m ;;
esac
`,
  );
  chmodSync(script, 0o755);
  // Replaced whole, so that the script never reads a half-written file.
  const set = (m: string) => (writeFileSync(`${modeFile}.tmp`, m), renameSync(`${modeFile}.tmp`, modeFile));
  set(mode);
  return { script, set };
}

describe('ringrun elastic jobs', () => {
  it('4 workers, --min-np 2, one SIGKILLed mid-run: the job completes with exit 0 and every counter equals the step count', async () => {
    const p = ringrun(['--min-np', '2', '--max-np', '4', '-np', '4', '-x', 'STEPS=60', NODE, FIXTURE], ENV);
    await atStep(p, 'localhost:2', 10);
    process.kill(workerPid(p, 'localhost:2'), 'SIGKILL');
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:1', 'localhost:3']);
    expect(p.stderr).toContain('ringrun: localhost:2 was killed by SIGKILL; 3 workers running');
    // Printed once by the launcher, not by each worker; the identity survives renumbering.
    expect(generationLines(p)).toEqual([
      'ringrun: generation 1: 4 workers (start)',
      'ringrun: generation 2: 3 workers (left: localhost:2; joined: -)',
    ]);
    // localhost:3 is rank 2 in generation 2, yet its lines keep its tag.
    const late = events(p, 'step').filter((e) => e.generation === 2);
    expect(late.length).toBeGreaterThan(0);
    for (const e of late) expect(e.tag).toBe(e.id);
  }, 40_000);

  it('two workers SIGKILLed at once: the two others finish with exit 0', async () => {
    const p = ringrun(['--min-np', '2', '-np', '4', '-x', 'STEPS=60', NODE, FIXTURE], ENV);
    await atStep(p, 'localhost:1', 10);
    const pids = ['localhost:1', 'localhost:3'].map((id) => workerPid(p, id));
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:2']);
    expect(generationLines(p).at(-1)).toBe(
      'ringrun: generation 2: 2 workers (left: localhost:1, localhost:3; joined: -)',
    );
  }, 40_000);

  it('--tls: a wss rendezvous and mutual TLS between the workers, through a lost worker; the job CA is removed at the end', async () => {
    const p = ringrun(
      ['--tls', '--min-np', '2', '-np', '3', '-x', 'STEPS=60', '-x', 'RINGWIRE_SHM=0', NODE, FIXTURE],
      ENV,
    );
    await atStep(p, 'localhost:1', 10);
    const env = readFileSync(`/proc/${workerPid(p, 'localhost:0')}/environ`, 'utf8').split('\0');
    const get = (k: string) => env.find((e) => e.startsWith(`${k}=`))?.slice(k.length + 1);
    expect(get('RINGWIRE_RENDEZVOUS')).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const ca = get('RINGWIRE_TLS_CA')!;
    expect(readFileSync(ca, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    process.kill(workerPid(p, 'localhost:1'), 'SIGKILL');
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:2']);
    expect(() => readFileSync(ca)).toThrow(/ENOENT/);
  }, 40_000);

  it('dropping below --min-np: non-zero exit, a message naming what happened, no worker left', async () => {
    const p = ringrun(['--min-np', '3', '-np', '4', '--grace', '1', '-x', 'STEPS=400', NODE, FIXTURE], ENV);
    await atStep(p, 'localhost:0', 5);
    const all = ['localhost:0', 'localhost:1', 'localhost:2', 'localhost:3'].map((id) => workerPid(p, id));
    process.kill(all[1], 'SIGKILL');
    process.kill(all[2], 'SIGKILL');
    expect(await p.exited, output(p)).toBe(137);
    const msg = p.stderr.find((l) => l.includes('elastic job failed'));
    expect(msg, output(p)).toMatch(
      /^ringrun: elastic job failed: 2 workers left, fewer than --min-np 3: localhost:[12] was killed by SIGKILL; localhost:[12] was killed by SIGKILL; no restarts allowed \(--max-restarts 0\)$/,
    );
    await allGone(all, 3000);
  }, 40_000);

  it('--max-restarts: a SIGKILLed worker slot is restarted as host:slot#1 and rejoins', async () => {
    const p = ringrun(
      ['--min-np', '2', '-np', '3', '--max-restarts', '1', '-x', 'STEPS=150', NODE, FIXTURE],
      ENV,
    );
    await atStep(p, 'localhost:1', 10);
    process.kill(workerPid(p, 'localhost:1'), 'SIGKILL');
    expect(await p.exited, output(p)).toBe(0);
    expect(p.stderr).toContain('ringrun: restarting localhost:1 as localhost:1#1 (restart 1 of 1)');
    expectCounters(p, ['localhost:0', 'localhost:1#1', 'localhost:2']);
    expect(generationLines(p).join('\n')).toMatch(/: 3 workers \(left: [^;]*; joined: localhost:1#1\)/);
  }, 40_000);

  it('a worker added through the discovery script joins at the next commit; one removed is stopped', async () => {
    const d = discoveryScript('grow', 'localhost:2');
    const p = ringrun(
      [
        ...['--min-np', '2', '--max-np', '3', '--host-discovery-script', d.script],
        ...['--discovery-interval', '0.2', '-x', 'STEPS=250', NODE, FIXTURE],
      ],
      ENV,
    );
    await atStep(p, 'localhost:0', 5);
    d.set('localhost:3');
    await until(p, 'the newcomer', () => events(p, 'step').some((e) => e.id === 'localhost:2'));
    expect(p.stderr).toContain('ringrun: hosts changed: localhost:3 (were localhost:2)');
    expect(generationLines(p)[1]).toBe('ringrun: generation 2: 3 workers (left: -; joined: localhost:2)');
    // It joined at a commit: nothing was rolled back, generation 2 starts where generation 1 ended.
    const [gen2] = events(p, 'generation').filter((e) => e.generation === 2);
    const last1 = Math.max(
      ...events(p, 'step')
        .filter((e) => e.generation === 1)
        .map((e) => e.step!),
    );
    expect(gen2.step, output(p)).toBe(last1);
    d.set('localhost:2');
    await until(p, 'the removal', () =>
      p.stderr.includes('ringrun: stopping localhost:2: its host is no longer listed'),
    );
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:1']);
    expect(generationLines(p)[2]).toBe('ringrun: generation 3: 2 workers (left: localhost:2; joined: -)');
  }, 40_000);

  it('a host whose workers keep failing is excluded for a cooldown; the job goes on without it', async () => {
    const d = discoveryScript('flaky', 'localhost:2 127.0.0.1:1');
    const cmd = `case "$RINGWIRE_WORKER_ID" in 127.0.0.1:*) exit 3 ;; esac; exec "${NODE}" "${FIXTURE}"`;
    const p = ringrun(
      [
        ...['--min-np', '2', '--max-np', '3', '-np', '2', '--max-restarts', '5'],
        ...['--host-discovery-script', d.script, '--discovery-interval', '0.2', '-x', 'STEPS=60'],
        ...['sh', '-c', cmd],
      ],
      ENV,
    );
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:1']);
    const failed = p.stderr.filter((l) => / 127\.0\.0\.1:0\S* exited with code 3/.test(l));
    expect(failed.length, output(p)).toBe(3);
    expect(p.stderr).toContain(
      'ringrun: host 127.0.0.1 excluded for 60 s: 3 worker failures within that time',
    );
    expect(p.stderr.join('\n')).not.toContain('127.0.0.1:0#3');
  }, 40_000);

  it('a discovery script that fails, prints junk or hangs mid-job: one warning each, the hosts are kept', async () => {
    const d = discoveryScript('bad', 'localhost:2');
    const p = ringrun(
      [
        ...['--min-np', '2', '--host-discovery-script', d.script, '--discovery-interval', '0.2'],
        ...['-x', 'STEPS=150', NODE, FIXTURE],
      ],
      ENV,
    );
    await atStep(p, 'localhost:0', 2);
    const warned = (s: string) => () => p.stderr.some((l) => l.includes(s));
    for (const [mode, said] of [
      ['fail', 'exited with code 3: cannot reach the cluster API'],
      ['junk', 'line 1: expected host:slots, got "hello world!"'],
      ['hang', 'did not finish within 0.2 s (killed)'],
    ]) {
      d.set(mode);
      await until(p, `the ${mode} warning`, warned(said), 10_000);
    }
    d.set('localhost:2');
    expect(await p.exited, output(p)).toBe(0);
    expectCounters(p, ['localhost:0', 'localhost:1']);
    const warnings = p.stderr.filter((l) => l.startsWith('ringrun: warning: host discovery script'));
    expect(warnings.length, output(p)).toBe(3); // once each, not once per poll
    expect(warnings[0]).toBe(
      'ringrun: warning: host discovery script exited with code 3: cannot reach the cluster API; keeping the previous hosts (localhost:2)',
    );
    expect(p.stderr.join('\n')).not.toContain('hosts changed');
    expect(generationLines(p)).toEqual(['ringrun: generation 1: 2 workers (start)']);
  }, 40_000);

  describe('bad input: exit 2 with a clear message, nothing started', () => {
    const usage = async (args: string[], message: string | RegExp) => {
      const p = ringrun([...args, NODE, FIXTURE], ENV);
      expect(await p.exited, output(p)).toBe(2);
      expect(p.stderr.length, output(p)).toBe(1);
      if (typeof message === 'string') expect(p.stderr[0]).toBe(`ringrun: ${message}`);
      else expect(p.stderr[0]).toMatch(message);
      expect(p.lines).toEqual([]);
    };
    it('--min-np above --max-np or -np, -np above --max-np', async () => {
      await usage(['--min-np', '5', '--max-np', '4', '-np', '4'], '--min-np 5 is above --max-np 4');
      await usage(['--min-np', '3', '-np', '2'], '-np 2 is below --min-np 3');
      await usage(['--max-np', '2', '-np', '3'], '-np 3 is above --max-np 2');
      await usage(
        ['--max-restarts', '-1', '-np', '2'],
        /^error: option '--max-restarts <n>' argument '-1' is invalid. must be an integer >= 0/,
      );
    });
    it('flags that need others, and a discovery script with -H', async () => {
      await usage(
        ['--discovery-interval', '1', '-np', '2'],
        '--discovery-interval needs --host-discovery-script',
      );
      const d = discoveryScript('start-ok', 'localhost:2');
      await usage(
        ['--host-discovery-script', d.script, '-H', 'localhost:2'],
        '--host-discovery-script lists the hosts: give it or -H/--hostfile, not both',
      );
      await usage(
        ['--host-discovery-script', d.script, '--min-np', '3'],
        `the host discovery script lists 2 slots (localhost:2), fewer than --min-np 3`,
      );
    });
    it('a discovery script that fails, prints junk or hangs at the start', async () => {
      const d = discoveryScript('start', 'fail');
      const flags = ['--host-discovery-script', d.script, '--discovery-interval', '0.5'];
      await usage(
        flags,
        `--host-discovery-script ${d.script} exited with code 3: cannot reach the cluster API`,
      );
      d.set('junk');
      await usage(
        flags,
        `--host-discovery-script ${d.script} line 1: expected host:slots, got "hello world!"`,
      );
      d.set('hang');
      const t0 = Date.now();
      await usage(flags, `--host-discovery-script ${d.script} did not finish within 0.5 s (killed)`);
      expect(Date.now() - t0).toBeLessThan(5_000);
      d.set('');
      await usage(flags, `--host-discovery-script ${d.script} printed no hosts`);
      await usage(
        ['--host-discovery-script', join(tmp, 'missing.sh')],
        /could not be run: spawn .*missing\.sh ENOENT$/,
      );
    });
  });
});

describe('parseDiscovery', () => {
  it('host:slots lines, host alone = 1 slot, comments, repeated hosts add up', () => {
    expect(parseDiscovery('# cluster\nnode1:2\n\nnode2\nnode1:1 # more\n[::1]:2\n')).toEqual({
      hosts: [
        { host: 'node1', slots: 3 },
        { host: 'node2', slots: 1 },
        { host: '::1', slots: 2 },
      ],
    });
  });
  it('junk is an error naming the line', () => {
    expect(parseDiscovery('node1:2\nnode2:x\n').error).toBe(
      'line 2: slots must be a positive integer, got "x"',
    );
    expect(parseDiscovery('a:1,b:1').error).toMatch(/^line 1: expected host:slots/);
    expect(parseDiscovery('rm -rf /:1').error).toMatch(/^line 1: expected host:slots/);
    expect(parseDiscovery('$(reboot):1').error).toMatch(/^line 1: bad host name/);
    expect(parseDiscovery('\n# none\n').error).toBe('printed no hosts');
  });
});
