import { type Communicator, InvalidArgumentError } from 'ringwire';
import { broadcastOptimizerState, broadcastVariables } from './broadcast.js';
import { type Logs, layers, type ModelLike, RingwireCallback } from './callback-base.js';
import { resolveComm } from './context.js';
import { DistributedOptimizer, getLearningRate, setLearningRate } from './optimizer.js';
import { DistributedOptimizerCallback } from './optimizer-callback.js';

export { type CallbackParams, type Logs, type ModelLike, RingwireCallback } from './callback-base.js';
export { DistributedOptimizerCallback } from './optimizer-callback.js';

/**
 * Horovod's BroadcastGlobalVariablesCallback: makes every rank start from rank `rootRank`'s state.
 * Model weights (trainable and not) are broadcast when training begins, so the first gradients
 * are computed on the same weights everywhere; after the first batch, once the optimizer has
 * created its slot variables (tfjs optimizers create them on the first apply), model weights and
 * optimizer state (slots, iteration count) are broadcast again, as Horovod does.
 */
export class BroadcastGlobalVariablesCallback extends RingwireCallback {
  private done = false;
  private readonly comm?: Communicator;
  constructor(
    readonly rootRank = 0,
    options: { comm?: Communicator } = {},
  ) {
    super();
    this.comm = options.comm;
  }
  override async onTrainBegin(): Promise<void> {
    if (this.done) return;
    await broadcastVariables(this.requireModel('BroadcastGlobalVariablesCallback').weights, this.rootRank, {
      comm: this.comm,
    });
  }
  override async onBatchEnd(): Promise<void> {
    if (this.done) return;
    const model = this.requireModel('BroadcastGlobalVariablesCallback');
    // The step must be applied first, wherever this callback sits in the list.
    if (model.optimizer instanceof DistributedOptimizer) await model.optimizer.synchronize();
    await broadcastVariables(model.weights, this.rootRank, { comm: this.comm });
    if (model.optimizer) await broadcastOptimizerState(model.optimizer, this.rootRank, { comm: this.comm });
    this.done = true;
  }
}

/**
 * Horovod's MetricAverageCallback: at the end of every epoch, replaces each metric in the epoch
 * logs (loss, acc, val_*) by its average over the ranks. Callbacks after it (and model.fit's
 * History) see the averages.
 */
export class MetricAverageCallback extends RingwireCallback {
  private readonly comm?: Communicator;
  constructor(options: { comm?: Communicator } = {}) {
    super();
    this.comm = options.comm;
  }
  override async onEpochEnd(_epoch: number, logs?: Logs): Promise<void> {
    if (!logs) return;
    const comm = resolveComm(this.comm, 'MetricAverageCallback');
    const keys = Object.keys(logs).sort();
    const values = new Float64Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const v = logs[keys[i]];
      if (typeof v === 'number') values[i] = v;
      else {
        values[i] = (await v.data())[0];
        v.dispose();
      }
    }
    await comm.allreduce(values, { op: 'mean' });
    keys.forEach((k, i) => (logs[k] = values[i]));
  }
}

export interface LearningRateWarmupOptions {
  /** The learning rate reached at the end of warmup (already scaled by size, as in Horovod); default: the optimizer's at train begin. */
  initialLr?: number;
  /** Epochs of warmup (default 5). */
  warmupEpochs?: number;
  /** Batches per epoch; default: ceil(samples / batchSize) from fit. */
  stepsPerEpoch?: number;
  /** Rank 0 prints when warmup ends. */
  verbose?: boolean;
  comm?: Communicator;
}

/**
 * Horovod's LearningRateWarmupCallback: the learning rate ramps linearly, batch by batch, from
 * initialLr / size to initialLr over warmupEpochs, i.e. from the single-worker rate to the
 * size-scaled one: lr = initialLr / size * (epoch * (size - 1) / warmupEpochs + 1) with a
 * fractional epoch. After warmup it is set to initialLr once and left alone. Horovod's momentum
 * correction is not done.
 */
