// What @ringwire/tfjs's DistributedOptimizer adds to a training step beyond a raw all-reduce of
// the same number of elements, for a 10M-parameter model.
//
//   ringrun -np 2 node bench/tfjs/overhead.mjs [--iters 20] [--warmup 2] [--batch 8]
//                                              [--hidden 3200] [--modes none,fp16,bf16] [--pipeline-bytes N] [--json FILE]
//   node bench/tfjs/overhead.mjs                (launches itself at -np 2)
// (bench/tfjs-overhead.mjs, its old path, still works.)
//
// Per measured step, interleaved so that load from elsewhere hits both alike:
//   wrapper  barrier; opt.minimize (gradients + fusion); barrier (absorbs compute skew between
//            ranks); await opt.synchronize() (read into the fusion buffer, all-reduce, upload, split,
//            apply). added = fuse + download + allreduce + upload (opt.lastTimings): what the wrapper
//            costs beyond the plain optimizer's own work, all-reduce included. (synchronize - apply
//            measures the same, but apply takes ~0.9 s on the cpu backend at this size and its noise
//            swamped the difference.)
//   raw      barrier; comm.allreduce(x, { op: 'mean' }) on a SharedArrayBuffer array of the model's
//            parameter count (float32, or float16/bfloat16 for the compressed modes; zero-copy),
//            right after the same minimize as the wrapper's synchronize, before or after it in
//            alternate steps (after a tfjs step the garbage collector competes for the CPU).
//            overhead = added / raw - 1.
//   idle     the same raw all-reduce at the start of the step, with no computation before it
//   staged   a float32 all-reduce of an ordinary Float32Array (the communicator copies it through
//            its staging buffers): an all-reduce of `await grad.data()` without the wrapper
//   local    the wrapped optimizer's own minimize on the same model (compute + apply), for scale
//            (first mode only).
// Reported: the median over steps of each rank, the worst rank.
import { writeFileSync } from 'node:fs';
import { benchArgs } from '../lib/args.mjs';
import { runAsRanks } from '../lib/ranks.mjs';
import { fmt, median } from '../lib/stats.mjs';
import { modelOptions, setupModel } from './model.mjs';

const o = benchArgs('ringrun -np 2 node bench/tfjs/overhead.mjs [options]', {
  ...modelOptions({ warmup: 2, batch: 8 }),
  modes: { default: 'none,fp16,bf16', help: 'compression modes, comma-separated: none, fp16, bf16' },
  'pipeline-bytes': { type: 'number', help: "the optimizer's pipelineBytes (default: its own)" },
});
await runAsRanks(import.meta.url, o.np, { tagged: true, announce: true });

const { DistributedOptimizer, tf, backend, source, comm, shape, P, vars, x, y, loss } = await setupModel(o);
const { rank, size } = comm;
const { iters, warmup, batch } = o;
const now = () => performance.now();

