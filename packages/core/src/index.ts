export {
  AbortedError,
  AuthError,
  ClosedError,
  DEFAULTS,
  ErrorCode,
  InvalidArgumentError,
  MismatchError,
  PeerLostError,
  ProtocolError,
  RendezvousError,
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
export { DTYPE_NAMES, DTYPES, type DType, REDUCE_OPS, type ReduceOp, type RingwireArray } from './dtypes.js';
export { jsKernels, type Kernels, type KernelsInfo, kernelsInfo, loadKernels } from './kernels/index.js';
export type { Algo } from './messages.js';
export type { InitOptions } from './options.js';
export { type SharedMemoryInfo, sharedMemoryInfo } from './transport/shared-memory.js';
