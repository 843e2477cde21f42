/**
 * The peers `ringbench compare` measures in the same run: Gloo (Debian's python3-torch) and Open
 * MPI over TCP and over shared memory, each running bench/peers/* with ringbench's method and
 * test data. A peer that is not installed is reported with the command that installs it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LINE_TAG, type WorkerConfig } from './config.js';
import type { RawRow } from './table.js';

export const PEERS = ['gloo', 'mpi-tcp', 'mpi-sm'] as const;
export type Peer = (typeof PEERS)[number];

export const PEER_DIR = fileURLToPath(new URL('../peers/', import.meta.url));
/** Debian's python, not whatever python3 comes first on PATH (pyenv, conda). */
export const PYTHON = process.env.RINGBENCH_PYTHON ?? '/usr/bin/python3';
export const MPIRUN = process.env.RINGBENCH_MPIRUN ?? 'mpirun';
const MPICC = process.env.RINGBENCH_MPICC ?? 'mpicc';

export type PeerStatus = { ok: true; version: string } | { ok: false; why: string; install: string };

const statusCache = new Map<string, PeerStatus>();

/** Whether a peer can run here; when not, why and the command that installs it. */
export function peerStatus(peer: Peer): PeerStatus {
  const key = peer === 'gloo' ? 'gloo' : 'mpi';
  let s = statusCache.get(key);
  if (!s) {
    s = key === 'gloo' ? glooStatus() : mpiStatus();
    statusCache.set(key, s);
  }
  return s;
}

function glooStatus(): PeerStatus {
  const r = spawnSync(
    PYTHON,
    ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (r.status === 0) return { ok: true, version: `torch ${r.stdout.trim()} (Gloo)` };
  const why = r.error
    ? `${PYTHON} not found`
    : `${PYTHON} cannot import torch.distributed with Gloo (${(r.stderr || '').trim().split('\n').at(-1)})`;
  return { ok: false, why, install: 'apt-get install -y python3-torch' };
}

function mpiStatus(): PeerStatus {
  const run = spawnSync(MPIRUN, ['--version'], { encoding: 'utf8' });
  const cc = spawnSync(MPICC, ['--version'], { encoding: 'utf8' });
  if (run.status !== 0 || cc.status !== 0)
    return {
      ok: false,
      why: `${run.status !== 0 ? MPIRUN : MPICC} not found`,
      install: 'apt-get install -y openmpi-bin libopenmpi-dev',
    };
  const version = /Open MPI\)?\s*([\d.]+)/i.exec(run.stdout)?.[1];
  if (!version)
    return {
      ok: false,
      why: `mpirun is not Open MPI (${run.stdout.split('\n')[0]})`,
      install: 'apt-get install -y openmpi-bin libopenmpi-dev',
    };
  return { ok: true, version: `Open MPI ${version}` };
}

