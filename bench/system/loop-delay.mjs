// During large all-reduces on NP local ranks: the caller's event-loop delay (max and p99, ms) and
// the extra resident memory beyond the array itself, for zero-copy (SharedArrayBuffer) arrays
// and for ordinary arrays (staged through shared buffers). One JSON line per rank and mode.
//   node bench/system/loop-delay.mjs [NP] [--mib 256] [--calls 3]
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { init } from 'ringwire';
import { benchArgs } from '../lib/args.mjs';
import { NP_OPTION, runAsRanks } from '../lib/ranks.mjs';

const o = benchArgs('node bench/system/loop-delay.mjs [NP] [options]', {
  np: NP_OPTION,
  mib: { type: 'number', default: 256, help: 'MiB of float32 per all-reduce (at least 1)' },
  calls: { type: 'number', default: 3, help: 'all-reduces per mode' },
});
await runAsRanks(import.meta.url, o.np);

const comm = await init();
const n = (o.mib * 1024 * 1024) / 4;
for (const mode of ['zero-copy', 'staged']) {
  const x = mode === 'zero-copy' ? comm.allocate('float32', n) : new Float32Array(n);
  x.fill(1);
  await comm.barrier();
  const base = process.memoryUsage().rss;
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let maxGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - base)), 5);
  const t0 = performance.now();
  for (let i = 0; i < o.calls; i++) await comm.allreduce(x);
  const ms = (performance.now() - t0) / o.calls;
  clearInterval(ticker);
  clearInterval(sampler);
  h.disable();
  const row = {
    rank: comm.rank,
    mode,
    ms_per_allreduce: +ms.toFixed(1),
    loop_delay_max_ms: +(h.max / 1e6).toFixed(2),
    loop_delay_p99_ms: +(h.percentile(99) / 1e6).toFixed(2),
    timer_gap_max_ms: +maxGap.toFixed(2),
    extra_rss_MiB: +(peak / 2 ** 20).toFixed(1),
    ok: x[12345] === comm.size ** o.calls,
  };
  console.log(JSON.stringify(row));
}
await comm.close();
