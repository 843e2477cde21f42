#!/usr/bin/env node
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { DTYPE_NAMES, DTYPES, REDUCE_OPS, type DType, type ReduceOp } from 'ringwire';
import { COLLECTIVES, HEADER, average, formatRow, parseSize, sweepSizes, type Collective, type Row } from './metrics.js';
import { PEERS, missing, runPeer, type Peer } from './peers.js';
import { svgPlot, type Series } from './plot.js';
import { runSweep, type SweepOptions } from './sweep.js';

const int = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer >= ${min}`);
  return n;
};
const size = (v: string) => {
  try {
    return parseSize(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

interface SweepFlags {
  np: number; minBytes: number; maxBytes: number; stepFactor: number; iters: number; warmupIters: number;
  datatype: DType; op: ReduceOp; algo: 'auto' | 'ring' | 'tree'; json?: string; plot?: string; staged?: boolean;
}

function sweepOptions(program: Command): Command {
  return program
    .requiredOption('--np <n>', 'number of ranks (-np works too)', int(1))
    .option('-b, --min-bytes <size>', 'smallest size (K/M/G = powers of 1024)', size, 4096)
    .option('-e, --max-bytes <size>', 'largest size', size, 64 * 2 ** 20)
    .option('-f, --step-factor <n>', 'multiply the size by this each step', int(2), 4)
    .option('-n, --iters <n>', 'timed iterations per size', int(1), 20)
    .option('-w, --warmup-iters <n>', 'warm-up iterations per size', int(0), 5)
    .addOption(new Option('-d, --datatype <dtype>', 'element type').choices(DTYPE_NAMES).default('float32'))
    .addOption(new Option('-o, --op <op>', 'reduction').choices([...REDUCE_OPS]).default('sum'))
    .addOption(new Option('--algo <algo>', 'all-reduce / broadcast algorithm').choices(['auto', 'ring', 'tree']).default('auto'))
    .option('--staged', 'ordinary ArrayBuffer arrays (copied through staging) instead of zero-copy shared ones');
}

function validate(collective: Collective, f: SweepFlags): SweepOptions {
  if (f.op === 'mean' && !DTYPES[f.datatype].float) throw new InvalidArgumentError(`-o mean needs a float type, not ${f.datatype}`);
  if (f.minBytes > f.maxBytes) throw new InvalidArgumentError(`-b ${f.minBytes} is above -e ${f.maxBytes}`);
  if (f.plot && !f.plot.endsWith('.svg')) throw new InvalidArgumentError('--plot writes SVG: name the file *.svg (PNG would need a native renderer this project does not ship)');
  return { collective, np: f.np, sizes: sweepSizes(f.minBytes, f.maxBytes, f.stepFactor, collective, f.datatype, f.np), iters: f.iters, warmup: f.warmupIters, dtype: f.datatype, op: f.op, algo: f.algo, staged: f.staged };
}

/** A progress bar on stderr, only when a person is watching. */
function progressBar(): { update: (done: number, total: number) => void; stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar({ stream: process.stderr, clearOnComplete: true, format: 'ringbench [{bar}] {value}/{total} iterations' }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update: (done, total) => (started ? bar.update(done) : ((started = true), bar.start(total, done))),
    stop: () => bar.stop(),
  };
}

async function sweep(collective: Collective, f: SweepFlags): Promise<void> {
  const o = validate(collective, f);
  const bar = progressBar();
  let rows: Row[];
  try {
    rows = await runSweep({ ...o, progress: bar.update });
  } finally {
    bar.stop();
  }
  const out = [`# ringbench ${collective}: ${o.np} ranks, ${o.dtype}, op ${o.op}, algo ${o.algo}, ${o.staged ? 'staged' : 'zero-copy'} arrays, ${o.iters} iterations after ${o.warmup} warm-up`, HEADER,
    ...rows.map((r) => formatRow(r, o.dtype, collective === 'allreduce' || collective === 'reducescatter' ? o.op : 'none')),
    `# Out of bounds values : ${rows.reduce((a, r) => a + r.wrong, 0)} ${rows.some((r) => r.wrong) ? 'FAILED' : 'OK'}`,
    `# Avg bus bandwidth    : ${average(rows).toFixed(3)}`,
    `# Caller event-loop delay max: ${Math.max(0, ...rows.map((r) => r.loop_delay_max_ms)).toFixed(1)} ms; peak extra RSS per rank: ${Math.max(0, ...rows.map((r) => r.rss_extra_MiB)).toFixed(1)} MiB`];
  process.stdout.write(out.join('\n') + '\n');
  const result = { collective, np: o.np, dtype: o.dtype, op: o.op, algo: o.algo, staged: !!o.staged, rows };
  if (f.json) writeFileSync(f.json, JSON.stringify(result, null, 2) + '\n');
  if (f.plot) writeFileSync(f.plot, svgPlot([{ name: `ringwire ${collective} np=${o.np}`, points: rows.map((r) => ({ bytes: r.bytes, busbw: r.busbw_GBps })) }], `ringbench ${collective}, ${o.np} ranks, ${o.dtype}`));
  if (rows.some((r) => r.wrong)) process.exitCode = 1;
}

