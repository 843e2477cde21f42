// The cost of TfjsState.commit() against a training step, on the pure-JS cpu backend (one process):
//   node packages/tfjs/scripts/commit-cost.mjs
// For the example's MLP (41,802 parameters, batch 64) and a 10.5M-parameter MLP (batch 64), with
// Adam: the median of the step times and of the commit times, and the overhead of committing
// every 10 steps (commit / (10 x step)). BENCHMARKS.md records the results.
import { TfjsState } from '@ringwire/tfjs';
import * as tf from '@tensorflow/tfjs';

tf.enableProdMode();
await tf.setBackend('cpu');
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];

async function measure(name, inputs, units, { steps, commits }) {
  const layers = units.map((u, i) =>
    tf.layers.dense({
      ...(i === 0 ? { inputShape: [inputs] } : {}),
      units: u,
      activation: i === units.length - 1 ? 'softmax' : 'relu',
    }),
  );
  const model = tf.sequential({ layers });
  const opt = tf.train.adam(0.001);
  model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
  const x = tf.randomUniform([64, inputs]);
  const y = tf.oneHot(tf.randomUniform([64], 0, units.at(-1), 'int32'), units.at(-1));
  const state = new TfjsState(model, opt, { epoch: 0, batch: 0 });
  const stepMs = [];
  for (let i = 0; i < steps + 1; i++) {
    const t = performance.now();
    await model.fit(x, y, { epochs: 1, batchSize: 64, verbose: 0 });
    if (i > 0) stepMs.push(performance.now() - t); // the first creates Adam's slots
  }
  const commitMs = [];
  for (let i = 0; i < commits + 1; i++) {
    const t = performance.now();
    await state.commit();
    if (i > 0) commitMs.push(performance.now() - t); // the first allocates the buffers
  }
  const s = median(stepMs),
    c = median(commitMs);
  console.log(
    `${name}: ${model.countParams()} parameters, step ${s.toFixed(1)} ms, commit ${c.toFixed(2)} ms ` +
      `(${((c / s) * 100).toFixed(2)}% of a step; every 10 steps: ${((c / (10 * s)) * 100).toFixed(3)}%)`,
  );
  tf.dispose([x, y]);
}

await measure('example MLP', 256, [128, 64, 10], { steps: 30, commits: 30 });
await measure('10M MLP', 1024, [4096, 1536, 10], { steps: 5, commits: 9 });
