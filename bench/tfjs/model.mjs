// What bench/tfjs/step.mjs and bench/tfjs/overhead.mjs share: the model, the options that shape
// it and the run, and the setup of @ringwire/tfjs, the communicator and the model.

/** An MLP input -> hidden (relu) -> classes; 3200/3200/10 has 10,275,210 parameters. */
export function mlp(tf, { input, hidden, classes }) {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [input], units: hidden, activation: 'relu' }),
      tf.layers.dense({ units: classes, activation: 'softmax' }),
    ],
  });
}

/** The parameter count of mlp(shape). */
export function mlpParams({ input, hidden, classes }) {
  return input * hidden + hidden + hidden * classes + classes;
}

/** The options both scripts take (bench/lib/args.mjs), with each script's warm-up and batch defaults. */
export function modelOptions({ warmup, batch }) {
  return {
    iters: { type: 'number', default: 20, help: 'measured steps' },
    warmup: { type: 'number', default: warmup, help: 'steps before them' },
    batch: { type: 'number', default: batch, help: 'examples per rank and step' },
    input: { type: 'number', default: 3200, help: 'MLP input width' },
    hidden: { type: 'number', default: 3200, help: 'MLP hidden width' },
    np: { type: 'number', default: 2, help: 'ranks, when started by hand (not under ringrun)' },
    json: { help: 'also write the results to this file' },
  };
}

/**
 * In a rank: loads TensorFlow.js through @ringwire/tfjs, joins the communicator and builds the
 * model with a random batch and its loss function.
 */
export async function setupModel(o) {
  const tfjs = await import('@ringwire/tfjs');
  const { tf, backend, source, skipped } = await tfjs.loadTfjs();
  tf.enableProdMode();
  const comm = await tfjs.init();
  const shape = { input: o.input, hidden: o.hidden, classes: 10 };
  const model = mlp(tf, shape);
  const x = tf.randomUniform([o.batch, shape.input]);
  const y = tf.oneHot(tf.randomUniform([o.batch], 0, shape.classes, 'int32'), shape.classes);
  return {
    DistributedOptimizer: tfjs.DistributedOptimizer,
    tf,
    backend,
    source,
    skipped,
    comm,
    shape,
    P: mlpParams(shape),
    vars: model.trainableWeights.map((w) => w.read()),
    x,
    y,
    loss: () => tf.mean(tf.metrics.categoricalCrossentropy(y, model.predict(x))),
  };
}
