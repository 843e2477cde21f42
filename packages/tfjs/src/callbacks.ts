import { createRequire } from 'node:module';
import type * as tf from '@tensorflow/tfjs-core';
import { type Communicator, InvalidArgumentError } from 'ringwire';
import { broadcastOptimizerState, broadcastVariables, type VariableLike } from './broadcast.js';
import { resolveComm } from './context.js';
import {
  DistributedOptimizer,
  getLearningRate,
  registerCallbackFactory,
  setLearningRate,
} from './optimizer.js';

/** Logs as tfjs-layers hands them to callbacks: numbers or scalar tensors. */
export type Logs = Record<string, number | tf.Scalar>;

export interface CallbackParams {
  epochs?: number;
  samples?: number;
  batchSize?: number;
  steps?: number;
  metrics?: string[];
  [key: string]: unknown;
}

/** What the callbacks use of a tf.LayersModel. */
export interface ModelLike {
  optimizer: tf.Optimizer;
  weights: VariableLike[];
  fit(x: unknown, y: unknown, args?: Record<string, unknown>): Promise<unknown>;
}

/** The shape of tfjs-layers' BaseCallback. */
interface BaseCallbackLike {
  params: CallbackParams;
  validationData: unknown;
  setParams(params: CallbackParams): void;
  setModel(model: unknown): void;
  onEpochBegin(epoch: number, logs?: Logs): Promise<void>;
  onEpochEnd(epoch: number, logs?: Logs): Promise<void>;
  onBatchBegin(batch: number, logs?: Logs): Promise<void>;
  onBatchEnd(batch: number, logs?: Logs): Promise<void>;
  onTrainBegin(logs?: Logs): Promise<void>;
  onTrainEnd(logs?: Logs): Promise<void>;
}

interface LayersModule {
  Callback: new () => BaseCallbackLike;
  CustomCallback: new (args: object, yieldEvery?: unknown) => BaseCallbackLike;
}

// tfjs-layers is an optional peer: fit's callbacks must be instances of its BaseCallback
// (standardizeCallbacks checks instanceof), so extend its Callback when it is installed. In Node,
// import and require of @tensorflow/* load the same CommonJS build, so this is the user's class.
function loadLayers(): LayersModule | null {
  try {
    return createRequire(import.meta.url)('@tensorflow/tfjs-layers') as LayersModule;
  } catch {
    return null;
  }
}
const layers = loadLayers();

class NoLayersBase implements BaseCallbackLike {
  params: CallbackParams = {};
  validationData: unknown = null;
  setParams(params: CallbackParams): void {
    this.params = params;
  }
  setModel(_model: unknown): void {}
  async onEpochBegin(_epoch: number, _logs?: Logs): Promise<void> {}
  async onEpochEnd(_epoch: number, _logs?: Logs): Promise<void> {}
  async onBatchBegin(_batch: number, _logs?: Logs): Promise<void> {}
  async onBatchEnd(_batch: number, _logs?: Logs): Promise<void> {}
  async onTrainBegin(_logs?: Logs): Promise<void> {}
  async onTrainEnd(_logs?: Logs): Promise<void> {}
}

const Base: new () => BaseCallbackLike = layers?.Callback ?? NoLayersBase;

/** Base of the @ringwire/tfjs fit callbacks: a tfjs-layers Callback that remembers its model. */
export class RingwireCallback extends Base {
  model: ModelLike | null = null;
  override setModel(model: unknown): void {
    this.model = model as ModelLike;
  }
  protected requireModel(what: string): ModelLike {
    if (!this.model) throw new InvalidArgumentError(`${what}: no model (use it in model.fit's callbacks)`);
    return this.model;
  }
}

/**
 * Runs the second half of every distributed step in model.fit: after each batch, the gradients
 * that minimize() fused are all-reduced and applied (fit awaits onBatchEnd). Get it from
 * `opt.callback()`; `distributedFit` adds it for you.
 */
export class DistributedOptimizerCallback extends RingwireCallback {
  constructor(readonly optimizer: DistributedOptimizer) {
    super();
  }
  override async onTrainBegin(): Promise<void> {
    if (this.model && this.model.optimizer !== this.optimizer) {
      throw new InvalidArgumentError(
        'DistributedOptimizer callback: this model was compiled with another optimizer; compile it with the DistributedOptimizer that made this callback',
      );
    }
    this.optimizer.beginFit();
  }
  override async onBatchEnd(): Promise<void> {
    await this.optimizer.synchronize();
  }
  override async onTrainEnd(): Promise<void> {
    try {
      await this.optimizer.synchronize();
    } finally {
      this.optimizer.endFit();
    }
  }
}

registerCallbackFactory((opt) => new DistributedOptimizerCallback(opt));

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
  if (!layers)
    throw new InvalidArgumentError(
      'distributedFit: @tensorflow/tfjs-layers is not installed: npm install @tensorflow/tfjs',
    );
  const given =
    args.callbacks == null ? [] : Array.isArray(args.callbacks) ? args.callbacks : [args.callbacks];
  const list = given.map((c) =>
    isBaseCallback(c) ? c : new layers.CustomCallback(c as object, args.yieldEvery),
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
