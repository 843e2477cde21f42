export { CheckpointError } from '@ringwire/common';
export { type BackendChoice, type LoadedTfjs, loadTfjs } from './backend.js';
export {
  broadcastOptimizerState,
  broadcastVariables,
  type LayerVariableLike,
  type VariableLike,
} from './broadcast.js';
export {
  BroadcastGlobalVariablesCallback,
  type CallbackParams,
  DistributedOptimizerCallback,
  distributedFit,
  LearningRateWarmupCallback,
  type LearningRateWarmupOptions,
  type Logs,
  MetricAverageCallback,
  type ModelLike,
  RingwireCallback,
} from './callbacks.js';
export type { CheckpointStage } from './checkpoint.js';
export { init, setCommunicator } from './context.js';
export { type StateModel, TfjsState, type TfjsStateOptions } from './elastic-state.js';
export { fileHandler, registerFileRouter } from './io.js';
export {
  type Compression,
  DistributedOptimizer,
  type DistributedOptimizerOptions,
  getLearningRate,
  type StepTimings,
  setLearningRate,
} from './optimizer.js';
