import { createRequire } from 'node:module';
import type * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from 'ringwire';
import type { VariableLike } from './broadcast.js';

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
/** tfjs-layers when installed, else null. */
export const layers = loadLayers();

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
