import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A little cluster on this machine: a "router" namespace holding a bridge, and hosts h0..hN-1,
 * each its own network namespace with one veth into the bridge and an address in 10.231.0.0/24
 * (h0 = .1, h1 = .2, ...). Each host but h0 runs its own sshd; ringrun runs in h0. Nothing is
 * created in the root namespace: veth ends are created directly inside their namespaces.
 */
export interface Cluster {
  ns: string[];
  addr: string[];
  router: string;
  /** `--ssh` value that logs into any host as root with the test's key. */
  ssh: string;
  dir: string;
  /** The sshd listener's pid on each host (undefined on h0). */
  sshd: (number | undefined)[];
}

const SSHD = '/usr/sbin/sshd';
const PORT = 2222;
const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 20_000 });
const inNs = (ns: string, cmd: string[]) => run('ip', ['netns', 'exec', ns, ...cmd]);
const errText = (err: unknown) =>
  ((err as { stderr?: string }).stderr?.trim() || (err as Error).message).split('\n')[0];

/** Why a network-namespace cluster cannot be built here, found by trying; undefined when it can. */
export function clusterUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root)';
  for (const [bin, args] of [
    ['ip', ['-V']],
    ['tc', ['-V']],
    ['ssh', ['-V']],
    ['ssh-keygen', ['-?']],
  ] as const) {
    try {
      execFileSync(bin, args, { stdio: 'ignore' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `${bin} is not installed`;
    }
  }
  if (!existsSync(SSHD)) return `${SSHD} is missing (apt-get install -y openssh-server)`;
  const probe = `rrprobe${process.pid}`;
  try {
    run('ip', ['netns', 'add', probe]);
  } catch (err) {
    return `cannot create a network namespace: ${errText(err)}`;
  }
  try {
    inNs(probe, ['ip', 'link', 'add', 'name', 'pa', 'type', 'veth', 'peer', 'name', 'pb']);
    inNs(probe, ['ip', 'link', 'add', 'name', 'pbr', 'type', 'bridge']);
  } catch (err) {
    return `cannot create veth pairs or a bridge: ${errText(err)}`;
  } finally {
    run('ip', ['netns', 'del', probe]);
  }
  return undefined;
}

/** Why `tc qdisc <qdisc...>` cannot shape a link here (tried on a scratch namespace's loopback). */
export function qdiscUnavailable(qdisc: string[]): string | undefined {
  const probe = `rrqd${process.pid}`;
  try {
    run('ip', ['netns', 'add', probe]);
    inNs(probe, ['ip', 'link', 'set', 'lo', 'up']);
    inNs(probe, ['tc', 'qdisc', 'add', 'dev', 'lo', 'root', ...qdisc]);
    return undefined;
  } catch (err) {
    return `tc qdisc add ... ${qdisc.join(' ')} failed: ${errText(err)}${qdisc[0] === 'netem' ? ' (the kernel lacks sch_netem / CONFIG_NET_SCH_NETEM)' : ''}`;
  } finally {
    try {
      run('ip', ['netns', 'del', probe]);
    } catch {
      // it was never created
    }
  }
}

const sshds: ChildProcess[] = [];
let built: Cluster | undefined;

export async function buildCluster(hosts: number): Promise<Cluster> {
  const tag = `rr${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'ringrun-cluster-'));
  const c: Cluster = { ns: [], addr: [], router: `${tag}r`, ssh: '', dir, sshd: [] };
  built = c;
  process.once('exit', destroyCluster); // even if the runner is interrupted
  run('ip', ['netns', 'add', c.router]);
  inNs(c.router, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(c.router, ['ip', 'link', 'add', 'name', 'br0', 'type', 'bridge']);
  inNs(c.router, ['ip', 'link', 'set', 'br0', 'up']);
  for (let i = 0; i < hosts; i++) {
    const ns = `${tag}h${i}`;
    const addr = `10.231.0.${i + 1}`;
    run('ip', ['netns', 'add', ns]);
    c.ns.push(ns);
    c.addr.push(addr);
    run('ip', [
      'link',
      'add',
      'name',
      'eth0',
      'netns',
      ns,
      'type',
      'veth',
      'peer',
      'name',
      `v${i}`,
      'netns',
      c.router,
    ]);
    inNs(c.router, ['ip', 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
    inNs(ns, ['ip', 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  writeFileSync(join(dir, 'authorized_keys'), run('cat', [join(dir, 'client_key.pub')]));
  mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
  for (let i = 1; i < hosts; i++) {
    const conf = join(dir, `sshd${i}.conf`);
    writeFileSync(
      conf,
      `${[
        `ListenAddress ${c.addr[i]}:${PORT}`,
        `HostKey ${join(dir, 'host_key')}`,
        'PermitRootLogin yes',
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        `PidFile ${join(dir, `sshd${i}.pid`)}`,
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'MaxStartups 100',
        'MaxSessions 100',
        'LogLevel ERROR',
      ].join('\n')}\n`,
    );
    const d = spawn('ip', ['netns', 'exec', c.ns[i], SSHD, '-D', '-e', '-f', conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    d.stderr!.on('data', (b: Buffer) => process.stderr.write(`[sshd h${i}] ${b}`));
    sshds.push(d);
    c.sshd[i] = d.pid; // ip netns exec execs sshd: same pid
  }
  c.ssh = `ssh -i ${join(dir, 'client_key')} -p ${PORT} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5`;
  // Wait until every sshd answers.
  for (let i = 1; i < hosts; i++) {
    for (let tries = 0; ; tries++) {
      try {
        inNs(c.ns[0], [...c.ssh.split(' '), '-o', 'BatchMode=yes', c.addr[i], 'true']);
        break;
      } catch (err) {
        if (tries > 50) throw new Error(`sshd on ${c.addr[i]} never answered: ${errText(err)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  return c;
}

/** Applies (or with no args removes) a root qdisc on both ends of every host's link. */
export function shape(c: Cluster, qdisc?: string[]): void {
  c.ns.forEach((ns, i) => {
    for (const [where, dev] of [
      [ns, 'eth0'],
      [c.router, `v${i}`],
    ]) {
      if (qdisc) inNs(where, ['tc', 'qdisc', 'replace', 'dev', dev, 'root', ...qdisc]);
      else inNs(where, ['tc', 'qdisc', 'del', 'dev', dev, 'root']);
    }
  });
}

/** Pids of every process running inside a namespace. */
export function pidsIn(ns: string): number[] {
  return run('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
}

/** Kills everything inside the namespaces, deletes them and the temp dir. Safe to call twice. */
export function destroyCluster(): void {
  const c = built;
  built = undefined;
  for (const d of sshds.splice(0)) d.kill('SIGKILL');
  if (!c) return;
  for (const ns of [...c.ns, c.router]) {
    try {
      for (const pid of pidsIn(ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      run('ip', ['netns', 'del', ns]);
    } catch {
      // never created
    }
  }
  rmSync(c.dir, { recursive: true, force: true });
}
