// All-reduce time and bus bandwidth per size on NP local ranks (zero-copy SharedArrayBuffer
// arrays), one line per size from rank 0: `bytes<TAB>time us<TAB>busbw X GB/s`.
//   node bench/core/sweep.mjs [NP] [--sizes 4096,...] [--chunk B] [--credits N] [--algo auto|ring|tree]
// (each flag also as its environment variable: SIZES, CHUNK, CREDITS, ALGO, VERBOSE).
import { init } from 'ringwire';
import { benchArgs } from '../lib/args.mjs';
import { NP_OPTION, runAsRanks } from '../lib/ranks.mjs';
import { quantile } from '../lib/stats.mjs';

const o = benchArgs('node bench/core/sweep.mjs [NP] [options]', {
  np: NP_OPTION,
  sizes: {
    type: 'numbers',
    env: 'SIZES',
    default: [4096, 65536, 1048576, 16777216, 67108864, 268435456],
    help: 'buffer sizes in bytes, comma-separated',
  },
  chunk: { type: 'number', env: 'CHUNK', help: 'chunkBytes (default: the library default)' },
  credits: { type: 'number', env: 'CREDITS', help: 'credits (default: the library default)' },
  algo: { env: 'ALGO', default: 'auto', help: 'auto | ring | tree' },
  verbose: { type: 'boolean', env: 'VERBOSE', help: "every iteration's time (ms) on stderr" },
});
await runAsRanks(import.meta.url, o.np);

const comm = await init({ chunkBytes: o.chunk, credits: o.credits });
for (const bytes of o.sizes) {
  const x = comm.allocate('float32', bytes / 4).fill(1);
  // The peers' schedule (../shared/peers): about 4 GiB per size, 5 to 50 timed iterations,
  // up to 5 warm-up ones; an iteration's time is the slowest rank's.
  const iters = Math.max(5, Math.min(50, Math.floor(2 ** 32 / bytes)));
  for (let i = 0; i < Math.min(5, Math.max(1, iters >> 1)); i++) await comm.allreduce(x, { algo: o.algo });
  const ts = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await comm.allreduce(x, { algo: o.algo });
    ts[i] = Number(process.hrtime.bigint() - t0) / 1e3;
  }
  await comm.allreduce(ts, { op: 'max' });
  if (o.verbose && comm.rank === 0)
    console.error(bytes, Array.from(ts, (t) => Math.round(t / 1000)).join(' '));
  const med = quantile(ts, 0.5);
  const bus = ((bytes / med / 1e3) * 2 * (comm.size - 1)) / comm.size;
  if (comm.rank === 0) console.log(`${bytes}\t${med.toFixed(1)} us\tbusbw ${bus.toFixed(2)} GB/s`);
}
await comm.close();