const program = new Command('ringbench').description('nccl-tests-style bandwidth benchmarks for ringwire (ranks are started locally).').showHelpAfterError();
for (const c of COLLECTIVES) {
  sweepOptions(program.command(c).description(`${c} sweep`))
    .option('--json <file>', 'write the results as JSON')
    .option('--plot <file.svg>', 'plot busbw against size')
    .action((f: SweepFlags) => sweep(c, f));
}

sweepOptions(program.command('compare').description('the same float32 sum all-reduce sweep with ringwire and its peers, interleaved, with ratios'))
  .option('--peers <list>', `comma-separated: ${PEERS.join(',')}`, 'gloo,mpi-tcp,mpi-sm')
  .option('--reps <n>', 'repetitions (the runs are interleaved per repetition)', int(1), 1)
  .option('--json <file>', 'write every series as JSON')
  .action(async (f: SweepFlags & { peers: string; reps: number }) => {
    const o = validate('allreduce', { ...f, datatype: 'float32', op: 'sum' });
    const peers = f.peers.split(',').map((p) => p.trim()) as Peer[];
    for (const p of peers) if (!PEERS.includes(p)) throw new InvalidArgumentError(`unknown peer ${JSON.stringify(p)}: ${PEERS.join(', ')}`);
    const usable = peers.filter((p) => {
      const why = missing(p);
      if (why) process.stdout.write(`# ${p}: skipped. ${why}\n`);
      return !why;
    });
    const series: Record<string, { bytes: number; busbw: number; time_us: number }[]> = { ringwire: [] };
    for (let rep = 0; rep < f.reps; rep++) {
      for (const r of await runSweep(o)) series.ringwire.push({ bytes: r.bytes, busbw: r.busbw_GBps, time_us: r.time_us });
      for (const p of usable) for (const r of runPeer(p, o.np, o.sizes)) (series[p] ??= []).push({ bytes: r.bytes, busbw: r.busbw_GBps, time_us: r.time_us });
    }
    const med = (name: string, bytes: number) => {
      const v = (series[name] ?? []).filter((x) => x.bytes === bytes).map((x) => x.busbw).sort((a, b) => a - b);
      return v.length ? v[v.length >> 1] : NaN;
    };
    const names = ['ringwire', ...usable];
    process.stdout.write(`# all-reduce float32 sum, ${o.np} ranks, busbw GB/s (median of ${f.reps} interleaved repetitions)\n`);
    process.stdout.write(['#        size', ...names.map((n) => n.padStart(10)), ...usable.map((p) => `rw/${p}`.padStart(12))].join(' ') + '\n');
    for (const bytes of o.sizes) {
      const rw = med('ringwire', bytes);
      process.stdout.write([String(bytes).padStart(13), ...names.map((n) => med(n, bytes).toFixed(3).padStart(10)), ...usable.map((p) => (rw / med(p, bytes)).toFixed(2).padStart(12))].join(' ') + '\n');
    }
    if (f.json) writeFileSync(f.json, JSON.stringify({ np: o.np, series }, null, 2) + '\n');
  });

program.command('plot').description('plot busbw against size from one or more --json files')
  .argument('<files...>', 'ringbench JSON files')
  .requiredOption('-o, --output <file.svg>', 'SVG file to write')
  .action((files: string[], f: { output: string }) => {
    if (!f.output.endsWith('.svg')) throw new InvalidArgumentError('plot writes SVG: name the output *.svg');
    const series: Series[] = files.flatMap((file) => {
      const j = JSON.parse(readFileSync(file, 'utf8'));
      if (j.rows) return [{ name: `${j.collective} np=${j.np}${j.staged ? ' staged' : ''}`, points: j.rows.map((r: Row) => ({ bytes: r.bytes, busbw: r.busbw_GBps })) }];
      return Object.entries(j.series as Record<string, { bytes: number; busbw: number }[]>).map(([name, pts]) => ({ name: `${name} np=${j.np}`, points: pts }));
    });
    writeFileSync(f.output, svgPlot(series, 'bus bandwidth'));
  });

// mpirun spelling: -np N (commander only knows single-letter short flags).
program.parseAsync(process.argv.map((a) => (a === '-np' ? '--np' : a))).catch((err: Error) => {
  process.stderr.write(`ringbench: ${err.message}\n`);
  process.exitCode = 2;
});
