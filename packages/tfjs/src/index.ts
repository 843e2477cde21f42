export { init, setCommunicator } from './context.js';
export {
  DistributedOptimizer, getLearningRate, setLearningRate,
  type DistributedOptimizerOptions, type Compression, type StepTimings,
} from './optimizer.js';
export { broadcastVariables, broadcastOptimizerState, type VariableLike } from './broadcast.js';
export {
  RingwireCallback, DistributedOptimizerCallback, BroadcastGlobalVariablesCallback, MetricAverageCallback,
  LearningRateWarmupCallback, distributedFit,
  type LearningRateWarmupOptions, type Logs, type CallbackParams, type ModelLike,
} from './callbacks.js';
export { loadTfjs, type LoadedTfjs, type BackendChoice } from './backend.js';
export { fileHandler, registerFileRouter } from './io.js';
