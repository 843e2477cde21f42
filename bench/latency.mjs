import { init } from 'ringwire';
import { launchedRanks } from './local-ranks.mjs';

if (!(await launchedRanks(new URL(import.meta.url).pathname, 2, 'lat'))) {
  const comm = await init();
  const x = comm.allocate('float32', 1024).fill(1);
  for (const [name, f] of [
    ['barrier', () => comm.barrier()],
    ['ar4k', () => comm.allreduce(x)],
    ['ar4k-sync', () => comm.allreduceSync(x)],
  ]) {
    for (let i = 0; i < 50; i++) await f();
    const ts = [];
    for (let i = 0; i < 300; i++) {
      const t0 = process.hrtime.bigint();
      await f();
      ts.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
    ts.sort((a, b) => a - b);
    if (comm.rank === 0)
      console.log(name, 'p50', ts[150].toFixed(1), 'p10', ts[30].toFixed(1), 'p90', ts[270].toFixed(1));
  }
  await comm.close();
}
