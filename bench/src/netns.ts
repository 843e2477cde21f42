/**
 * Hosts on this machine for the multi-host benchmark: a "router" network namespace holding a
 * bridge, and hosts, each a namespace with one veth (eth0) into the bridge and its own address
 * (10.247.<pid % 250>.<host + 1>/24). Links are shaped with `tc ... tbf` on both ends (this
 * kernel has no netem or htb). Namespace names start with rwmh<pid>, so concurrent runs and other
 * tools' namespaces never collide. Linux and root only. Nothing is created in the root namespace.
 */
import { execFileSync } from 'node:child_process';

const ip = (args: string[]) =>
  execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 20_000 });

/** Runs a command inside a namespace and returns its stdout. */
export const inNs = (ns: string, cmd: string[]) => ip(['netns', 'exec', ns, ...cmd]);

export class Hosts {
  readonly ns: string[] = [];
  readonly addr: string[] = [];
  readonly router: string;
  private closed = false;
  private readonly onExit = () => this.close();

  /** Builds `count` hosts (throws, after removing what it made, when it cannot). */
  constructor(count: number, tag = `rwmh${process.pid}`) {
    this.router = `${tag}r`;
    process.once('exit', this.onExit);
    try {
      ip(['netns', 'add', this.router]);
      inNs(this.router, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
      inNs(this.router, ['ip', 'link', 'set', 'br0', 'up']);
      for (let h = 0; h < count; h++) {
        const ns = `${tag}h${h}`;
        const addr = `10.247.${process.pid % 250}.${h + 1}`;
        ip(['netns', 'add', ns]);
        this.ns.push(ns);
        this.addr.push(addr);
        ip([
          'link',
          'add',
          'eth0',
          'netns',
          ns,
          'type',
          'veth',
          'peer',
          'name',
          `v${h}`,
          'netns',
          this.router,
        ]);
        inNs(this.router, ['ip', 'link', 'set', `v${h}`, 'master', 'br0', 'up']);
        inNs(ns, ['ip', 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
        inNs(ns, ['ip', 'link', 'set', 'eth0', 'up']);
        inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * Limits every host's link to `rate` (tc syntax: 1gbit, 5gbit) in both directions with a token
   * bucket: a burst of 4 ms at that rate (at least 64 KiB, so one GSO segment always fits).
   */
  shape(rate: string): void {
    const bytesPerS = rateBytes(rate);
    const burst = Math.max(64 * 1024, Math.round(bytesPerS * 0.004));
    this.ns.forEach((ns, h) => {
      for (const [where, dev] of [
        [ns, 'eth0'],
        [this.router, `v${h}`],
      ])
        inNs(where, [
          'tc',
          'qdisc',
          'replace',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          rate,
          'burst',
          String(burst),
          'latency',
          '50ms',
        ]);
    });
  }

  /** Bytes host `h` has sent over its link so far. */
  txBytes(h: number): number {
    return Number(inNs(this.ns[h], ['cat', '/sys/class/net/eth0/statistics/tx_bytes']).trim());
  }

  /** Kills whatever still runs in the namespaces and deletes them. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.removeListener('exit', this.onExit);
    for (const ns of [...this.ns, this.router]) {
      try {
        for (const pid of ip(['netns', 'pids', ns]).split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // already gone
          }
        }
        ip(['netns', 'del', ns]);
      } catch {
        // never created
      }
    }
  }
}

/** '1gbit' -> 125000000 bytes/s (tc's units: k, m, g are powers of 1000, bit or bps). */
export function rateBytes(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)(bit|bps)$/i.exec(rate);
  if (!m) throw new Error(`bad link rate ${JSON.stringify(rate)}: expected e.g. 1gbit, 500mbit`);
  const scale = { '': 1, k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return (Number(m[1]) * scale) / (m[3].toLowerCase() === 'bit' ? 8 : 1);
}
