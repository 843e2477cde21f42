// Per-rank step time of @ringwire/tfjs's DistributedOptimizer and its split: compute, fuse,
// download, all-reduce, upload, apply. For the GPU through WebGPU, and the CPU.
//
//   ringrun -np 2 node bench/tfjs/step.mjs [--hidden 3200] [--input 3200] [--batch 64]
//                                          [--iters 20] [--warmup 3] [--compression none] [--json FILE]
//   RINGWIRE_TFJS_BACKEND=webgpu ringrun -np 2 node bench/tfjs/step.mjs      (TensorFlow.js on WebGPU)
//   node bench/tfjs/step.mjs --np 2             (launches itself)
// (bench/tfjs-step.mjs, its old path, still works.)
//
// Backend: RINGWIRE_TFJS_BACKEND = auto (tfjs-node-gpu, tfjs-node, then pure-JS cpu) | webgpu |
// node-gpu | node | cpu. The optimizer runs with `profile: true`: before reading the gradients it
// waits for the backend to finish computing them, so 'compute' includes asynchronous GPU work and
// 'download' is the transfer alone. 'local' is the same step with the plain optimizer (no
// all-reduce), synchronized the same way. Medians over the measured steps.
import { writeFileSync } from 'node:fs';
import { benchArgs } from '../lib/args.mjs';
import { runAsRanks } from '../lib/ranks.mjs';
import { fmt, median } from '../lib/stats.mjs';
import { modelOptions, setupModel } from './model.mjs';

const o = benchArgs('ringrun -np 2 node bench/tfjs/step.mjs [options]', {
  ...modelOptions({ warmup: 3, batch: 64 }),
  compression: { default: 'none', help: 'none | fp16 | bf16' },
  optimizer: { default: 'sgd', help: 'sgd | adam' },
});
await runAsRanks(import.meta.url, o.np, { tagged: true, announce: true });

const { DistributedOptimizer, tf, backend, source, skipped, comm, shape, P, vars, x, y, loss } =
  await setupModel(o);
const { rank, size } = comm;
const { iters, warmup, batch } = o;
if (rank === 0) {
  console.log(
    `# @ringwire/tfjs step: MLP ${shape.input}-${shape.hidden}-${shape.classes} (${P.toLocaleString('en-US')} parameters, ${((P * 4) / 1e6).toFixed(1)} MB), batch ${batch} per rank, ${size} ranks, ${o.optimizer}, compression ${o.compression}`,
  );
  console.log(
    `# backend ${backend} (${source})${skipped.length ? `; skipped: ${skipped.join('; ')}` : ''}; kernels ${comm.kernels}`,
  );
  console.log(
    `# command: ${process.env.RINGWIRE_TFJS_BACKEND ? `RINGWIRE_TFJS_BACKEND=${process.env.RINGWIRE_TFJS_BACKEND} ` : ''}ringrun -np ${size} node bench/tfjs/step.mjs ${process.argv.slice(2).join(' ')}`.trimEnd(),
  );
}

const makeOpt = () => (o.optimizer === 'adam' ? tf.train.adam(1e-6) : tf.train.sgd(1e-6));
const opt = new DistributedOptimizer(makeOpt(), { compression: o.compression, profile: true });
const plain = makeOpt();
const now = () => performance.now();
// Waits until the backend has applied the update (the last variable is written last).
const settle = async () => {
  const v = vars[vars.length - 1];
  const probe = tf.slice(v, new Array(v.rank).fill(0), new Array(v.rank).fill(1));
  await probe.data();
  probe.dispose();
};

const keys = ['step', 'compute', 'fuse', 'download', 'allreduce', 'upload', 'apply', 'other', 'local'];
const rows = Object.fromEntries(keys.map((k) => [k, []]));
for (let i = 0; i < warmup + iters; i++) {
  await comm.barrier();
  let t = now();
  await opt.step(loss, false, vars);
  await settle();
  const stepMs = now() - t;
  const tm = opt.lastTimings;
  await comm.barrier();
  t = now();
  plain.minimize(loss, false, vars);
  await settle();
  const localMs = now() - t;
  if (i < warmup) continue;
  rows.step.push(stepMs);
  const phases = ['compute', 'fuse', 'download', 'allreduce', 'upload', 'apply'];
  for (const k of phases) rows[k].push(tm[k]);
  rows.other.push(stepMs - phases.reduce((sum, k) => sum + tm[k], 0));
  rows.local.push(localMs);
}
const m = Object.fromEntries(keys.map((k) => [k, median(rows[k])]));
// One line per rank, in rank order.
for (let r = 0; r < size; r++) {
  if (r === rank) {
    if (r === 0)
      console.log(
        'rank  backend      step |  compute     fuse  download  allreduce   upload    apply    other | local step  (ms, median)',
      );
    console.log(
      `${String(rank).padStart(4)}  ${backend.padEnd(9)} ${fmt(m.step, 7)} | ${fmt(m.compute, 8)} ${fmt(m.fuse, 8, 2)} ${fmt(m.download, 9)} ${fmt(m.allreduce, 10)} ${fmt(m.upload, 8)} ${fmt(m.apply, 8)} ${fmt(m.other, 8)} | ${fmt(m.local, 10)}`,
    );
  }
  await comm.barrier();
}
if (o.json)
  writeFileSync(
    o.json.replace(/(\.json)?$/, `.rank${rank}.json`),
    JSON.stringify(
      { rank, size, backend, params: P, batch, compression: o.compression, medians: m, samples: rows },
      null,
      2,
    ),
  );
tf.dispose([x, y]);
await comm.close();
