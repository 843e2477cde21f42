// Start-up to the first collective: init() from whatever launched us (ringrun, mpirun, srun),
// one 4-byte all-reduce, then print the milliseconds since $T0 (epoch ms, set before the launcher).
import { init } from 'ringwire';

const comm = await init();
await comm.allreduce(new Float32Array(1), { op: 'sum' });
process.stdout.write(`first-collective rank ${comm.rank} ${Date.now() - Number(process.env.T0)}\n`);
await comm.close();
