export { DEFAULTS } from './defaults.js';
export {
  ALGOS,
  type Algo,
  ENV,
  type EnvKey,
  envNumber,
  LAUNCHER_ENV,
  LOG_LEVELS,
  readEnv,
  TFJS_BACKENDS,
} from './env.js';
export * from './errors.js';
export { createLogger, isLoopback, LEVELS, type Logger, type LogLevel } from './log.js';
