// Data-parallel training of a digit classifier with @ringwire/tfjs.
//
//   ringrun -np 2 node examples/train.mjs [--epochs 6] [--batch-size 64] [--lr 0.002]
//                                          [--compression none|fp16|bf16] [--save DIR]
//                                          [--seed N] [--warmup-epochs 1] [--fixed-order]
//   node examples/train.mjs                 (one process: the same script at size 1)
//   ringrun --min-np 2 --max-np 4 -np 4 node examples/train.mjs --elastic [--commit-every 4]
//                                          [--checkpoint DIR] [--checkpoint-every 1]
//
// --elastic: an elastic job (examples/train-elastic.mjs): it survives workers lost and added,
// resumes from the latest checkpoint when started again; see the README.
//
// Every rank renders its own shard of a deterministic 16x16 digits data set (examples/digits.mjs),
// trains the same MLP with a DistributedOptimizer (gradients averaged across ranks every batch),
// and evaluates its shard of the held-out test set; rank 0 prints the loss per epoch (averaged
// over the ranks) and the final test accuracy. Backend: RINGWIRE_TFJS_BACKEND (auto: tfjs-node-gpu,
// tfjs-node, then pure-JS cpu; or webgpu).
import { parseArgs } from 'node:util';
import {
  BroadcastGlobalVariablesCallback,
  DistributedOptimizer,
  distributedFit,
  fileHandler,
  init,
  LearningRateWarmupCallback,
  loadTfjs,
  MetricAverageCallback,
} from '@ringwire/tfjs';
import { CLASSES, FEATURES, makeDigits } from './digits.mjs';

const { values: opts } = parseArgs({
  options: {
    epochs: { type: 'string', default: '6' },
    'batch-size': { type: 'string', default: '64' },
    lr: { type: 'string', default: '0.002' },
    train: { type: 'string', default: '6144' },
    test: { type: 'string', default: '2048' },
    compression: { type: 'string', default: 'none' },
    save: { type: 'string' },
    seed: { type: 'string' },
    'warmup-epochs': { type: 'string', default: '1' },
    'fixed-order': { type: 'boolean', default: false },
    elastic: { type: 'boolean', default: false },
    'commit-every': { type: 'string', default: '4' },
    checkpoint: { type: 'string' },
    'checkpoint-every': { type: 'string', default: '1' },
  },
});
const epochs = Number(opts.epochs),
  batchSize = Number(opts['batch-size']);

const { tf, backend, source } = await loadTfjs();
tf.enableProdMode();

// The MLP; initial weights differ per rank unless --seed is given (the first broadcast aligns them).
const buildModel = () => {
  const init_ = (k) =>
    opts.seed === undefined
      ? 'glorotUniform'
      : tf.initializers.glorotUniform({ seed: Number(opts.seed) + k });
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [FEATURES],
        units: 128,
        activation: 'relu',
        kernelInitializer: init_(0),
      }),
      tf.layers.dense({ units: 64, activation: 'relu', kernelInitializer: init_(1) }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init_(2) }),
    ],
  });
};
if (opts.elastic) {
  const { trainElastic } = await import('./train-elastic.mjs');
  await trainElastic({ tf, opts, buildModel, backend: `${backend} (${source})` });
  process.exit(0);
}

const comm = await init();
const { rank, size } = comm;
const log = (...a) => rank === 0 && console.log(...a);

// Each rank's shard: samples rank, rank+size, ... (equal sizes, so every rank runs the same number of steps).
const perRank = Math.floor(Number(opts.train) / size);
const testPerRank = Math.floor(Number(opts.test) / size);
const t0 = performance.now();
const train = makeDigits('train', perRank, { start: rank, step: size });
const test = makeDigits('test', testPerRank, { start: rank, step: size });
const x = tf.tensor2d(train.x, [perRank, FEATURES]);
const y = tf.oneHot(tf.tensor1d(train.labels, 'int32'), CLASSES);
log(
  `backend ${backend} (${source}), ${size} rank(s), ${perRank} training images per rank, data made in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

// BroadcastGlobalVariablesCallback aligns the initial weights.
const model = buildModel();
// Horovod's recipe: scale the learning rate by the number of workers, warm it up from the
// single-worker rate over the first epoch (--warmup-epochs 0: no warmup).
const lr = Number(opts.lr) * size;
const opt = new DistributedOptimizer(tf.train.adam(lr), { compression: opts.compression });
model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
log(
  `model: ${model.countParams()} parameters, lr ${lr}, global batch ${batchSize * size}, compression ${opts.compression}`,
);

let epochStart = performance.now();
const warmupEpochs = Number(opts['warmup-epochs']);
await distributedFit(model, x, y, {
  epochs,
  batchSize,
  verbose: 0,
  // --fixed-order: batches in sample order, so that 2 ranks at batch b see exactly the samples one
  // process sees at batch 2b (used by the tests to compare with a single process).
  shuffle: !opts['fixed-order'],
  callbacks: [
    new BroadcastGlobalVariablesCallback(0),
    ...(warmupEpochs > 0 ? [new LearningRateWarmupCallback({ warmupEpochs })] : []),
    new MetricAverageCallback(),
    {
      onEpochEnd: (epoch, logs) => {
        log(
          `epoch ${epoch + 1}/${epochs}  loss ${logs.loss.toFixed(4)}  train acc ${(logs.acc * 100).toFixed(1)}%  (${((performance.now() - epochStart) / 1000).toFixed(1)} s)`,
        );
        epochStart = performance.now();
      },
    },
  ],
});

// Held-out accuracy: each rank scores its test shard, the counts are summed across ranks.
const counts = tf.tidy(() => {
  const pred = model.predict(tf.tensor2d(test.x, [testPerRank, FEATURES])).argMax(-1);
  return pred.equal(tf.tensor1d(test.labels, 'int32')).sum();
});
const correct = new Float64Array([(await counts.data())[0], testPerRank]);
counts.dispose();
await comm.allreduce(correct, { op: 'sum' });
log(`test accuracy ${((correct[0] / correct[1]) * 100).toFixed(2)}% on ${correct[1]} held-out images`);

if (opts.save && rank === 0) {
  await model.save(fileHandler(opts.save));
  log(`saved to ${opts.save}/model.json`);
}
tf.dispose([x, y]);
await comm.close();
