#!/usr/bin/env node
/**
 * ringbench: nccl-tests-style sweeps of ringwire's collectives on N local ranks, side by side
 * with Gloo and Open MPI (`compare`), JSON output and plots. See `ringbench --help`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { ALGOS, type Algo } from '@ringwire/common';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { WorkerConfig } from './config.js';
import { PEERS, type Peer, peerStatus, runPeer } from './peers.js';
import type { Series } from './plot.js';
import { runSweep, SweepError } from './sweep.js';
import {
  avgBusbw,
  type BenchDType,
  type BenchOp,
  COLLECTIVES,
  type Collective,
  DTYPE_BYTES,
  FLOAT_DTYPES,
  humanSize,
  num,
  OPS,
  parseSize,
  type RawRow,
  type Result,
  reduces,
  summarize,
  sweepSizes,
  tableFooter,
  tableHeader,
  tableRow,
  UsageError,
} from './table.js';

interface Flags {
  np: number;
  minbytes: number;
  maxbytes: number;
  stepfactor: number;
  iters: number;
  warmup_iters: number;
  check: number;
  datatype: BenchDType;
  op: BenchOp;
  algo: Algo;
  root: number;
  staged?: boolean;
  json?: string;
  plot?: string;
  timeout?: number;
  progress: boolean;
}

const integer = (min: number) => (v: string) => {
  const n = Number(v);
  if (!/^\s*-?\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < min)
    throw new InvalidArgumentError(`must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
};
const size = (v: string) => {
  try {
    return parseSize(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};
const factor = (v: string) => {
  const f = Number(v);
  if (!(f > 1)) throw new InvalidArgumentError(`must be a number > 1, got ${JSON.stringify(v)}`);
  return f;
};

function sweepOptions(cmd: Command): Command {
  return cmd
    .requiredOption(
      '--np <n>',
      'number of ranks, started locally (mpirun spelling -np works too)',
      integer(1),
    )
    .option('-b, --minbytes <size>', 'smallest size in bytes; K, M, G = powers of 1024', size, 4096)
    .option('-e, --maxbytes <size>', 'largest size', size, 64 * 1024 ** 2)
    .option('-f, --stepfactor <f>', 'multiply the size by f at each step', factor, 2)
    .option('-n, --iters <n>', 'timed iterations per size', integer(1), 20)
    .option('-w, --warmup_iters <n>', 'warm-up iterations per size', integer(0), 5)
    .option('-c, --check <n>', 'untimed correctness runs per size (0: none)', integer(0), 1)
    .addOption(
      new Option('-d, --datatype <type>', 'element type')
        .choices(Object.keys(DTYPE_BYTES))
        .default('float32'),
    )
    .addOption(
      new Option('-o, --op <op>', 'reduction (all-reduce, reduce-scatter)').choices([...OPS]).default('sum'),
    )
    .addOption(
      new Option('--algo <algo>', 'all-reduce / broadcast algorithm').choices([...ALGOS]).default('auto'),
    )
    .option('-r, --root <rank>', 'broadcast root', integer(0), 0)
    .option(
      '--staged',
      'time ordinary ArrayBuffer-backed arrays (copied through staging buffers) instead of comm.allocate() ones',
    )
    .option('--json <file>', 'write the results as JSON')
    .option('--plot <file>', 'plot busbw against size (.svg, or .png)')
    .option('--timeout <s>', 'stop the ranks after this many seconds', integer(1))
    .option('--no-progress', 'no progress bar (it is off anyway when stderr is not a terminal)');
}

/** Checks what commander cannot, and turns flags into the ranks' configuration. */
function configure(collective: Collective, f: Flags): WorkerConfig {
  if (f.minbytes > f.maxbytes)
    throw new UsageError(
      `-b ${f.minbytes} is larger than -e ${f.maxbytes}: the smallest size must not exceed the largest`,
    );
  if (reduces(collective) && f.op === 'mean' && !FLOAT_DTYPES.includes(f.datatype))
    throw new UsageError(`-o mean needs a float type, not ${f.datatype} (use -o sum)`);
  if (f.root >= f.np) throw new UsageError(`-r ${f.root}: the root must be a rank below -np ${f.np}`);
  if (f.plot && !/\.(svg|png)$/i.test(f.plot))
    throw new UsageError(`--plot ${f.plot}: name the file .svg or .png`);
  const unit =
    DTYPE_BYTES[f.datatype] * (collective === 'allgather' || collective === 'reducescatter' ? f.np : 1);
  const env = process.env;
  return {
    collective,
    sizes: sweepSizes(f.minbytes, f.maxbytes, f.stepfactor, unit),
    iters: f.iters,
    warmup: f.warmup_iters,
    checks: f.check,
    dtype: f.datatype,
    op: reduces(collective) ? f.op : 'sum',
    algo: f.algo,
    root: f.root,
    staged: !!f.staged,
    ...(env.RINGBENCH_CORRUPT_RANK !== undefined && { corruptRank: Number(env.RINGBENCH_CORRUPT_RANK) }),
    ...(env.RINGBENCH_CORRUPT_BYTES !== undefined && {
      corruptBytes: parseSize(env.RINGBENCH_CORRUPT_BYTES),
    }),
  };
}

