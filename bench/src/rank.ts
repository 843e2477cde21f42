// One rank of a ringbench sweep, started by the CLI through @ringwire/run's launch().
// Prints JSON lines on rank 0: {"event":"row",...} per size and {"event":"progress"} ticks.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DTYPES, init, loadKernels, type DType, type ReduceOp, type RingwireArray } from 'ringwire';
import { busbwFactor, quantile, type Collective, type Row } from './metrics.js';

interface Config {
  collective: Collective;
  sizes: number[];
  iters: number;
  warmup: number;
  dtype: DType;
  op: ReduceOp;
  algo: 'auto' | 'ring' | 'tree';
  staged: boolean;
}

const cfg = JSON.parse(process.env.RINGBENCH_CONFIG ?? '{}') as Config;
const corruptRank = process.env.RINGBENCH_CORRUPT_RANK === undefined ? -1 : Number(process.env.RINGBENCH_CORRUPT_RANK);
const comm = await init();
const { rank, size: n } = comm;
const k = loadKernels();
const half = cfg.dtype === 'float16' || cfg.dtype === 'bfloat16';
const emit = (o: object) => rank === 0 && process.stdout.write(JSON.stringify(o) + '\n');

/** Rank r's element i: small integers, exact in every dtype for every reduction here. */
const value = (r: number, i: number) => (cfg.op === 'prod' ? ((i + r) % 3 === 0 ? 2 : 1) : (r + 1) * ((i % 7) + 1));
function expected(i: number): number {
  let acc = cfg.op === 'prod' ? 1 : cfg.op === 'min' ? Infinity : cfg.op === 'max' ? -Infinity : 0;
  for (let r = 0; r < n; r++) {
    const v = value(r, i);
    acc = cfg.op === 'prod' ? acc * v : cfg.op === 'min' ? Math.min(acc, v) : cfg.op === 'max' ? Math.max(acc, v) : acc + v;
  }
  return cfg.op === 'mean' ? acc / n : acc;
}

function alloc(count: number): RingwireArray {
  if (!cfg.staged) return comm.allocate(cfg.dtype, count);
  return new DTYPES[cfg.dtype].array(count);
}

function fill(a: RingwireArray, valueAt: (i: number) => number): void {
  if (!half) {
    for (let i = 0; i < a.length; i++) a[i] = valueAt(i);
    return;
  }
  const f = new Float32Array(a.length);
  for (let i = 0; i < f.length; i++) f[i] = valueAt(i);
  const src = new Uint8Array(f.buffer);
  const dst = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  (cfg.dtype === 'float16' ? k.f32ToF16 : k.f32ToBf16)(src, dst);
}

function read(a: RingwireArray): Float64Array | RingwireArray {
  if (!half) return a;
  const f = new Float32Array(a.length);
  (cfg.dtype === 'float16' ? k.f16ToF32 : k.bf16ToF32)(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(f.buffer));
  return new Float64Array(f);
}

function countWrong(a: RingwireArray, want: (i: number) => number): number {
  const got = read(a);
  const tol = cfg.dtype === 'float16' ? 2 ** -10 : cfg.dtype === 'bfloat16' ? 2 ** -7 : cfg.dtype === 'float32' ? 2 ** -22 : 0;
  let wrong = 0;
  for (let i = 0; i < got.length; i++) if (Math.abs(got[i] - want(i)) > Math.abs(want(i)) * tol) wrong++;
  return wrong;
}

/** The collective once over `bytes`; `check` fills inputs and counts wrong outputs on this rank. */
async function once(bytes: number, bufs: { x: RingwireArray }, check: boolean): Promise<number> {
  const elem = DTYPES[cfg.dtype].bytes;
  const count = bytes / elem;
  const seg = count / n;
  const opts = { op: cfg.op, dtype: cfg.dtype, algo: cfg.algo };
  switch (cfg.collective) {
    case 'allreduce': {
      if (check) fill(bufs.x, (i) => value(rank, i));
      await comm.allreduce(bufs.x, opts);
      if (check && rank === corruptRank) bufs.x[0] = (bufs.x[0] + 1) % 128;
      return check ? countWrong(bufs.x, expected) : 0;
    }
    case 'broadcast': {
      if (check) fill(bufs.x, (i) => value(rank, i));
      await comm.broadcast(bufs.x, 0, { dtype: cfg.dtype, algo: cfg.algo });
      if (check && rank === corruptRank) bufs.x[0] = (bufs.x[0] + 1) % 128;
      return check ? countWrong(bufs.x, (i) => value(0, i)) : 0;
    }
    case 'allgather': {
      if (check) fill(bufs.x, (i) => value(rank, i));
      const all = await comm.allgather(bufs.x, { dtype: cfg.dtype });
      if (check && rank === corruptRank) all[0][0] = (all[0][0] + 1) % 128;
      return check ? all.reduce((w, a, r) => w + countWrong(a, (i) => value(r, i)), 0) : 0;
    }
    case 'reducescatter': {
      if (check) fill(bufs.x, (i) => value(rank, i));
      const mine = await comm.reduceScatter(bufs.x, opts);
      if (check && rank === corruptRank) mine[0] = (mine[0] + 1) % 128;
      return check ? countWrong(mine, (i) => expected(rank * seg + i)) : 0;
    }
  }
}

const baseRss = process.memoryUsage().rss;
let done = 0;
const total = cfg.sizes.length * (cfg.iters + cfg.warmup + 1);
for (const bytes of cfg.sizes) {
  const elem = DTYPES[cfg.dtype].bytes;
  // allgather's size is the gathered total: each rank contributes a 1/n share.
  const inputCount = (cfg.collective === 'allgather' ? bytes / n : bytes) / elem;
  const bufs = { x: alloc(inputCount) };
  // Correctness in a separate, untimed run (nccl-tests' method), summed over ranks.
  const wrong = new Int32Array([await once(bytes, bufs, true)]);
  await comm.allreduce(wrong, { op: 'sum' });
  let peakRss = 0;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss - baseRss));
  for (let i = 0; i < cfg.warmup; i++) await once(bytes, bufs, false);
  done += cfg.warmup + 1;
  emit({ event: 'progress', done, total });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const sampler = setInterval(sample, 20);
  const times = new Float64Array(cfg.iters);
  for (let i = 0; i < cfg.iters; i++) {
    const t0 = performance.now();
    await once(bytes, bufs, false);
    times[i] = (performance.now() - t0) * 1000;
  }
  clearInterval(sampler);
  sample();
  loop.disable();
  done += cfg.iters;
  // An iteration takes as long as its slowest rank.
  await comm.allreduce(times, { op: 'max' });
  const rss = new Float64Array([peakRss]);
  await comm.allreduce(rss, { op: 'max' });
  const loopMax = new Float64Array([loop.max / 1e6]);
  await comm.allreduce(loopMax, { op: 'max' });
  const sorted = Array.from(times).sort((a, b) => a - b);
  const time = quantile(sorted, 0.5);
  const algbw = bytes / time / 1e3;
  const row: Row = {
    bytes, count: bytes / elem, time_us: time, p99_us: quantile(sorted, 0.99), algbw_GBps: algbw,
    busbw_GBps: algbw * busbwFactor(cfg.collective, n), wrong: wrong[0], loop_delay_max_ms: loopMax[0], rss_extra_MiB: rss[0] / 2 ** 20,
  };
  emit({ event: 'row', ...row });
  emit({ event: 'progress', done, total });
}
await comm.close();