/** Compiles the MPI peer once per source version into a cache folder. */
export function mpiBinary(): string {
  const src = join(PEER_DIR, 'mpi_bench.c');
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 12);
  const dir = join(process.env.XDG_CACHE_HOME ?? tmpdir(), `ringbench-${process.getuid?.() ?? 'u'}`);
  const bin = join(dir, `mpi_bench-${hash}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  const r = spawnSync(MPICC, ['-O2', '-o', tmp, src, '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${MPICC} failed to build ${src}:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface PeerRun {
  np: number;
  config: WorkerConfig;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Lines that are not results (the peer's own messages). */
  log?: (line: string) => void;
  onRow?: (row: RawRow) => void;
}

/** Rows a peer cannot run at all, without starting it. */
export function unsupported(peer: Peer, c: WorkerConfig): string | undefined {
  if (peer !== 'gloo' && (c.dtype === 'float16' || c.dtype === 'bfloat16'))
    return `Open MPI has no ${c.dtype} type`;
  return undefined;
}

/** Runs one peer's sweep and returns its rows (times are per iteration, max over ranks). */
export async function runPeer(peer: Peer, o: PeerRun): Promise<RawRow[]> {
  const c = o.config;
  const rows: RawRow[] = [];
  const no = unsupported(peer, c);
  if (no) return c.sizes.map((bytes) => ({ bytes, count: 0, times_us: [], wrong: 0, error: no }));
  // The corruption hook reaches the peers too, so a test can see their #wrong work.
  const env = {
    ...process.env,
    OMP_NUM_THREADS: '1',
    ...(c.corruptRank !== undefined && { RINGBENCH_CORRUPT_RANK: String(c.corruptRank) }),
  };
  let procs: { cmd: string; args: string[] }[];
  if (peer === 'gloo') {
    const port = await freePort();
    const cfg = JSON.stringify({
      collective: c.collective,
      sizes: c.sizes,
      iters: c.iters,
      warmup: c.warmup,
      checks: c.checks,
      dtype: c.dtype,
      op: c.op,
      root: c.root,
    });
    procs = Array.from({ length: o.np }, (_, r) => ({
      cmd: PYTHON,
      args: [
        join(PEER_DIR, 'gloo_bench.py'),
        '--rank',
        String(r),
        '--world',
        String(o.np),
        '--port',
        String(port),
        '--config',
        cfg,
      ],
    }));
  } else {
    let bin: string;
    try {
      bin = mpiBinary();
    } catch (e) {
      return c.sizes.map((bytes) => ({
        bytes,
        count: 0,
        times_us: [],
        wrong: 0,
        error: (e as Error).message.split('\n').slice(0, 3).join(' '),
      }));
    }
    const v = peerStatus(peer);
    const major = v.ok ? Number(/(\d+)/.exec(v.version)?.[1] ?? 4) : 4;
    const btl =
      peer === 'mpi-tcp'
        ? ['--mca', 'btl', 'tcp,self', '--mca', 'btl_tcp_if_include', 'lo']
        : ['--mca', 'btl', `${major >= 5 ? 'sm' : 'vader'},self`];
    const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
    procs = [
      {
        cmd: MPIRUN,
        args: [
          ...root,
          '--oversubscribe',
          '-np',
          String(o.np),
          '--mca',
          'pml',
          'ob1',
          ...btl,
          ...(c.corruptRank !== undefined ? ['-x', 'RINGBENCH_CORRUPT_RANK'] : []),
          bin,
          c.collective,
          c.dtype,
          c.op,
          String(c.root),
          String(c.iters),
          String(c.warmup),
          String(c.checks),
          c.sizes.join(','),
        ],
      },
    ];
  }
  const children = procs.map((p) =>
    spawn(p.cmd, p.args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const kill = () => children.forEach((ch) => ch.pid && ch.exitCode === null && tryKill(-ch.pid));
  const timer = o.timeoutMs ? setTimeout(kill, o.timeoutMs) : undefined;
  o.signal?.addEventListener('abort', kill, { once: true });
  const onExit = () => kill();
  process.once('exit', onExit);
  const messages: string[] = [];
  const codes = await Promise.all(
    children.map(
      (ch, i) =>
        new Promise<number>((resolve) => {
          const lines = (stream: NodeJS.ReadableStream, onLine: (l: string) => void) => {
            let buf = '';
            stream.setEncoding('utf8');
            stream.on('data', (d: string) => {
              const parts = (buf + d).split('\n');
              buf = parts.pop()!;
              parts.forEach(onLine);
            });
            stream.on('end', () => buf && onLine(buf));
          };
          lines(ch.stdout!, (l) => {
            if (i === 0 && l.startsWith(LINE_TAG)) {
              const m = JSON.parse(l.slice(LINE_TAG.length)) as RawRow & { t: string };
              if (m.t === 'row') {
                const { t: _t, ...row } = m;
                rows.push(row);
                o.onRow?.(row);
              }
            } else if (l.trim()) messages.push(l), o.log?.(`[${peer}] ${l}`);
          });
          lines(ch.stderr!, (l) => l.trim() && (messages.push(l), o.log?.(`[${peer}] ${l}`)));
          ch.on('error', (e) => (messages.push(String(e)), resolve(127)));
          ch.on('close', (code, sig) => resolve(code ?? (sig ? 128 : 1)));
        }),
    ),
  );
  clearTimeout(timer);
  process.off('exit', onExit);
  o.signal?.removeEventListener('abort', kill);
  // A peer may exit non-zero after printing every row (Gloo after an unsupported case): keep the rows.
  if (rows.length < c.sizes.length) {
    const why = `${peer} stopped after ${rows.length} of ${c.sizes.length} sizes (exit ${codes.find((x) => x !== 0) ?? 0}): ${messages.slice(-3).join(' | ').slice(0, 600)}`;
    for (const bytes of c.sizes.slice(rows.length))
      rows.push({ bytes, count: 0, times_us: [], wrong: 0, error: why });
  }
  return rows;
}

function tryKill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