/**
 * A progress bar on stderr while a person watches; nothing when stderr is not a terminal. Lines
 * meant for the same terminal go above the bar (MultiBar.log) so that the two do not overwrite
 * each other; otherwise to their own stream.
 */
function progressBar(enabled: boolean, total: number) {
  const plain = {
    tick: (_n: number, _label: string) => {},
    out: (l: string) => void process.stdout.write(`${l}\n`),
    err: (l: string) => void process.stderr.write(`${l}\n`),
    stop: () => {},
  };
  if (!enabled || !process.stderr.isTTY) return plain;
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: 'ringbench |{bar}| {percentage}% | {label}',
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(total, 0, { label: 'starting' });
  let value = 0;
  let stopped = false;
  return {
    tick: (n: number, label: string) => bar.update((value = Math.min(total, value + n)), { label }),
    out: (l: string) => (process.stdout.isTTY && !stopped ? multi.log(`${l}\n`) : plain.out(l)),
    err: (l: string) => (stopped ? plain.err(l) : multi.log(`${l}\n`)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      multi.update(); // flushes the lines still waiting above the bar
      multi.stop();
    },
  };
}

function resultOf(
  impl: string,
  cfg: WorkerConfig,
  np: number,
  rows: RawRow[],
  extra: Partial<Result> = {},
): Result {
  const summarized = rows.map((r) => summarize(r, cfg.collective, np));
  return {
    collective: cfg.collective,
    np,
    dtype: cfg.dtype,
    op: reduces(cfg.collective) ? cfg.op : 'none',
    algo: impl === 'ringwire' ? cfg.algo : '-',
    impl,
    ...(impl === 'ringwire' && { staged: cfg.staged }),
    ...(cfg.collective === 'broadcast' && { root: cfg.root }),
    iters: cfg.iters,
    warmup: cfg.warmup,
    rows: summarized,
    avg_busbw_GBps: avgBusbw(summarized),
    command: ['ringbench', ...process.argv.slice(2)].join(' '),
    host: { cpus: availableParallelism(), node: process.version, date: new Date().toISOString() },
    ...extra,
  };
}

function printTable(res: Result, rows = res.rows): void {
  process.stdout.write(`${tableHeader(res)}\n`);
  for (const r of rows) process.stdout.write(`${tableRow(r, res.dtype, res.op)}\n`);
  process.stdout.write(`${tableFooter(res)}\n`);
}

function abortOnSignals(): AbortController {
  const ac = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => ac.abort(sig));
  return ac;
}

async function sweepCommand(collective: Collective, f: Flags): Promise<void> {
  const cfg = configure(collective, f);
  const ac = abortOnSignals();
  const perSize = cfg.warmup + cfg.iters + cfg.checks;
  const head = resultOf('ringwire', cfg, f.np, []);
  process.stdout.write(`${tableHeader(head)}\n`);
  const bar = progressBar(f.progress, cfg.sizes.length * perSize);
  let out: Awaited<ReturnType<typeof runSweep>>;
  try {
    out = await runSweep({
      np: f.np,
      config: cfg,
      signal: ac.signal,
      timeoutMs: f.timeout && f.timeout * 1000,
      onProgress: (e) => bar.tick(e.done, `${humanSize(e.bytes)} ${e.phase}`),
      onRow: (raw) => bar.out(tableRow(summarize(raw, collective, f.np), cfg.dtype, head.op)),
      log: (line) => bar.err(line),
    });
  } finally {
    bar.stop();
  }
  const res = resultOf('ringwire', cfg, f.np, out.rows, { kernels: out.kernels } as Partial<Result>);
  process.stdout.write(`${tableFooter(res)}\n`);
  if (f.json) writeFileSync(f.json, `${JSON.stringify(res, null, 1)}\n`);
  if (f.plot) await writePlot(f.plot, seriesOf([res]), plotTitle([res]));
  if (res.rows.some((r) => r.wrong > 0)) process.exitCode = 1;
}

