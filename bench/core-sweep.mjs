// All-reduce time and bus bandwidth per size, ranks spawned by itself. Usage: node bench/core-sweep.mjs NP
// Env: SIZES=bytes,... CHUNK=bytes CREDITS=n ALGO=auto|ring|tree (zero-copy SharedArrayBuffer arrays).
import { init } from 'ringwire';
import { launchedRanks } from './local-ranks.mjs';

if (!(await launchedRanks(new URL(import.meta.url).pathname, Number(process.argv[2] ?? 2), 'q'))) {
  const comm = await init({
    chunkBytes: process.env.CHUNK ? Number(process.env.CHUNK) : undefined,
    credits: process.env.CREDITS ? Number(process.env.CREDITS) : undefined,
  });
  for (const bytes of (process.env.SIZES ?? '4096,65536,1048576,16777216,67108864,268435456')
    .split(',')
    .map(Number)) {
    const x = comm.allocate('float32', bytes / 4).fill(1);
    // The peers' schedule (../shared/peers): about 4 GiB per size, 5 to 50 timed iterations,
    // up to 5 warm-up ones; an iteration's time is the slowest rank's.
    const iters = Math.max(5, Math.min(50, Math.floor(2 ** 32 / bytes)));
    const algo = process.env.ALGO ?? 'auto';
    for (let i = 0; i < Math.min(5, Math.max(1, iters >> 1)); i++) await comm.allreduce(x, { algo });
    const ts = new Float64Array(iters);
    for (let i = 0; i < iters; i++) {
      const t0 = process.hrtime.bigint();
      await comm.allreduce(x, { algo });
      ts[i] = Number(process.hrtime.bigint() - t0) / 1e3;
    }
    await comm.allreduce(ts, { op: 'max' });
    if (process.env.VERBOSE && comm.rank === 0)
      console.error(bytes, Array.from(ts, (t) => Math.round(t / 1000)).join(' '));
    ts.sort();
    const med = ts[ts.length >> 1];
    const bus = ((bytes / med / 1e3) * 2 * (comm.size - 1)) / comm.size;
    if (comm.rank === 0) console.log(`${bytes}\t${med.toFixed(1)} us\tbusbw ${bus.toFixed(2)} GB/s`);
  }
  await comm.close();
}
