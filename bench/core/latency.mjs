// Small-operation latency on NP local ranks: barrier, 4 KiB all-reduce and allreduceSync, each
// `--warmup` untimed then `--iters` timed; rank 0 prints `name p50 X p10 X p90 X` in us.
//   node bench/core/latency.mjs [NP] [--iters 300] [--warmup 50]
import { init } from 'ringwire';
import { benchArgs } from '../lib/args.mjs';
import { NP_OPTION, runAsRanks } from '../lib/ranks.mjs';
import { quantile } from '../lib/stats.mjs';

const o = benchArgs('node bench/core/latency.mjs [NP] [options]', {
  np: NP_OPTION,
  iters: { type: 'number', default: 300, help: 'timed operations of each kind' },
  warmup: { type: 'number', default: 50, help: 'untimed operations of each kind first' },
});
await runAsRanks(import.meta.url, o.np);

const comm = await init();
const x = comm.allocate('float32', 1024).fill(1);
for (const [name, f] of [
  ['barrier', () => comm.barrier()],
  ['ar4k', () => comm.allreduce(x)],
  ['ar4k-sync', () => comm.allreduceSync(x)],
]) {
  for (let i = 0; i < o.warmup; i++) await f();
  const ts = [];
  for (let i = 0; i < o.iters; i++) {
    const t0 = process.hrtime.bigint();
    await f();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const p = (q) => quantile(ts, q).toFixed(1);
  if (comm.rank === 0) console.log(name, 'p50', p(0.5), 'p10', p(0.1), 'p90', p(0.9));
}
await comm.close();
