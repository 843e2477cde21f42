/**
 * The shaped-link benchmark (bench/multihost.sh): hosts built on this machine with network
 * namespaces and veth links limited by `tc ... tbf`, and per layout (hosts x ranks per host),
 * link rate and size, in the same run and interleaved: ringwire's flat ring, its hierarchical
 * all-reduce, the same with TLS on every link (`tls`), Gloo (torch's gloo backend)
 * and Open MPI over TCP, every rank in its host's namespace. Each run is one job of one size
 * (warm-up, timed iterations, a check), measured as ringbench measures; the cross-host bytes each
 * host sent (its veth's tx counter) give the link utilisation against the shaped rate. Prints a
 * table per layout and rate, the ratios, and one summary line per layout, rate and size:
 *   layout=2x2 link=1gbit bytes=67108864 flat=.. hier=.. tls=.. gloo=.. mpi=..   (busbw, GB/s)
 * Linux and root only.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Algo } from '@ringwire/common';
import { issueCert, makeCa } from '@ringwire/run';
import { Command, CommanderError } from 'commander';
import { LINE_TAG, type WorkerConfig } from './config.js';
import { Hosts, rateBytes } from './netns.js';
import { MPIRUN, mpiBinary, PEER_DIR, PYTHON } from './peers.js';
import { num, parseSize, type RawRow, summarize } from './table.js';

const RANK_JS = fileURLToPath(new URL('./rank.js', import.meta.url));
const RENDEZVOUS_BIN = join(
  createRequire(import.meta.url).resolve('@ringwire/rendezvous/package.json'),
  '../bin/ringwire-rendezvous.js',
);

/** The implementations, in the order they run and print. */
export const IMPLS = ['flat', 'hier', 'tls', 'gloo', 'mpi'] as const;
export type Impl = (typeof IMPLS)[number];

/**
 * ringwire's variants: the algorithm, and whether every link is TLS (hierarchical with
 * RINGWIRE_TLS_CERT/KEY/CA set, certificates made per cluster, against a wss rendezvous).
 */
const RINGWIRE: Record<'flat' | 'hier' | 'tls', { algo: Algo; tls?: boolean } | undefined> = {
  flat: { algo: 'ring' },
  hier: { algo: 'hierarchical' },
  tls: { algo: 'hierarchical', tls: true },
};

interface Layout {
  name: string;
  hosts: number;
  perHost: number;
}

/** The collectives the benchmark runs (two-level in ringwire's `hier` variant). */
export const COLLECTIVES = ['allreduce', 'reducescatter', 'allgather'] as const;
export type MultihostCollective = (typeof COLLECTIVES)[number];

export interface MultihostOptions {
  collective: MultihostCollective;
  layouts: Layout[];
  links: string[];
  sizes: number[];
  impls: Impl[];
  iters: number;
  warmup: number;
  rounds: number;
  timeoutMs: number;
  json?: string;
}

/** One measured (or skipped) run. */
export interface Measurement {
  layout: string;
  link: string;
  bytes: number;
  impl: Impl;
  round: number;
  busbw_GBps?: number;
  time_us?: number;
  /** The algorithm ringwire reported it ran. */
  algo?: string;
  /** Cross-host bytes per op of the busiest host, and their rate against the shaped rate. */
  cross_bytes_per_op?: number;
  utilisation?: number;
  error?: string;
}

/** A process started inside a host's namespace. */
interface Proc {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number>;
}

function start(ns: string, argv: string[], env: Record<string, string>): Proc {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv],
    {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) {
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      const parts = (buf + d).split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
    });
  }
  const exited = new Promise<number>((resolve) =>
    child.on('close', (code, sig) => resolve(code ?? (sig ? 128 : 1))),
  );
  return { child, lines, exited };
}