const results = [];
const staged = new Float32Array(P);
for (const [mi, mode] of o.modes.split(',').entries()) {
  const dtype = mode === 'fp16' ? 'float16' : mode === 'bf16' ? 'bfloat16' : 'float32';
  const raw = comm.allocate(dtype === 'float32' ? 'float32' : 'float16', P);
  const inner = tf.train.sgd(1e-6);
  const opt = new DistributedOptimizer(inner, {
    compression: mode,
    pipelineBytes: o['pipeline-bytes'],
  });
  const plain = tf.train.sgd(1e-6);
  const rows = {
    raw: [],
    idle: [],
    staged: [],
    added: [],
    fuse: [],
    download: [],
    allreduce: [],
    upload: [],
    apply: [],
    compute: [],
    moved: [],
    local: [],
    dist: [],
  };
  const wire = { op: 'mean', dtype: dtype === 'float32' ? undefined : dtype };
  for (let i = 0; i < warmup + iters; i++) {
    await comm.barrier();
    let t = now();
    await comm.allreduce(raw, wire);
    const idleMs = now() - t;
    await comm.barrier();
    t = now();
    await comm.allreduce(staged, { op: 'mean' });
    const stagedMs = now() - t;

    await comm.barrier();
    opt.beginFit(); // bench only: minimize and synchronize separately, with barriers between
    t = now();
    opt.minimize(loss, false, vars);
    const minimizeMs = now() - t;
    // The raw all-reduce and the wrapper's exchange both run right after the same gradient
    // computation (whose garbage the collector is still working on), in alternating order.
    const timed = async (f) => {
      await comm.barrier();
      const t0 = now();
      await f();
      return now() - t0;
    };
    const rawRun = () => timed(() => comm.allreduce(raw, wire));
    const syncRun = () => timed(() => opt.synchronize());
    let rawMs, syncMs;
    if (i % 2 === 0) (rawMs = await rawRun()), (syncMs = await syncRun());
    else (syncMs = await syncRun()), (rawMs = await rawRun());
    opt.endFit();
    const tm = opt.lastTimings;

    let localMs = NaN;
    if (mi === 0) {
      await comm.barrier();
      t = now();
      plain.minimize(loss, false, vars);
      localMs = now() - t;
    }
    if (i < warmup) continue;
    rows.raw.push(rawMs);
    rows.idle.push(idleMs);
    rows.staged.push(stagedMs);
    rows.added.push(tm.fuse + tm.download + tm.allreduce + tm.upload);
    for (const k of ['fuse', 'download', 'allreduce', 'upload', 'apply', 'compute', 'moved'])
      rows[k].push(tm[k]);
    rows.local.push(localMs);
    rows.dist.push(minimizeMs + syncMs);
  }
  const keys = Object.keys(rows);
  const mine = Float64Array.from(keys.map((k) => (rows[k].some(Number.isNaN) ? NaN : median(rows[k]))));
  const all = await comm.allgather(mine);
  const worst = Object.fromEntries(keys.map((k, j) => [k, Math.max(...all.map((a) => a[j]))]));
  results.push({
    mode,
    wire: dtype,
    ...worst,
    overhead: worst.added / worst.raw - 1,
    perRank: all.map((a) => Object.fromEntries(keys.map((k, j) => [k, a[j]]))),
  });
  opt.dispose();
  plain.dispose();
}

if (rank === 0) {
  const mb = ((P * 4) / 1e6).toFixed(1);
  console.log(
    `# @ringwire/tfjs overhead: MLP ${shape.input}-${shape.hidden}-${shape.classes}, ${P.toLocaleString('en-US')} parameters (${mb} MB float32), ${size} ranks, backend ${backend} (${source}), batch ${batch}, kernels ${comm.kernels}`,
  );
  console.log(
    `# median of ${iters} steps after ${warmup} warm-up, worst rank; times in ms; overhead = added / raw - 1`,
  );
  console.log(
    `# command: ringrun -np ${size} node bench/tfjs/overhead.mjs ${process.argv.slice(2).join(' ')}`.trimEnd(),
  );
  const pct = (v) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`.padStart(9);
  console.log(
    'mode  wire           raw  wrapper added  overhead |  raw idle  f32 staged |     fuse  download  allreduce   upload |  local step  dist step',
  );
  for (const r of results) {
    console.log(
      `${r.mode.padEnd(5)} ${r.wire.padEnd(9)} ${fmt(r.raw, 8)} ${fmt(r.added, 14)} ${pct(r.overhead)} | ${fmt(r.idle, 9)} ${fmt(r.staged, 11)} | ${fmt(r.fuse, 8, 2)} ${fmt(r.download, 9)} ${fmt(r.allreduce, 10)} ${fmt(r.upload, 8)} | ${fmt(r.local, 11)} ${fmt(r.dist, 10)}`,
    );
  }
  if (o.json)
    writeFileSync(
      o.json,
      JSON.stringify({ params: P, size, backend, batch, iters, warmup, results }, null, 2),
    );
}
tf.dispose([x, y]);
await comm.close();