export class LearningRateWarmupCallback extends RingwireCallback {
  readonly warmupEpochs: number;
  private initialLr?: number;
  private readonly stepsPerEpochOption?: number;
  private readonly verbose: boolean;
  private readonly comm?: Communicator;
  private epoch = 0;
  private finished = false;
  constructor(options: LearningRateWarmupOptions = {}) {
    super();
    this.initialLr = options.initialLr;
    this.warmupEpochs = options.warmupEpochs ?? 5;
    this.stepsPerEpochOption = options.stepsPerEpoch;
    this.verbose = options.verbose ?? false;
    this.comm = options.comm;
    if (!(this.warmupEpochs > 0))
      throw new InvalidArgumentError('LearningRateWarmupCallback: warmupEpochs must be > 0');
  }
  override async onTrainBegin(): Promise<void> {
    this.initialLr ??= getLearningRate(this.requireModel('LearningRateWarmupCallback').optimizer);
  }
  override async onEpochBegin(epoch: number): Promise<void> {
    this.epoch = epoch;
  }
  override async onBatchBegin(batch: number): Promise<void> {
    if (this.finished) return;
    const model = this.requireModel('LearningRateWarmupCallback');
    const comm = resolveComm(this.comm, 'LearningRateWarmupCallback');
    const steps =
      this.stepsPerEpochOption ??
      (this.params.samples && this.params.batchSize
        ? Math.ceil(this.params.samples / this.params.batchSize)
        : undefined);
    if (!steps)
      throw new InvalidArgumentError(
        'LearningRateWarmupCallback: pass stepsPerEpoch (fit did not say how many batches an epoch has)',
      );
    const e = this.epoch + batch / steps;
    if (e >= this.warmupEpochs) {
      setLearningRate(model.optimizer, this.initialLr!);
      this.finished = true;
      if (this.verbose && comm.rank === 0)
        console.log(`Epoch ${this.epoch + 1}: finished gradual learning rate warmup to ${this.initialLr}.`);
      return;
    }
    setLearningRate(
      model.optimizer,
      (this.initialLr! / comm.size) * ((e * (comm.size - 1)) / this.warmupEpochs + 1),
    );
  }
}

/**
 * model.fit with the DistributedOptimizer's callback added first (unless already there). Plain
 * callback objects ({ onEpochEnd() {...} }) are wrapped in tf.CustomCallback, so they mix with
 * callback instances (tfjs-layers itself only accepts one kind per list).
 */
export async function distributedFit<T = unknown>(
  model: ModelLike,
  x: unknown,
  y: unknown,
  args: Record<string, unknown> & { callbacks?: unknown } = {},
): Promise<T> {
  const opt = model.optimizer;
  if (!(opt instanceof DistributedOptimizer))
    throw new InvalidArgumentError('distributedFit: compile the model with a DistributedOptimizer first');
  const tfl = layers;
  if (!tfl)
    throw new InvalidArgumentError(
      'distributedFit: @tensorflow/tfjs-layers is not installed: npm install @tensorflow/tfjs',
    );
  const given =
    args.callbacks == null ? [] : Array.isArray(args.callbacks) ? args.callbacks : [args.callbacks];
  const list = given.map((c) =>
    isBaseCallback(c) ? c : new tfl.CustomCallback(c as object, args.yieldEvery),
  );
  if (!list.some((c) => c instanceof DistributedOptimizerCallback && c.optimizer === opt))
    list.unshift(opt.callback());
  return (await model.fit(x, y, { ...args, callbacks: list })) as T;
}

/** tfjs-layers' own callbacks (EarlyStopping, History...) all extend BaseCallback, Callback's parent. */
function isBaseCallback(c: unknown): boolean {
  if (!layers) return false;
  const base = Object.getPrototypeOf(layers.Callback.prototype) as { constructor: new () => unknown };
  return c instanceof layers.Callback || c instanceof base.constructor;
}
