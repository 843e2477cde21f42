// A small real job: each rank holds its own shard of numbers; together they compute the global
// mean and maximum, gather per-rank counts, and rank 0's settings reach everyone.
// Run: npx ringrun -np 4 node examples/collectives-demo.mjs
import { init } from 'ringwire';

const comm = await init();
const { rank, size } = comm;

// This rank's shard: 1,000,000 samples of a deterministic pseudo-random signal.
const n = 1_000_000;
const shard = new Float64Array(n);
let seed = 12345 + rank;
for (let i = 0; i < n; i++) {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  shard[i] = (seed / 2 ** 31) * 10;
}
const local = new Float64Array([shard.reduce((a, b) => a + b, 0), n]);
await comm.allreduce(local, { op: 'sum' });
const max = new Float64Array([Math.max(...shard.subarray(0, 100_000))]);
await comm.allreduce(max, { op: 'max' });
const counts = await comm.allgather(new Int32Array(rank + 1).fill(rank));
const settings = new Float32Array(rank === 0 ? [0.01, 0.9] : [0, 0]);
await comm.broadcast(settings, 0);
await comm.barrier();

if (rank === 0) {
  console.log(`${size} workers, ${local[1]} samples in all, kernels: ${comm.kernels}`);
  console.log(
    `global mean ${(local[0] / local[1]).toFixed(4)} (expected about 5), max of the first 100k per rank ${max[0].toFixed(4)}`,
  );
  console.log(
    `all-gather of per-rank arrays of different lengths: ${JSON.stringify(counts.map((a) => Array.from(a)))}`,
  );
  console.log(
    `broadcast settings from rank 0: ${Array.from(settings)
      .map((v) => v.toFixed(2))
      .join(', ')}`,
  );
}
await comm.close();