interface CompareFlags extends Flags {
  peers: string;
  reps: number;
  verbose?: boolean;
}

async function compareCommand(collective: string | undefined, f: CompareFlags): Promise<void> {
  const c = (collective ?? 'allreduce') as Collective;
  if (!COLLECTIVES.includes(c)) throw new UsageError(unknownCollective(c));
  const cfg = configure(c, f);
  const peers = f.peers
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of peers)
    if (!PEERS.includes(p as Peer))
      throw new UsageError(`--peers: unknown peer ${JSON.stringify(p)}: choose from ${PEERS.join(', ')}`);
  const missing: { peer: string; why: string; install: string }[] = [];
  const usable = (peers as Peer[]).filter((p) => {
    const s = peerStatus(p);
    if (!s.ok) missing.push({ peer: p, why: s.why, install: s.install });
    return s.ok;
  });
  for (const m of missing)
    process.stdout.write(`# ${m.peer}: not measured: ${m.why}. Install it with: ${m.install}\n`);
  const impls = ['ringwire', ...usable];
  const ac = abortOnSignals();
  const perSize = cfg.warmup + cfg.iters + cfg.checks;
  const bar = progressBar(f.progress, f.reps * impls.length * cfg.sizes.length * perSize);
  const log = (line: string) => f.verbose && bar.err(line);
  // Every repetition runs every implementation once, in turn, so slow drifts of this shared
  // machine hit all of them alike; the times of all repetitions are pooled per size.
  const pooled = new Map<string, RawRow[]>(impls.map((i) => [i, []]));
  let kernels: string | undefined;
  try {
    for (let rep = 0; rep < f.reps; rep++) {
      for (const impl of impls) {
        const label = `${impl}${f.reps > 1 ? ` rep ${rep + 1}/${f.reps}` : ''}`;
        bar.tick(0, label);
        let rows: RawRow[];
        if (impl === 'ringwire') {
          const out = await runSweep({
            np: f.np,
            config: cfg,
            signal: ac.signal,
            timeoutMs: f.timeout && f.timeout * 1000,
            onProgress: (e) => bar.tick(e.done, `${label} ${humanSize(e.bytes)} ${e.phase}`),
            log,
          });
          rows = out.rows;
          kernels = out.kernels;
        } else {
          rows = await runPeer(impl as Peer, {
            np: f.np,
            config: cfg,
            signal: ac.signal,
            timeoutMs: f.timeout && f.timeout * 1000,
            log,
            onRow: (r) => bar.tick(perSize, `${label} ${humanSize(r.bytes)}`),
          });
        }
        if (ac.signal.aborted) throw new SweepError(`stopped by ${String(ac.signal.reason)}`, 130);
        pooled.get(impl)!.push(...rows);
      }
    }
  } finally {
    bar.stop();
  }
  const results = impls.map((impl) =>
    resultOf(
      impl,
      cfg,
      f.np,
      poolRows(pooled.get(impl)!, cfg.sizes),
      impl === 'ringwire' ? ({ kernels } as Partial<Result>) : {},
    ),
  );
  for (const r of results) {
    printTable(r);
    process.stdout.write('\n');
  }
  const ratios = printRatios(results, f.reps);
  if (f.json)
    writeFileSync(
      f.json,
      `${JSON.stringify(
        {
          kind: 'compare',
          collective: c,
          np: f.np,
          dtype: cfg.dtype,
          op: results[0].op,
          algo: cfg.algo,
          reps: f.reps,
          missing,
          results,
          ratios,
        },
        null,
        1,
      )}\n`,
    );
  if (f.plot) await writePlot(f.plot, seriesOf(results), plotTitle(results));
  if (results.some((r) => r.rows.some((x) => x.wrong > 0))) process.exitCode = 1;
}

