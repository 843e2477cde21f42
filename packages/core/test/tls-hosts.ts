import { execFileSync } from 'node:child_process';

/**
 * Two "hosts" on this machine for the TLS tests and benchmark: network namespaces rwtls<pid>a
 * and rwtls<pid>b joined by one veth pair (eth0 in each), 10.77.16.1 and 10.77.16.2/24. Names
 * and subnet are this file's own (packages/run/test/netns.ts builds other clusters at the same time).
 */
export interface TwoHosts {
  ns: [string, string];
  addr: [string, string];
}

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 20_000 });
const inNs = (ns: string, cmd: string[]) => run('ip', ['netns', 'exec', ns, ...cmd]);
const has = (bin: string, args: string[]) => {
  try {
    execFileSync(bin, args, { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
};

/** Why two hosts and a capture cannot be made here; undefined when they can. */
export function twoHostsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const [bin, args] of [
    ['ip', ['-V']],
    ['tcpdump', ['--version']],
    ['openssl', ['version']],
  ] as const)
    if (!has(bin, [...args])) return `${bin} is not installed (.ci/run installs it)`;
  return undefined;
}

let built: TwoHosts | undefined;

/** Creates the two namespaces and their link; destroyTwoHosts() removes them (also at exit). */
export function buildTwoHosts(): TwoHosts {
  const tag = `rwtls${process.pid}`;
  const h: TwoHosts = { ns: [`${tag}a`, `${tag}b`], addr: ['10.77.16.1', '10.77.16.2'] };
  built = h;
  process.once('exit', destroyTwoHosts);
  for (const ns of h.ns) run('ip', ['netns', 'add', ns]);
  run('ip', [
    'link',
    'add',
    'eth0',
    'netns',
    h.ns[0],
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    h.ns[1],
  ]);
  h.ns.forEach((ns, i) => {
    inNs(ns, ['ip', 'addr', 'add', `${h.addr[i]}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  });
  return h;
}

/** Kills what runs in the namespaces and deletes them. Safe to call twice. */
export function destroyTwoHosts(): void {
  const h = built;
  built = undefined;
  if (!h) return;
  for (const ns of h.ns) {
    try {
      for (const pid of run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean))
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      run('ip', ['netns', 'del', ns]);
    } catch {
      // never created
    }
  }
}
