// Per-rank step time of @ringwire/tfjs's DistributedOptimizer and its split: compute, fuse,
// download, all-reduce, upload, apply. For the GPU through WebGPU, and the CPU.
//
//   ringrun -np 2 node bench/tfjs-step.mjs [--hidden 3200] [--input 3200] [--batch 64]
//                                          [--iters 20] [--warmup 3] [--compression none] [--json FILE]
//   RINGWIRE_TFJS_BACKEND=webgpu ringrun -np 2 node bench/tfjs-step.mjs      (TensorFlow.js on WebGPU)
//   node bench/tfjs-step.mjs --np 2             (launches itself)
//
// Backend: RINGWIRE_TFJS_BACKEND = auto (tfjs-node-gpu, tfjs-node, then pure-JS cpu) | webgpu |
// node-gpu | node | cpu. The optimizer runs with `profile: true`: before reading the gradients it
// waits for the backend to finish computing them, so 'compute' includes asynchronous GPU work and
// 'download' is the transfer alone. 'local' is the same step with the plain optimizer (no
// all-reduce), synchronized the same way. Medians over the measured steps.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fmt, median, mlp, mlpParams, selfLaunch } from './tfjs-common.mjs';

const { values: o } = parseArgs({
  options: {
    iters: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    batch: { type: 'string', default: '64' },
    input: { type: 'string', default: '3200' },
    hidden: { type: 'string', default: '3200' },
    compression: { type: 'string', default: 'none' },
    optimizer: { type: 'string', default: 'sgd' },
    np: { type: 'string', default: '2' },
    json: { type: 'string' },
  },
});
await selfLaunch(import.meta.url, Number(o.np));

const { init, loadTfjs, DistributedOptimizer } = await import('@ringwire/tfjs');
const { tf, backend, source, skipped } = await loadTfjs();
tf.enableProdMode();
const comm = await init();
const { rank, size } = comm;
const shape = { input: Number(o.input), hidden: Number(o.hidden), classes: 10 };
const P = mlpParams(shape);
const iters = Number(o.iters),
  warmup = Number(o.warmup),
  batch = Number(o.batch);
if (rank === 0) {
  console.log(
    `# @ringwire/tfjs step: MLP ${shape.input}-${shape.hidden}-${shape.classes} (${P.toLocaleString('en-US')} parameters, ${((P * 4) / 1e6).toFixed(1)} MB), batch ${batch} per rank, ${size} ranks, ${o.optimizer}, compression ${o.compression}`,
  );
  console.log(
    `# backend ${backend} (${source})${skipped.length ? `; skipped: ${skipped.join('; ')}` : ''}; kernels ${comm.kernels}`,
  );
  console.log(
    `# command: ${process.env.RINGWIRE_TFJS_BACKEND ? `RINGWIRE_TFJS_BACKEND=${process.env.RINGWIRE_TFJS_BACKEND} ` : ''}ringrun -np ${size} node bench/tfjs-step.mjs ${process.argv.slice(2).join(' ')}`.trimEnd(),
  );
}

const model = mlp(tf, shape);
const vars = model.trainableWeights.map((w) => w.read());
const x = tf.randomUniform([batch, shape.input]);
const y = tf.oneHot(tf.randomUniform([batch], 0, shape.classes, 'int32'), shape.classes);
const loss = () => tf.mean(tf.metrics.categoricalCrossentropy(y, model.predict(x)));
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