/** The repetitions of one size pooled: all their iterations, summed #wrong, the worst loop delay and memory. */
function poolRows(rows: RawRow[], sizes: number[]): RawRow[] {
  return sizes.map((bytes) => {
    const same = rows.filter((r) => r.bytes === bytes);
    const ok = same.filter((r) => !r.error);
    if (!ok.length)
      return {
        bytes,
        count: same[0]?.count ?? 0,
        times_us: [],
        wrong: 0,
        error: same[0]?.error ?? 'no result',
      };
    const maxOf = (k: 'evloop_max_us' | 'evloop_p99_us' | 'rss_peak_MiB' | 'rss_base_MiB') =>
      ok[0][k] && ok[0][k]!.map((_, i) => Math.max(...ok.map((r) => r[k]?.[i] ?? 0)));
    return {
      bytes,
      count: ok[0].count,
      times_us: ok.flatMap((r) => r.times_us),
      wrong: ok.reduce((s, r) => s + r.wrong, 0),
      evloop_max_us: maxOf('evloop_max_us'),
      evloop_p99_us: maxOf('evloop_p99_us'),
      rss_peak_MiB: maxOf('rss_peak_MiB'),
      rss_base_MiB: maxOf('rss_base_MiB'),
    };
  });
}

function printRatios(results: Result[], reps: number): Record<string, number | string>[] {
  const [rw, ...peers] = results;
  const w = 12;
  const out: Record<string, number | string>[] = [];
  const lines = [
    `# ringwire vs peers: ${rw.collective} ${rw.dtype} ${rw.op}, ${rw.np} ranks, same run, ${reps} interleaved repetition(s) pooled`,
    `# busbw in GB/s (median time); ratio = ringwire busbw / peer busbw, > 1: ringwire is faster`,
    '#' +
      [
        'size'.padStart(w - 1),
        ...results.map((r) => r.impl.padStart(w)),
        ...peers.map((p) => `rw/${p.impl}`.padStart(w)),
      ].join(' '),
  ];
  for (const row of rw.rows) {
    const entry: Record<string, number | string> = { bytes: row.bytes };
    const cells = [String(row.bytes).padStart(w)];
    for (const r of results) {
      const x = r.rows.find((y) => y.bytes === row.bytes);
      cells.push((x && !x.error ? num(x.busbw_GBps) : 'n/a').padStart(w));
    }
    for (const p of peers) {
      const x = p.rows.find((y) => y.bytes === row.bytes);
      const ratio = x && !x.error && !row.error ? row.busbw_GBps / x.busbw_GBps : NaN;
      entry[p.impl] = Number.isFinite(ratio) ? ratio : 'n/a';
      // Two significant digits: next to shared-memory MPI a small-message ratio can be 1e-4.
      cells.push(
        (!Number.isFinite(ratio) ? 'n/a' : ratio >= 0.1 ? ratio.toFixed(2) : ratio.toPrecision(2)).padStart(
          w,
        ),
      );
    }
    out.push(entry);
    lines.push(cells.join(' '));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return out;
}

// ---- plots -------------------------------------------------------------------------------------

type Labelled = Pick<Result, 'impl' | 'collective' | 'np' | 'dtype' | 'op' | 'staged' | 'rows'>;

/** Series names carry only what differs between the series; the rest goes into the title. */
function labelParts(r: Labelled): string[] {
  return [
    r.impl ?? 'ringwire',
    r.collective,
    `np=${r.np}`,
    r.dtype,
    r.op === 'none' ? '' : (r.op ?? ''),
    r.staged ? 'staged' : '',
  ];
}

function seriesOf(results: Labelled[]): Series[] {
  const parts = results.map(labelParts);
  const varies = parts[0].map((_, i) => parts.some((p) => p[i] !== parts[0][i]));
  return results.map((r, k) => ({
    name:
      parts[k].filter((x, i) => x && (varies[i] || (results.length === 1 && i === 0))).join(' ') ||
      r.impl ||
      'ringwire',
    points: r.rows.filter((x) => !x.error).map((x) => ({ bytes: x.bytes, busbw: x.busbw_GBps })),
  }));
}

function plotTitle(results: Labelled[]): string {
  const parts = results.map(labelParts);
  const same = parts[0].filter((x, i) => x && i > 0 && parts.every((p) => p[i] === x));
  return `busbw, ${same.join(' ')}`.replace(/np=(\d+)/, '$1 ranks');
}

async function plotCommand(files: string[], f: { output: string; title?: string }): Promise<void> {
  if (!/\.(svg|png)$/i.test(f.output)) throw new UsageError(`-o ${f.output}: name the file .svg or .png`);
  const results: Labelled[] = files.flatMap((file) => {
    let j: { kind?: string; results?: Labelled[]; rows?: unknown };
    try {
      j = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UsageError(`${file}: not a ringbench JSON file (${(e as Error).message})`);
    }
    if (j.kind === 'compare' && Array.isArray(j.results)) return j.results;
    if (Array.isArray(j.rows)) return [j as Labelled];
    throw new UsageError(`${file}: not a ringbench JSON file (no rows)`);
  });
  await writePlot(f.output, seriesOf(results), f.title ?? plotTitle(results));
}

// ---- the program ---------------------------------------------------------------------------------

/** Vega is large: loaded only when a plot is asked for. */
async function writePlot(file: string, series: Series[], title: string): Promise<void> {
  const plot = await import('./plot.js');
  return plot.writePlot(file, series, title);
}

function unknownCollective(name: string): string {
  return `unknown collective ${JSON.stringify(name)}: choose one of ${COLLECTIVES.join(', ')} (or compare, plot)`;
}

const program = new Command('ringbench')
  .description(
    'nccl-tests-style bandwidth benchmarks for ringwire: starts -np local ranks and prints size, count, type, redop, time, algbw, busbw, #wrong, p99',
  )
  .showHelpAfterError('(ringbench --help for usage)');
program.on('command:*', (operands: string[]) =>
  program.error(`error: ${unknownCollective(operands[0])}`, { exitCode: 2 }),
);

const examples =
  '\nExamples:\n  ringbench allreduce -np 4 -b 4K -e 256M -f 4\n  ringbench compare allreduce -np 2 -b 4K -e 64M -f 16 --peers gloo,mpi-tcp,mpi-sm --json cmp.json --plot cmp.svg\n  ringbench plot a.json b.json -o out.svg';
for (const c of COLLECTIVES) {
  sweepOptions(program.command(c).description(`${c} sweep on -np local ranks`))
    .addHelpText('after', examples)
    .action((f: Flags) => sweepCommand(c, f));
}
sweepOptions(
  program
    .command('compare')
    .argument('[collective]', `${COLLECTIVES.join(' | ')}`, 'allreduce')
    .description(
      'the same sweep with ringwire and its peers (Gloo, Open MPI over TCP and shared memory), interleaved in one run, with ringwire/peer ratios',
    ),
)
  .option('--peers <list>', `comma-separated, from ${PEERS.join(',')}`, PEERS.join(','))
  .option('--reps <n>', 'repetitions; each runs every implementation in turn', integer(1), 1)
  .option('--verbose', "show the peers' and ranks' own messages")
  .action((collective: string | undefined, f: CompareFlags) => compareCommand(collective, f));
program
  .command('plot')
  .description('plot busbw against size from ringbench --json files (single sweeps or compare runs)')
  .argument('<files...>', 'ringbench JSON files')
  .requiredOption('-o, --output <file>', 'the plot: .svg or .png')
  .option('--title <text>', 'plot title')
  .action((files: string[], f: { output: string; title?: string }) => plotCommand(files, f));

/** mpirun spells it -np; commander would read that as -n p. */
const argv = process.argv.map((a) =>
  a === '-np' ? '--np' : a.startsWith('-np=') ? `--np=${a.slice(4)}` : a,
);
program.parseAsync(argv).catch((err: unknown) => {
  const e = err as Error;
  if (e instanceof UsageError || e.name === 'PlotError') {
    process.stderr.write(`ringbench: error: ${e.message}\n`);
    process.exitCode = 2;
  } else if (e instanceof SweepError) {
    process.stderr.write(`ringbench: ${e.message}\n`);
    process.exitCode = e.code || 1;
  } else {
    process.stderr.write(`ringbench: ${e.stack ?? e}\n`);
    process.exitCode = 1;
  }
});
