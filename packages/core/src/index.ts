export { init, Communicator, type AllreduceOptions, type ReduceOptions, type TypeOptions } from './communicator.js';
export type { InitOptions } from './options.js';
export type { Algo } from './messages.js';
export { DTYPES, DTYPE_NAMES, REDUCE_OPS, type DType, type ReduceOp, type RingwireArray } from './dtypes.js';
export { kernelsInfo, loadKernels, jsKernels, type KernelsInfo, type Kernels } from './kernels/index.js';
export { sharedMemoryInfo, type SharedMemoryInfo } from './shared.js';
export {
  RingwireError, ErrorCode, InvalidArgumentError, PeerLostError, TimeoutError, MismatchError, AuthError, ProtocolError,
  RendezvousError, AbortedError, ClosedError, DEFAULTS,
} from '@ringwire/rendezvous';
