import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  ALGOS,
  type Algo,
  DEFAULTS,
  discover,
  ENV,
  type Engine,
  InvalidArgumentError,
  LOG_LEVELS,
  readEnv,
  readTls,
  resolveHeartbeatTimeoutMs,
  tokenHint,
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
  /** Job token (RINGWIRE_TOKEN, else the file RINGWIRE_TOKEN_FILE); required when the rendezvous is not on loopback or an engine started the job. */
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
  /** Record a Chrome trace; this rank writes path.<rank>.json at close (RINGWIRE_TIMELINE). */
  timeline?: string;
  /**
   * How often this rank reports its counters to the rendezvous for /metrics and the live job
   * page (RINGWIRE_METRICS_INTERVAL_MS, default DEFAULTS.metricsIntervalMs = 5 s; 0: never).
   */
  metricsIntervalMs?: number;
  /**
   * Join an elastic job of min..max workers (RINGWIRE_MIN_SIZE / RINGWIRE_MAX_SIZE; either one
   * makes the job elastic): the rendezvous numbers ranks per generation, so `rank` is ignored,
   * and `size` is the initial size. Use through `elastic.run`.
   */
  elastic?: { min: number; max: number };
  /** This worker's stable identity in an elastic job (RINGWIRE_WORKER_ID; default host:pid). */
  workerId?: string;
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

/** The engine's configuration plus what init itself needs: who started the job, whether to serve. */
export type ResolvedConfig = Omit<EngineConfig, 'rendezvous'> & {
  rendezvous?: string;
  /** Who gave rank and size (see @ringwire/common's discover). */
  engine: Engine;
  /** Rank 0 under an engine: serve the rendezvous in-process if nothing answers at its address. */
  mayServe: boolean;
};

/** Resolves options + environment into the engine's configuration, rejecting anything malformed. */
export function resolveConfig(o: InitOptions, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('init options must be an object');
  const found = discover(env);
  const size = int('size', o.size, 1) ?? found.size;
  const elastic = resolveElastic(o, size, env);
  // An elastic job's ranks come from the rendezvous, per generation.
  const rank = elastic ? undefined : (int('rank', o.rank, 0) ?? found.rank);
  const token = str('token', o.token) ?? readToken(env);
  // An engine started this worker: it cannot rely on a launcher's loopback-only rendezvous.
  if (!token && o.rank === undefined && found.engine !== 'ringwire' && found.engine !== 'none')
    throw new InvalidArgumentError(
      `no job token under ${found.engine}: every rank needs the same ${ENV.token.name} or ${ENV.tokenFile.name}, e.g. ${tokenHint(found.engine)}`,
    );
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
    rendezvous: str('rendezvous', o.rendezvous) ?? found.rendezvous,
    jobId: str('jobId', o.jobId) ?? found.jobId,
    token,
    host: str('host', o.host) ?? readEnv('host', env),
    size,
    rank,
    localRank: elastic ? undefined : (int('localRank', o.localRank, 0) ?? found.localRank),
    engine: found.engine,
    mayServe: found.mayServe && rank === 0,
    joinTimeoutMs:
      int('joinTimeoutMs', o.joinTimeoutMs, 1) ??
      (elastic ? (readEnv('elasticTimeoutMs', env) ?? DEFAULTS.elasticTimeoutMs) : DEFAULTS.joinTimeoutMs),
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
    timeline: str('timeline', o.timeline) ?? readEnv('timeline', env),
    algo,
    sharedMemory: bool('sharedMemory', o.sharedMemory) ?? readEnv('sharedMemory', env) ?? true,
    metricsIntervalMs:
      int('metricsIntervalMs', o.metricsIntervalMs, 0) ??
      readEnv('metricsIntervalMs', env) ??
      DEFAULTS.metricsIntervalMs,
    elastic,
    workerId: elastic
      ? (str('workerId', o.workerId) ?? readEnv('workerId', env) ?? `${hostname()}:${process.pid}`)
      : undefined,
    tls: readTls(env),
  };
}

/** RINGWIRE_TOKEN, else the first line of the file RINGWIRE_TOKEN_FILE (a mounted Secret, shared storage), else ''. */
function readToken(env: NodeJS.ProcessEnv): string {
  const token = readEnv('token', env);
  if (token) return token;
  const file = readEnv('tokenFile', env);
  if (!file) return '';
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/)[0].trim();
  } catch (err) {
    throw new InvalidArgumentError(`${ENV.tokenFile.name}=${file} cannot be read: ${(err as Error).message}`);
  }
}

/** The elastic bounds from `{ elastic }` or RINGWIRE_MIN_SIZE/MAX_SIZE; undefined for a fixed-size job. */
function resolveElastic(o: InitOptions, size: number, env: NodeJS.ProcessEnv): EngineConfig['elastic'] {
  const given = o.elastic;
  if (given !== undefined && (given === null || typeof given !== 'object'))
    throw new InvalidArgumentError('elastic must be an object { min, max }');
  const min = int('elastic.min', given?.min, 1) ?? readEnv('minSize', env);
  const max = int('elastic.max', given?.max, 1) ?? readEnv('maxSize', env);
  if (min === undefined && max === undefined) return undefined;
  const lo = min ?? 1;
  const hi = max ?? Math.max(size, lo);
  if (lo > hi || size < lo || size > hi)
    throw new InvalidArgumentError(
      `elastic bounds must satisfy min <= size <= max (${ENV.minSize.name}=${lo}, ${ENV.size.name}=${size}, ${ENV.maxSize.name}=${hi})`,
    );
  const settleMs = readEnv('elasticSettleMs', env);
  return { min: lo, max: hi, ...(settleMs === undefined ? {} : { settleMs }) };
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
