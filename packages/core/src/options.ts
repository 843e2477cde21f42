import {
  ALGOS,
  type Algo,
  DEFAULTS,
  ENV,
  InvalidArgumentError,
  LOG_LEVELS,
  readEnv,
  readTls,
  resolveHeartbeatTimeoutMs,
} from '@ringwire/common';
import type { EngineConfig } from './messages.js';

/**
 * Options of `init()`. Each falls back to its environment variable (set by `ringrun`), then to
 * the default in @ringwire/common's DEFAULTS (environment names: its ENV table).
 */
export interface InitOptions {
  /** ws://host:port of the rendezvous (RINGWIRE_RENDEZVOUS). Without it, size 1 runs alone. */
  rendezvous?: string;
  /** This worker's rank (RINGWIRE_RANK); omitted: the rendezvous assigns one, grouped by host. */
  rank?: number;
  /** Number of workers (RINGWIRE_SIZE). */
  size?: number;
  /** RINGWIRE_LOCAL_RANK; omitted: the rendezvous derives it from the hosts. */
  localRank?: number;
  /** Job token (RINGWIRE_TOKEN); required when the rendezvous is not on loopback. */
  token?: string;
  /** Job id (RINGWIRE_JOB_ID), default 'default'. */
  jobId?: string;
  /** Address peers use to reach this worker (RINGWIRE_HOST); default: the address this host uses to reach the rendezvous. */
  host?: string;
  /** A collective with no progress for this long fails with RINGWIRE_ERR_TIMEOUT (RINGWIRE_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * The rendezvous declares this rank lost after this long without a heartbeat (a frozen process;
   * a dead one is seen at once). RINGWIRE_HEARTBEAT_TIMEOUT_MS; default max(5 s, timeoutMs when set).
   */
  heartbeatTimeoutMs?: number;
  /** After this long without progress a warning names the ranks that have not arrived (default: 60 s or half the timeout). */
  stallWarningMs?: number;
  /** How long init waits for all workers to join. */
  joinTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Force an algorithm for all-reduce and broadcast (RINGWIRE_ALGO=ring|tree). */
  algo?: Algo;
  chunkBytes?: number;
  credits?: number;
  crossoverBytes?: number;
  /**
   * Peers on the same host put chunk payloads in shared memory and send only frame headers over
   * their WebSocket (RINGWIRE_SHM=0|1, default on; needs the native addon, else TCP carries all).
   */
  sharedMemory?: boolean;
  /** error | warn | info | debug (RINGWIRE_LOG_LEVEL). */
  logLevel?: string;
}

function int(name: string, v: unknown, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function bool(name: string, v: unknown): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean')
    throw new InvalidArgumentError(`${name} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Resolves options + environment into the engine's configuration, rejecting anything malformed. */
export function resolveConfig(
  o: InitOptions,
  env: NodeJS.ProcessEnv = process.env,
): Omit<EngineConfig, 'rendezvous'> & { rendezvous?: string } {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('init options must be an object');
  const size = int('size', o.size, 1) ?? readEnv('size', env) ?? 1;
  const rank = int('rank', o.rank, 0) ?? readEnv('rank', env);
  if (rank !== undefined && rank >= size)
    throw new InvalidArgumentError(`rank ${rank} is out of range for size ${size}`);
  const algo = oneOf('algo', o.algo, ALGOS) ?? readEnv('algo', env) ?? 'auto';
  const chunkBytes = int('chunkBytes', o.chunkBytes, 1024) ?? DEFAULTS.chunkBytes;
  const givenTimeoutMs = int('timeoutMs', o.timeoutMs, 1) ?? readEnv('timeoutMs', env);
  const timeoutMs = givenTimeoutMs ?? DEFAULTS.opTimeoutMs;
  const heartbeatTimeoutMs = resolveHeartbeatTimeoutMs(
    { heartbeatTimeoutMs: int('heartbeatTimeoutMs', o.heartbeatTimeoutMs, 100), opTimeoutMs: givenTimeoutMs },
    env,
  );
  if (chunkBytes % 8 !== 0)
    throw new InvalidArgumentError(`chunkBytes must be a multiple of 8, got ${chunkBytes}`);
  return {
    rendezvous: str('rendezvous', o.rendezvous) ?? readEnv('rendezvous', env),
    jobId: str('jobId', o.jobId) ?? readEnv('jobId', env) ?? 'default',
    token: str('token', o.token) ?? env[ENV.token.name] ?? '',
    host: str('host', o.host) ?? readEnv('host', env),
    size,
    rank,
    localRank: int('localRank', o.localRank, 0) ?? readEnv('localRank', env),
    joinTimeoutMs: int('joinTimeoutMs', o.joinTimeoutMs, 1) ?? DEFAULTS.joinTimeoutMs,
    connectTimeoutMs: int('connectTimeoutMs', o.connectTimeoutMs, 1) ?? DEFAULTS.connectTimeoutMs,
    timeoutMs,
    heartbeatTimeoutMs,
    stallWarningMs:
      int('stallWarningMs', o.stallWarningMs, 1) ??
      Math.min(DEFAULTS.stallWarningMs, Math.ceil(timeoutMs / 2)),
    chunkBytes,
    credits: int('credits', o.credits, 1) ?? DEFAULTS.credits,
    crossoverBytes: int('crossoverBytes', o.crossoverBytes, 0) ?? DEFAULTS.crossoverBytes,
    logLevel: oneOf('logLevel', o.logLevel, LOG_LEVELS) ?? readEnv('logLevel', env),
    algo,
    sharedMemory: bool('sharedMemory', o.sharedMemory) ?? readEnv('sharedMemory', env) ?? true,
    tls: readTls(env),
  };
}

function str(name: string, v: unknown): string | undefined {
  if (v !== undefined && typeof v !== 'string') throw new InvalidArgumentError(`${name} must be a string`);
  return v;
}

function oneOf<T extends string>(name: string, v: unknown, values: readonly T[]): T | undefined {
  if (v !== undefined && !values.includes(v as T))
    throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T | undefined;
}
