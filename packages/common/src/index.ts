export { DEFAULTS } from './defaults.js';
export {
  type Discovery,
  defaultRendezvousPort,
  discover,
  ENGINE_ORDER,
  type Engine,
  parseSlurmNodeList,
  parseTasksPerNode,
  tokenHint,
} from './discovery.js';
export {
  DTYPE_NAMES,
  DTYPES,
  type DType,
  type KernelOp,
  REDUCE_OPS,
  type ReduceOp,
  type RingwireArray,
} from './dtypes.js';
export {
  ALGOS,
  type Algo,
  ENV,
  type EnvKey,
  envNumber,
  LAUNCHER_ENV,
  LOG_LEVELS,
  readEnv,
  resolveHeartbeatTimeoutMs,
  TFJS_BACKENDS,
} from './env.js';
export * from './errors.js';
export type { Kernels } from './kernels.js';
export {
  createLogger,
  escapeLog,
  escapingLogger,
  isLoopback,
  LEVELS,
  type Logger,
  type LogLevel,
  logs,
  logTime,
  rateLimitedLogger,
} from './log.js';
export { PreAuthGuard } from './preauth.js';
export {
  checkTls,
  createListener,
  readTls,
  type TlsMaterial,
  tlsClientOptions,
  tlsRefusal,
  tlsServerOptions,
} from './tls.js';
