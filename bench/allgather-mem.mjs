// All-gather time and the caller's peak RSS over many calls, ranks spawned by itself.
// Usage: node bench/allgather-mem.mjs NP   Env: BYTES (per rank, default 64 MiB), ITERS (default 20),
// OUT=1 (results into one reused comm.allocate() array instead of a new buffer per call).
import { init } from 'ringwire';
import { launchedRanks } from './local-ranks.mjs';

if (!(await launchedRanks(new URL(import.meta.url).pathname, Number(process.argv[2] ?? 2), 'ag'))) {
  const comm = await init();
  const bytes = Number(process.env.BYTES ?? 64 << 20);
  const x = comm.allocate('float32', bytes / 4).fill(comm.rank + 1);
  const out = process.env.OUT === '1' ? comm.allocate('float32', (bytes / 4) * comm.size) : undefined;
  const base = process.memoryUsage().rss;
  let peak = base;
  const ts = [];
  for (let i = 0; i < Number(process.env.ITERS ?? 20); i++) {
    const t0 = process.hrtime.bigint();
    const parts = await comm.allgather(x, { out });
    ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
    for (const [r, p] of parts.entries())
      if (p[p.length - 1] !== r + 1) throw new Error(`rank ${r}'s part is wrong`);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  ts.sort((a, b) => a - b);
  const med = ts[ts.length >> 1];
  const busbw = (((bytes * comm.size) / med / 1e3) * (comm.size - 1)) / comm.size;
  if (comm.rank === 0)
    console.log(
      `allgather ${bytes} B/rank x ${comm.size}: median ${(med / 1e3).toFixed(1)} ms, busbw ${busbw.toFixed(2)} GB/s, peak extra RSS ${((peak - base) / 2 ** 20).toFixed(0)} MiB (output ${((bytes * comm.size) / 2 ** 20).toFixed(0)} MiB per call${out ? ', reused' : ''})`,
    );
  await comm.close();
}
