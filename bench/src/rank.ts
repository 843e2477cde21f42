/**
 * One rank of a ringbench sweep (started by sweep.ts through @ringwire/run's launch(), one
 * process per rank). For every size: warm-up, a barrier, timed back-to-back iterations with the
 * event-loop monitor on, separate untimed correctness runs, then, outside any timing, an
 * all-gather of every rank's per-iteration times, check result and memory figures. Rank 0 prints
 * one `RINGBENCH {json}` line per size; the CLI does the statistics.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type Communicator, init, type RingwireArray } from 'ringwire';
import { LINE_TAG, type WorkerConfig } from './config.js';
import { corrupt, countWrong, expectedOutput, fill } from './pattern.js';
import { DTYPE_BYTES, type RawRow } from './table.js';

const EL_RESOLUTION_MS = 1;
const MiB = 1024 * 1024;

function emit(obj: object): void {
  process.stdout.write(`${LINE_TAG + JSON.stringify(obj)}\n`);
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.RINGBENCH_CONFIG ?? '') as WorkerConfig;
  const comm = await init();
  const { rank, size: n } = comm;
  const elem = DTYPE_BYTES[cfg.dtype];
  const baseRss = process.memoryUsage.rss() / MiB;
  const el = monitorEventLoopDelay({ resolution: EL_RESOLUTION_MS });
  if (rank === 0) emit({ t: 'start', np: n, kernels: comm.kernels });

  for (const bytes of cfg.sizes) {
    const count = bytes / elem;
    const perRank = count / n;
    const step = makeStep(comm, cfg, count);
    let lastReport = performance.now();
    const progress = (phase: string, done: number) => {
      if (rank === 0) emit({ t: 'progress', bytes, phase, done });
      lastReport = performance.now();
    };

    for (let i = 0; i < cfg.warmup; i++) await step.run();
    progress('warmup', cfg.warmup);

    const times = new Float64Array(cfg.iters);
    await comm.barrier();
    el.reset();
    el.enable();
    let reported = 0;
    for (let i = 0; i < cfg.iters; i++) {
      const t0 = performance.now();
      await step.run();
      const t1 = performance.now();
      times[i] = (t1 - t0) * 1e3;
      // Long sizes report progress now and then, between iterations (never inside one).
      if (rank === 0 && t1 - lastReport > 500) progress('timed', i + 1 - reported), (reported = i + 1);
    }
    el.disable();
    // What the timed runs ran (the all-gather of the figures below would overwrite it).
    const ran = comm.lastAlgo;
    // Peak memory of the timed runs, before the checks' own allocations.
    const peakRss = (process.resourceUsage().maxRSS * 1024) / MiB;
    progress('timed', cfg.iters - reported);

    let wrong = 0;
    for (let c = 0; c < cfg.checks; c++) {
      const out = await step.check();
      if (cfg.corruptRank === rank && (cfg.corruptBytes === undefined || cfg.corruptBytes === bytes))
        corrupt(out.arrays[0]);
      out.arrays.forEach(
        (a, s) =>
          (wrong += countWrong(a, cfg.dtype, cfg.op, out.offsets[s], (i) =>
            expectedOutput(cfg.collective, cfg.op, n, cfg.root, i, perRank),
          )),
      );
    }
    progress('check', cfg.checks);

    // The monitor reports the interval between its 1 ms timer's callbacks: the delay is the excess.
    const elDelay = (ns: number) => Math.max(0, ns / 1e3 - EL_RESOLUTION_MS * 1e3);
    const mine = new Float64Array(5 + cfg.iters);
    mine.set([
      wrong,
      el.count ? elDelay(el.max) : 0,
      el.count ? elDelay(el.percentile(99)) : 0,
      peakRss,
      baseRss,
    ]);
    mine.set(times, 5);
    // Outside the timing: every rank's figures to everyone.
    const all = await comm.allgather(mine);
    if (rank === 0) {
      const row: RawRow = {
        bytes,
        count,
        times_us: Array.from(times, (_, i) => Math.max(...all.map((a) => a[5 + i]))),
        wrong: all.reduce((s, a) => s + a[0], 0),
        evloop_max_us: all.map((a) => a[1]),
        evloop_p99_us: all.map((a) => a[2]),
        rss_peak_MiB: all.map((a) => a[3]),
        rss_base_MiB: all.map((a) => a[4]),
        ...(ran && { algo: ran }),
      };
      emit({ t: 'row', ...row });
    }
    step.release();
    // Let this size's buffers go before the next, larger one (the ranks run with --expose-gc).
    (globalThis as { gc?: () => void }).gc?.();
  }
  await comm.close();
}

interface Step {
  run(): Promise<unknown>;
  /** Fills the inputs with the test pattern, runs once, returns the outputs with their global element offsets. */
  check(): Promise<{ arrays: RingwireArray[]; offsets: number[] }>;
  release(): void;
}

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
};

function makeStep(comm: Communicator, cfg: WorkerConfig, count: number): Step {
  const { rank, size: n } = comm;
  const { dtype, op, algo, root } = cfg;
  const alloc = (len: number): RingwireArray =>
    cfg.staged ? new ARRAYS[dtype](len) : comm.allocate(dtype, len);
  const perRank = count / n;
  let x: RingwireArray | undefined = alloc(cfg.collective === 'allgather' ? perRank : count);
  const release = () => (x = undefined);
  switch (cfg.collective) {
    case 'allreduce':
      return {
        run: () => comm.allreduce(x!, { op, dtype, algo }),
        check: async () => (
          fill(x!, dtype, op, rank, n, 0),
          await comm.allreduce(x!, { op, dtype, algo }),
          { arrays: [x!], offsets: [0] }
        ),
        release,
      };
    case 'broadcast':
      return {
        run: () => comm.broadcast(x!, root, { dtype, algo }),
        check: async () => {
          if (rank === root) fill(x!, dtype, 'sum', rank, n, 0);
          else x!.fill(0);
          await comm.broadcast(x!, root, { dtype, algo });
          return { arrays: [x!], offsets: [0] };
        },
        release,
      };
    case 'allgather': {
      // Zero-copy mode gathers into one preallocated output, as nccl-tests does; staged mode
      // measures the default, a new result buffer per call.
      let out = cfg.staged ? undefined : alloc(count);
      return {
        run: () => comm.allgather(x!, { dtype, out }),
        check: async () => {
          fill(x!, dtype, 'sum', rank, n, rank * perRank);
          const parts = await comm.allgather(x!, { dtype, out });
          return { arrays: parts, offsets: parts.map((_, r) => r * perRank) };
        },
        release: () => (release(), (out = undefined)),
      };
    }
    case 'reducescatter':
      return {
        run: () => comm.reduceScatter(x!, { op, dtype, algo }),
        check: async () => {
          fill(x!, dtype, op, rank, n, 0);
          const mine = await comm.reduceScatter(x!, { op, dtype, algo });
          return { arrays: [mine], offsets: [rank * perRank] };
        },
        release,
      };
  }
}

main().catch((err: unknown) => {
  const e = err as { code?: string; message?: string; stack?: string };
  process.stderr.write(
    `ringbench rank failed: ${e.code ? `${e.code}: ` : ''}${e.stack ?? e.message ?? String(err)}\n`,
  );
  process.exit(1);
});
