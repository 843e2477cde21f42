export {
  AbortedError,
  AuthError,
  ClosedError,
  DEFAULTS,
  DTYPE_NAMES,
  DTYPES,
  type DType,
  ErrorCode,
  InvalidArgumentError,
  MembershipChangedError,
  MismatchError,
  PeerLostError,
  ProtocolError,
  REDUCE_OPS,
  type ReduceOp,
  RendezvousError,
  type RingwireArray,
  RingwireError,
  TimeoutError,
} from '@ringwire/common';
export {
  type AllreduceOptions,
  Communicator,
  init,
  type ReduceOptions,
  type TypeOptions,
} from './communicator.js';
export { busFactor, COUNTERS_KEY, type CounterValues } from './counters.js';
export * as elastic from './elastic/index.js';
export { jsKernels, type Kernels, type KernelsInfo, kernelsInfo, loadKernels } from './kernels/index.js';
export type { Algo } from './messages.js';
export type { InitOptions } from './options.js';
export { rankPath, Timeline, Track, type TrackId, traceFile } from './timeline.js';
export { removeRegionsOf, type SharedMemoryInfo, sharedMemoryInfo } from './transport/shared-memory.js';