function kill(p: Proc): void {
  try {
    if (p.child.exitCode === null && p.child.pid) process.kill(-p.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Waits for every process (killing them all after `timeoutMs`); returns rank 0's result row. */
async function collect(procs: Proc[], timeoutMs: number): Promise<RawRow> {
  const timer = setTimeout(() => procs.forEach(kill), timeoutMs);
  const codes = await Promise.all(procs.map((p) => p.exited)).finally(() => clearTimeout(timer));
  const row = procs[0].lines
    .filter((l) => l.startsWith(LINE_TAG))
    .map((l) => JSON.parse(l.slice(LINE_TAG.length)) as RawRow & { t: string })
    .find((m) => m.t === 'row');
  if (row && codes.every((c) => c === 0)) {
    const { t: _t, ...raw } = row as RawRow & { t?: string };
    return raw;
  }
  const tail = procs.flatMap((p, i) => p.lines.slice(-4).map((l) => `[${i}] ${l}`)).join(' | ');
  throw new Error(`exit codes ${codes.join(',')}${row ? '' : ', no result row'}: ${tail.slice(0, 600)}`);
}

/** One cluster of namespaces for a layout, with a rendezvous in its first host. */
class Cluster {
  readonly hosts: Hosts;
  private readonly dir = mkdtempSync(join(tmpdir(), 'ringbench-multihost-'));
  private readonly rdv: Proc;
  private readonly port = 29_500;
  /** The TLS variant's rendezvous (wss), its port, and the job's certificates. */
  private readonly tlsRdv: Proc;
  private readonly tlsPort = 29_501;
  private readonly tlsEnv: Record<string, string>;
  private readonly token = `multihost-${process.pid}`;
  private readonly agent: string;
  private jobs = 0;

  private constructor(readonly layout: Layout) {
    this.hosts = new Hosts(layout.hosts);
    writeFileSync(join(this.dir, 'token'), `${this.token}\n`, { mode: 0o600 });
    this.rdv = this.rendezvous(this.port, {});
    const ca = makeCa(this.dir);
    const member = issueCert(this.dir, ca);
    this.tlsEnv = { RINGWIRE_TLS_CERT: member.cert, RINGWIRE_TLS_KEY: member.key, RINGWIRE_TLS_CA: ca.cert };
    this.tlsRdv = this.rendezvous(this.tlsPort, this.tlsEnv);
    // Open MPI starts its daemons through this "remote shell": host address -> its namespace.
    this.agent = join(this.dir, 'netns-rsh');
    const cases = this.hosts.addr.map((a, h) => `  ${a}) ns=${this.hosts.ns[h]} ;;`).join('\n');
    writeFileSync(
      this.agent,
      `#!/bin/sh\nhost=$1; shift\ncase "$host" in\n${cases}\n  *) echo "netns-rsh: unknown host $host" >&2; exit 1 ;;\nesac\nexec ip netns exec "$ns" /bin/sh -c "$*"\n`,
    );
    chmodSync(this.agent, 0o755);
  }

  /** A standalone rendezvous in the first host (wss when `env` holds RINGWIRE_TLS_*). */
  private rendezvous(port: number, env: Record<string, string>): Proc {
    const args = [
      '--host',
      this.hosts.addr[0],
      '--port',
      String(port),
      '--token-file',
      join(this.dir, 'token'),
    ];
    return start(this.hosts.ns[0], [process.execPath, RENDEZVOUS_BIN, ...args], env);
  }

  static async build(layout: Layout): Promise<Cluster> {
    const c = new Cluster(layout);
    for (const rdv of [c.rdv, c.tlsRdv]) {
      for (let i = 0; i < 100 && !rdv.lines.some((l) => /listening on/.test(l)); i++) {
        if (rdv.child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (!rdv.lines.some((l) => /listening on/.test(l))) {
        c.close();
        throw new Error(`the rendezvous did not start: ${rdv.lines.join(' ')}`);
      }
    }
    return c;
  }

  private get np(): number {
    return this.layout.hosts * this.layout.perHost;
  }

  /** Host of rank r: ranks are numbered host by host. */
  private hostOf(r: number): number {
    return Math.floor(r / this.layout.perHost);
  }

  /** Starts one job of `impl` for one size; resolves with rank 0's row. */
  async run(impl: Impl, cfg: WorkerConfig, timeoutMs: number): Promise<RawRow> {
    const n = this.np;
    const { hosts } = this;
    let procs: Proc[];
    if (impl === 'gloo') {
      const port = 29_600 + (this.jobs++ % 300);
      const c = JSON.stringify({ ...cfg, algo: undefined, staged: undefined });
      procs = Array.from({ length: n }, (_, r) =>
        start(
          hosts.ns[this.hostOf(r)],
          [
            PYTHON,
            join(PEER_DIR, 'gloo_bench.py'),
            '--rank',
            String(r),
            '--world',
            String(n),
            '--port',
            String(port),
            '--addr',
            hosts.addr[0],
            '--config',
            c,
          ],
          { GLOO_SOCKET_IFNAME: 'eth0', OMP_NUM_THREADS: '1' },
        ),
      );
    } else if (impl === 'mpi') {
      const hostList = hosts.addr.map((a) => `${a}:${this.layout.perHost}`).join(',');
      procs = [
        start(
          hosts.ns[0],
          [
            MPIRUN,
            '--allow-run-as-root',
            '-np',
            String(n),
            '--host',
            hostList,
            '--map-by',
            'slot',
            '--mca',
            'plm_rsh_agent',
            this.agent,
            '--mca',
            'pml',
            'ob1',
            '--mca',
            'btl',
            'tcp,self',
            '--mca',
            'btl_tcp_if_include',
            'eth0',
            '--mca',
            'oob_tcp_if_include',
            'eth0',
            mpiBinary(),
            cfg.collective,
            cfg.dtype,
            cfg.op,
            String(cfg.root),
            String(cfg.iters),
            String(cfg.warmup),
            String(cfg.checks),
            cfg.sizes.join(','),
          ],
          { OMP_NUM_THREADS: '1' },
        ),
      ];
    } else {
      const variant = RINGWIRE[impl];
      if (!variant) throw new Error(`${impl} is not available yet`);
      const job = `mh-${impl}-${this.jobs++}`;
      procs = Array.from({ length: n }, (_, r) =>
        start(hosts.ns[this.hostOf(r)], [process.execPath, '--expose-gc', RANK_JS], {
          RINGBENCH_CONFIG: JSON.stringify({ ...cfg, algo: variant.algo }),
          // Also for the calls that take no per-call algo (all-gather).
          RINGWIRE_ALGO: variant.algo,
          RINGWIRE_RANK: String(r),
          RINGWIRE_SIZE: String(n),
          RINGWIRE_LOCAL_RANK: String(r % this.layout.perHost),
          RINGWIRE_LOCAL_SIZE: String(this.layout.perHost),
          RINGWIRE_RENDEZVOUS: variant.tls
            ? `wss://${hosts.addr[0]}:${this.tlsPort}`
            : `ws://${hosts.addr[0]}:${this.port}`,
          RINGWIRE_JOB_ID: job,
          RINGWIRE_TOKEN: this.token,
          RINGWIRE_HOST: hosts.addr[this.hostOf(r)],
          ...(variant.tls ? this.tlsEnv : {}),
        }),
      );
    }
    return collect(procs, timeoutMs);
  }

  close(): void {
    kill(this.rdv);
    kill(this.tlsRdv);
    this.hosts.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs the whole benchmark, printing as it goes; returns every measurement. */
export async function runMultihost(
  o: MultihostOptions,
  print: (line: string) => void,
): Promise<Measurement[]> {
  const all: Measurement[] = [];
  const load = () =>
    loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  print(
    `# ringbench multihost: float32 sum ${o.collective}; ${o.warmup} warm-up + ${o.iters} timed iterations + 1 check per job; busbw in GB/s (1e9 B/s)`,
  );
  print(`# load average at start: ${load()} (CPUs shared with others make bandwidth figures unreliable)`);
  for (const layout of o.layouts) {
    const cluster = await Cluster.build(layout);
    try {
      for (const link of o.links) {
        cluster.hosts.shape(link);
        const rate = rateBytes(link);
        print(
          `#\n# layout ${layout.name} (${layout.hosts} hosts x ${layout.perHost} ranks), links shaped to ${link} (tbf) each way`,
        );
        print(
          `# ${'bytes'.padStart(10)} ${'impl'.padStart(5)} ${'algo'.padStart(13)} ${'time(us)'.padStart(11)} ${'busbw'.padStart(8)} ${'cross B/op'.padStart(11)} ${'util'.padStart(6)}`,
        );
        for (let round = 0; round < o.rounds; round++)
          for (const bytes of o.sizes)
            for (const impl of o.impls) {
              const m: Measurement = { layout: layout.name, link, bytes, impl, round };
              all.push(m);
              const cfg: WorkerConfig = {
                collective: o.collective,
                sizes: [bytes],
                iters: o.iters,
                warmup: o.warmup,
                checks: 1,
                dtype: 'float32',
                op: 'sum',
                algo: 'auto',
                root: 0,
                staged: false,
              };
              try {
                if (impl !== 'gloo' && impl !== 'mpi' && !RINGWIRE[impl])
                  throw new Error('not available yet');
                const before = cluster.hosts.ns.map((_, h) => cluster.hosts.txBytes(h));
                const raw = await cluster.run(impl, cfg, o.timeoutMs);
                const sent = cluster.hosts.ns.map((_, h) => cluster.hosts.txBytes(h) - before[h]);
                if (raw.error) throw new Error(raw.error);
                if (raw.wrong) throw new Error(`${raw.wrong} wrong elements`);
                const row = summarize(raw, o.collective, layout.hosts * layout.perHost);
                // Every op of the job moves this size (the barrier and the figures' all-gather are tiny).
                const perOp = Math.max(...sent) / (o.warmup + o.iters + 1);
                Object.assign(m, {
                  busbw_GBps: row.busbw_GBps,
                  time_us: row.time_us,
                  algo: raw.algo,
                  cross_bytes_per_op: perOp,
                  utilisation: perOp / (row.time_us / 1e6) / rate,
                });
                print(
                  `  ${String(bytes).padStart(10)} ${impl.padStart(5)} ${(raw.algo ?? '-').padStart(13)} ${row.time_us.toFixed(0).padStart(11)} ${num(row.busbw_GBps).padStart(8)} ${perOp.toExponential(2).padStart(11)} ${`${(m.utilisation! * 100).toFixed(0)}%`.padStart(6)}`,
                );
              } catch (err) {
                m.error = (err as Error).message;
                print(`  ${String(bytes).padStart(10)} ${impl.padStart(5)} n/a: ${m.error}`);
              }
            }
        for (const bytes of o.sizes) {
          const bw = (impl: Impl) => best(all, layout.name, link, bytes, impl);
          const ratio = (a: Impl, b: Impl) => (bw(a) && bw(b) ? (bw(a)! / bw(b)!).toFixed(2) : 'n/a');
          print(
            `# ${bytes} B ratios: hier/flat ${ratio('hier', 'flat')}, hier/gloo ${ratio('hier', 'gloo')}, hier/mpi ${ratio('hier', 'mpi')}, flat/gloo ${ratio('flat', 'gloo')}, tls/hier ${ratio('tls', 'hier')}`,
          );
        }
      }
    } finally {
      cluster.close();
    }
  }
  print(`# load average at end: ${load()}`);
  for (const layout of o.layouts)
    for (const link of o.links)
      for (const bytes of o.sizes)
        print(
          `${o.collective === 'allreduce' ? '' : `collective=${o.collective} `}layout=${layout.name} link=${link} bytes=${bytes} ${IMPLS.map((impl) => `${impl}=${fmt(best(all, layout.name, link, bytes, impl))}`).join(' ')}`,
        );
  if (o.json)
    writeFileSync(o.json, `${JSON.stringify({ options: o, load: loadavg(), measurements: all }, null, 2)}\n`);
  return all;
}

/** The best busbw over the rounds of one cell, undefined when none ran. */
function best(
  all: Measurement[],
  layout: string,
  link: string,
  bytes: number,
  impl: Impl,
): number | undefined {
  const v = all.filter(
    (m) =>
      m.layout === layout &&
      m.link === link &&
      m.bytes === bytes &&
      m.impl === impl &&
      m.busbw_GBps !== undefined,
  );
  return v.length ? Math.max(...v.map((m) => m.busbw_GBps!)) : undefined;
}

const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(3));

/** `2x2` -> 2 hosts of 2 ranks. */
function parseLayout(s: string): Layout {
  const m = /^(\d+)x(\d+)$/.exec(s.trim());
  if (!m || Number(m[1]) < 2 || Number(m[2]) < 1)
    throw new Error(`bad layout ${JSON.stringify(s)}: expected HOSTSxRANKS, e.g. 2x2`);
  return { name: s.trim(), hosts: Number(m[1]), perHost: Number(m[2]) };
}

/** Parses the command line (see --help). */
export function parseMultihostArgs(argv: string[]): MultihostOptions {
  const p = new Command('multihost.sh')
    .description('ringwire flat and hierarchical collectives, Gloo and Open MPI over shaped netns links')
    .option('--collective <name>', `one of ${COLLECTIVES.join(', ')}`, 'allreduce')
    .option('--layouts <list>', 'HOSTSxRANKS, comma-separated', '2x2,4x1')
    .option('--links <list>', 'tc rates, comma-separated', '1gbit,5gbit')
    .option('--sizes <list>', 'bytes per all-reduce, comma-separated (K, M, G suffixes)', '64M,256M')
    .option('--impls <list>', `comma-separated subset of ${IMPLS.join(',')}`, IMPLS.join(','))
    .option('-n, --iters <n>', 'timed iterations per job', '5')
    .option('-w, --warmup <n>', 'warm-up iterations per job', '1')
    .option('--rounds <n>', 'times to repeat the interleaved sequence (the best round is reported)', '1')
    .option('--timeout <s>', 'seconds one job may take', '600')
    .option('--json <file>', 'write every measurement as JSON')
    .exitOverride();
  p.parse(argv, { from: 'user' });
  const f = p.opts<Record<string, string>>();
  const list = (s: string) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const impls = list(f.impls) as Impl[];
  for (const i of impls)
    if (!IMPLS.includes(i)) throw new Error(`unknown impl ${i}: one of ${IMPLS.join(', ')}`);
  const collective = f.collective as MultihostCollective;
  if (!COLLECTIVES.includes(collective))
    throw new Error(`unknown collective ${collective}: one of ${COLLECTIVES.join(', ')}`);
  return {
    collective,
    layouts: list(f.layouts).map(parseLayout),
    links: list(f.links).map((l) => (rateBytes(l), l)),
    sizes: list(f.sizes).map((s) => {
      const b = parseSize(s);
      return b - (b % 4);
    }),
    impls,
    iters: Number(f.iters),
    warmup: Number(f.warmup),
    rounds: Number(f.rounds),
    timeoutMs: Number(f.timeout) * 1000,
    json: f.json,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.getuid?.() !== 0) {
    process.stderr.write('multihost.sh: network namespaces need root\n');
    process.exit(2);
  }
  execFileSync('ip', ['-V'], { stdio: 'ignore' });
  let opts: MultihostOptions;
  try {
    opts = parseMultihostArgs(process.argv.slice(2));
  } catch (err) {
    // commander has printed the help or the error already
    process.exit(err instanceof CommanderError ? (err.exitCode === 0 ? 0 : 2) : 2);
  }
  const stop = () => process.exit(130); // the 'exit' handlers remove the namespaces
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  runMultihost(opts, (l) => process.stdout.write(`${l}\n`)).catch((err) => {
    process.stderr.write(`multihost.sh: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
