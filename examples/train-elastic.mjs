// The elastic path of train.mjs (--elastic): the same MLP and data, in an elastic job that keeps
// training when workers are lost or added, and resumes from its latest checkpoint when started
// again. Used by train.mjs; see the README's "Elastic training".
//
// The state (TfjsState) holds the model weights, the Adam state and { epoch, processed }: the
// samples of the epoch already trained on, all workers together. Every epoch's samples are dealt
// out with elastic.shard, so after a re-formation the new set of workers shares exactly the
// samples not yet committed: none skipped, none repeated. The state is committed every
// --commit-every batches (and at the end of each epoch); the learning rate is the single-worker
// --lr times the number of workers, rescaled at each re-formation.
import { crc32 } from 'node:zlib';
import {
  DistributedOptimizer,
  distributedFit,
  MetricAverageCallback,
  setCommunicator,
  TfjsState,
} from '@ringwire/tfjs';
import { elastic } from 'ringwire';
import { CLASSES, FEATURES, makeDigits } from './digits.mjs';

/** CRC-32 of the model's weights, in order: the same number means the same weights bit for bit. */
export async function weightsCrc(model) {
  let c = 0;
  for (const w of model.weights) {
    const d = await w.read().data();
    c = crc32(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), c);
  }
  return c.toString(16).padStart(8, '0');
}

export async function trainElastic({ tf, opts, buildModel, backend }) {
  const epochs = Number(opts.epochs);
  const batchSize = Number(opts['batch-size']);
  const commitEvery = Number(opts['commit-every']);
  const seed = Number(opts.seed ?? 0);
  // Every worker makes the whole data set: its share changes with the number of workers.
  const n = Number(opts.train);
  const data = makeDigits('train', n);
  const X = tf.tensor2d(data.x, [n, FEATURES]);
  const Y = tf.oneHot(tf.tensor1d(data.labels, 'int32'), CLASSES);
  const testData = makeDigits('test', Number(opts.test));

  const model = buildModel();
  const opt = new DistributedOptimizer(tf.train.adam(Number(opts.lr)), { compression: opts.compression });
  model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const checkpoint = opts.checkpoint
    ? { dir: opts.checkpoint, everyCommits: Number(opts['checkpoint-every']) }
    : undefined;
  const state = new TfjsState(model, opt, { epoch: 0, processed: 0 }, { checkpoint });
  let first = true;

  await elastic.run(state, async (comm, state) => {
    setCommunicator(comm);
    const { rank, size } = comm;
    const log = (...a) => rank === 0 && console.log(...a);
    if (first && state.checkpointSeq > 0)
      log(
        `resumed from checkpoint ${state.checkpointSeq}: epoch ${state.epoch + 1}, sample ${state.processed}, weights ${await weightsCrc(model)}`,
      );
    if (first) log(`backend ${backend}, ${n} training images, model: ${model.countParams()} parameters`);
    first = false;
    log(
      `generation ${comm.generation}: ${size} workers, lr ${opt.learningRate}, at epoch ${state.epoch + 1} sample ${state.processed}`,
    );
    let written = state.checkpointSeq;
    const commit = async () => {
      await state.commit();
      if (state.checkpointSeq !== written) {
        written = state.checkpointSeq;
        log(
          `checkpoint ${written} written: epoch ${state.epoch + 1}, sample ${state.processed}, weights ${await weightsCrc(model)}`,
        );
      }
    };

    for (; state.epoch < epochs; ) {
      const start = state.processed;
      const mine = elastic.shard({
        size,
        rank,
        epochSamples: n,
        processed: start,
        shuffleSeed: seed * 1000 + state.epoch,
      });
      // Full steps of batchSize on every worker, then what is left, shared out unevenly: a worker
      // whose share of the tail is empty joins the last step with zero gradients.
      const fullSteps = Math.floor((n - start) / (batchSize * size));
      const tail = n - start - fullSteps * batchSize * size;
      let logs = {};
      if (mine.length > 0) {
        const idx = tf.tensor1d(mine, 'int32');
        const [x, y] = [tf.gather(X, idx), tf.gather(Y, idx)];
        idx.dispose();
        try {
          await distributedFit(model, x, y, {
            epochs: 1,
            batchSize,
            shuffle: false,
            verbose: 0,
            callbacks: [
              new MetricAverageCallback(),
              {
                onBatchEnd: async (batch) => {
                  if (batch >= fullSteps) return; // the tail step is committed with the epoch
                  state.processed = start + (batch + 1) * batchSize * size;
                  if ((batch + 1) % commitEvery === 0) await commit();
                },
                onEpochEnd: (_e, l) => (logs = l),
              },
            ],
          });
        } finally {
          tf.dispose([x, y]);
        }
      }
      if (tail > 0 && mine.length === fullSteps * batchSize) {
        const zeros = model.trainableWeights.map((w) => ({
          name: w.read().name,
          tensor: tf.zerosLike(w.read()),
        }));
        await opt.applyGradientsAsync(zeros);
        tf.dispose(zeros.map((z) => z.tensor));
      }
      if (logs.loss !== undefined)
        log(
          `epoch ${state.epoch + 1}/${epochs}  loss ${logs.loss.toFixed(4)}  train acc ${(logs.acc * 100).toFixed(1)}%  (${size} workers)`,
        );
      state.epoch += 1;
      state.processed = 0;
      await commit();
    }

    // Held-out accuracy: each worker scores its share of the test set, the counts are summed.
    const mineTest = elastic.shard({ size, rank, epochSamples: testData.labels.length, processed: 0 });
    const counts = tf.tidy(() => {
      const x = tf.gather(tf.tensor2d(testData.x, [testData.labels.length, FEATURES]), mineTest);
      const pred = model.predict(x).argMax(-1);
      return pred.equal(tf.gather(tf.tensor1d(testData.labels, 'int32'), mineTest)).sum();
    });
    const correct = new Float64Array([(await counts.data())[0], mineTest.length]);
    counts.dispose();
    await comm.allreduce(correct, { op: 'sum' });
    log(`test accuracy ${((correct[0] / correct[1]) * 100).toFixed(2)}% on ${correct[1]} held-out images`);
  });
  tf.dispose([X, Y]);
}
