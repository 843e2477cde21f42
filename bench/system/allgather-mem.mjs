// All-gather time and the caller's peak RSS over many calls on NP local ranks; rank 0 prints one
// line: median time, busbw, peak extra RSS.
//   node bench/system/allgather-mem.mjs [NP] [--bytes B] [--iters 20] [--out]
// --bytes per rank (default 64 MiB); --out gathers into one reused comm.allocate() array instead
// of a new buffer per call (environment: BYTES, ITERS, OUT=1).
import { init } from 'ringwire';
import { benchArgs } from '../lib/args.mjs';
import { NP_OPTION, runAsRanks } from '../lib/ranks.mjs';
import { quantile } from '../lib/stats.mjs';

const o = benchArgs('node bench/system/allgather-mem.mjs [NP] [options]', {
  np: NP_OPTION,
  bytes: { type: 'number', env: 'BYTES', default: 64 << 20, help: 'bytes per rank' },
  iters: { type: 'number', env: 'ITERS', default: 20, help: 'all-gathers' },
  out: { type: 'boolean', env: 'OUT', help: 'gather into one reused comm.allocate() output' },
});
await runAsRanks(import.meta.url, o.np);

const comm = await init();
const bytes = o.bytes;
const x = comm.allocate('float32', bytes / 4).fill(comm.rank + 1);
const out = o.out ? comm.allocate('float32', (bytes / 4) * comm.size) : undefined;
const base = process.memoryUsage().rss;
let peak = base;
const ts = [];
for (let i = 0; i < o.iters; i++) {
  const t0 = process.hrtime.bigint();
  const parts = await comm.allgather(x, { out });
  ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
  for (const [r, p] of parts.entries())
    if (p[p.length - 1] !== r + 1) throw new Error(`rank ${r}'s part is wrong`);
  peak = Math.max(peak, process.memoryUsage().rss);
}
const med = quantile(ts, 0.5);
const busbw = (((bytes * comm.size) / med / 1e3) * (comm.size - 1)) / comm.size;
if (comm.rank === 0)
  console.log(
    `allgather ${bytes} B/rank x ${comm.size}: median ${(med / 1e3).toFixed(1)} ms, busbw ${busbw.toFixed(2)} GB/s, peak extra RSS ${((peak - base) / 2 ** 20).toFixed(0)} MiB (output ${((bytes * comm.size) / 2 ** 20).toFixed(0)} MiB per call${out ? ', reused' : ''})`,
  );
await comm.close();
