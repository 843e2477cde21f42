import { readFileSync } from 'node:fs';
import { DEFAULTS } from './defaults.js';
import { InvalidArgumentError } from './errors.js';

/**
 * Every environment variable ringwire reads, named and parsed here and nowhere else (as
 * Horovod's common header does). A malformed value is an InvalidArgumentError naming the
 * variable; an unset or empty one reads as undefined, so callers apply their own defaults.
 */

type Parser<T> = (raw: string, name: string) => T;

function bad(name: string, want: string, raw: string): InvalidArgumentError {
  return new InvalidArgumentError(`${name} must be ${want}, got ${JSON.stringify(raw)}`);
}

/** An integer >= min. */
const int =
  (min: number): Parser<number> =>
  (raw, name) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw bad(name, min === 1 ? 'a positive integer' : `an integer >= ${min}`, raw);
    return n;
  };

/** '0' or '1'. */
const flag: Parser<boolean> = (raw, name) => {
  if (raw !== '0' && raw !== '1') throw bad(name, '0 or 1', raw);
  return raw === '1';
};

const text: Parser<string> = (raw) => raw;

/** A file of PEM blocks (certificates or a key): its text, read now. */
const pemFile: Parser<string> = (raw, name) => {
  let pem: string;
  try {
    pem = readFileSync(raw, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`${name}: cannot read ${raw}: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) throw new InvalidArgumentError(`${name}: ${raw} holds no PEM block`);
  return pem;
};

const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw, name) => {
    if (!values.includes(raw as T)) throw bad(name, `one of ${values.join(', ')}`, raw);
    return raw as T;
  };

/** The algorithms `RINGWIRE_ALGO` and `init({ algo })` accept. */
export const ALGOS = ['auto', 'ring', 'tree', 'hierarchical'] as const;
export type Algo = (typeof ALGOS)[number];

/** The levels `RINGWIRE_LOG_LEVEL` accepts, least verbose first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The tfjs backends `RINGWIRE_TFJS_BACKEND` accepts. */
export const TFJS_BACKENDS = ['auto', 'webgpu', 'node-gpu', 'node', 'cpu'] as const;

interface Spec<T> {
  name: string;
  doc: string;
  parse: Parser<T>;
}
const spec = <T>(name: string, doc: string, parse: Parser<T>): Spec<T> => ({ name, doc, parse });

/** The table: key -> variable name, meaning, parser. The README's environment table mirrors it. */
export const ENV = {
  rank: spec('RINGWIRE_RANK', "this worker's rank (set by ringrun)", int(0)),
  size: spec('RINGWIRE_SIZE', 'number of workers (set by ringrun)', int(1)),
  localRank: spec('RINGWIRE_LOCAL_RANK', 'rank among the workers on this host (set by ringrun)', int(0)),
  localSize: spec('RINGWIRE_LOCAL_SIZE', 'workers on this host (set by ringrun)', int(1)),
  rendezvous: spec('RINGWIRE_RENDEZVOUS', 'ws://host:port of the rendezvous (set by ringrun)', text),
  jobId: spec('RINGWIRE_JOB_ID', "the job's id (set by ringrun; default 'default')", text),
  token: spec(
    'RINGWIRE_TOKEN',
    "the job's credential every connection proves it holds (set by ringrun; see `ringwire-rendezvous token`)",
    text,
  ),
  rendezvousSecret: spec(
    'RINGWIRE_RENDEZVOUS_SECRET',
    "a standalone rendezvous's secret, when no --secret-file is given (job credentials derive from it)",
    text,
  ),
  host: spec('RINGWIRE_HOST', 'the address peers use to reach this worker', text),
  timeoutMs: spec('RINGWIRE_TIMEOUT_MS', 'a collective without progress this long fails', int(1)),
  heartbeatTimeoutMs: spec(
    'RINGWIRE_HEARTBEAT_TIMEOUT_MS',
    'a rank silent this long is declared lost (default: max(5000, RINGWIRE_TIMEOUT_MS))',
    int(100),
  ),
  metricsIntervalMs: spec(
    'RINGWIRE_METRICS_INTERVAL_MS',
    'how often each rank reports its counters to the rendezvous (default 5000; 0: never)',
    int(0),
  ),
  algo: spec(
    'RINGWIRE_ALGO',
    'all-reduce/broadcast algorithm: auto | ring | tree | hierarchical',
    oneOf(ALGOS),
  ),
  minSize: spec(
    'RINGWIRE_MIN_SIZE',
    'an elastic job goes on while at least this many workers remain (set by ringrun --min-np)',
    int(1),
  ),
  maxSize: spec(
    'RINGWIRE_MAX_SIZE',
    'an elastic job never has more workers than this (set by ringrun --max-np)',
    int(1),
  ),
  elasticSettleMs: spec(
    'RINGWIRE_ELASTIC_SETTLE_MS',
    'an elastic generation forms this long after the last membership change (default 1000)',
    int(0),
  ),
  elasticTimeoutMs: spec(
    'RINGWIRE_ELASTIC_TIMEOUT_MS',
    'elastic.run fails when no new generation forms within this long (default 60000)',
    int(1),
  ),
  workerId: spec(
    'RINGWIRE_WORKER_ID',
    "a worker slot's stable identity across generations (set by ringrun; default host:pid)",
    text,
  ),
  sharedMemory: spec('RINGWIRE_SHM', '0 turns off shared memory between same-host peers', flag),
  noNative: spec('RINGWIRE_NO_NATIVE', '1 uses the JS kernels even when the addon loads', flag),
  logLevel: spec('RINGWIRE_LOG_LEVEL', 'error | warn | info | debug', oneOf(LOG_LEVELS)),
  timeline: spec(
    'RINGWIRE_TIMELINE',
    'record a Chrome trace: path.json (each rank writes path.<rank>.json; ringrun merges them)',
    text,
  ),
  tfjsBackend: spec('RINGWIRE_TFJS_BACKEND', '@ringwire/tfjs backend choice', oneOf(TFJS_BACKENDS)),
  tlsCert: spec(
    'RINGWIRE_TLS_CERT',
    "file: this worker's PEM certificate; with the key and CA, every link is TLS (wss, mutual)",
    pemFile,
  ),
  tlsKey: spec('RINGWIRE_TLS_KEY', "file: the certificate's PEM private key", pemFile),
  tlsCa: spec('RINGWIRE_TLS_CA', 'file: the PEM CA that signs every member of the job', pemFile),
  ringrunSsh: spec('RINGRUN_SSH', 'the ssh command ringrun starts remote workers with', text),
  tokenFile: spec(
    'RINGWIRE_TOKEN_FILE',
    'a file holding the job token (read when RINGWIRE_TOKEN is unset)',
    text,
  ),
  rendezvousPort: spec(
    'RINGWIRE_RENDEZVOUS_PORT',
    'rendezvous port when the address comes from an engine (default 29400 + job-id hash mod 1000)',
    int(1),
  ),
  // Engines (issue 14): read only when RINGWIRE_RANK is unset; see discovery.ts for the order.
  ompiRank: spec('OMPI_COMM_WORLD_RANK', 'Open MPI: rank', int(0)),
  ompiSize: spec('OMPI_COMM_WORLD_SIZE', 'Open MPI: size', int(0)),
  ompiLocalRank: spec('OMPI_COMM_WORLD_LOCAL_RANK', 'Open MPI: local rank', int(0)),
  ompiLocalSize: spec('OMPI_COMM_WORLD_LOCAL_SIZE', 'Open MPI: local size', int(0)),
  ompiJobId: spec('OMPI_MCA_ess_base_jobid', 'Open MPI: job id', text),
  pmiRank: spec('PMI_RANK', 'MPICH / Hydra: rank', int(0)),
  pmiSize: spec('PMI_SIZE', 'MPICH / Hydra: size', int(0)),
  mpichLocalRank: spec('MPI_LOCALRANKID', 'MPICH / Hydra: local rank', int(0)),
  mpichLocalSize: spec('MPI_LOCALNRANKS', 'MPICH / Hydra: local size', int(0)),
  pmiJobId: spec('PMI_KVSNAME', 'MPICH / Hydra: job id (the PMI key-value space)', text),
  slurmStepId: spec('SLURM_STEP_ID', 'Slurm: set in srun steps only (the batch script has none)', text),
  slurmRank: spec('SLURM_PROCID', 'Slurm: rank', int(0)),
  slurmSize: spec('SLURM_NTASKS', 'Slurm: size', int(0)),
  slurmLocalRank: spec('SLURM_LOCALID', 'Slurm: local rank', int(0)),
  slurmNodeId: spec('SLURM_NODEID', "Slurm: index of this task's node in the step", int(0)),
  slurmTasksPerNode: spec('SLURM_STEP_TASKS_PER_NODE', 'Slurm: tasks per node, e.g. 2(x3),1', text),
  slurmNodeList: spec('SLURM_STEP_NODELIST', "Slurm: the step's nodes, e.g. node[01-03],gpu5", text),
  slurmJobNodeList: spec('SLURM_JOB_NODELIST', "Slurm: the allocation's nodes", text),
  slurmJobId: spec('SLURM_JOB_ID', 'Slurm: job id', text),
  k8sIndex: spec('JOB_COMPLETION_INDEX', 'Kubernetes Indexed Job: rank (with RINGWIRE_SIZE)', int(0)),
  hostname: spec('HOSTNAME', 'Kubernetes: the pod hostname, <job>-<index> in an Indexed Job', text),
} as const;

export type EnvKey = keyof typeof ENV;
type Value<K extends EnvKey> = (typeof ENV)[K] extends Spec<infer T> ? T : never;

/** Reads and parses one variable; undefined when unset or empty. */
export function readEnv<K extends EnvKey>(
  key: K,
  env: NodeJS.ProcessEnv = process.env,
): Value<K> | undefined {
  const { name, parse } = ENV[key] as Spec<Value<K>>;
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : parse(raw, name);
}

/**
 * The liveness rule: a rank that sends nothing (frozen: SIGSTOP, swap, a debugger) is declared
 * lost after RINGWIRE_HEARTBEAT_TIMEOUT_MS, else after max(DEFAULTS.heartbeatTimeoutMs, the op
 * timeout when one is set), so that a pause its collectives would tolerate never kills the job.
 * (A rank whose process dies is detected at once through its closed sockets.)
 */
export function resolveHeartbeatTimeoutMs(
  explicit: { heartbeatTimeoutMs?: number; opTimeoutMs?: number } = {},
  env: NodeJS.ProcessEnv = process.env,
): number {
  return (
    explicit.heartbeatTimeoutMs ??
    readEnv('heartbeatTimeoutMs', env) ??
    Math.max(DEFAULTS.heartbeatTimeoutMs, explicit.opTimeoutMs ?? readEnv('timeoutMs', env) ?? 0)
  );
}

/** The variables ringrun sets for every worker: the launcher contract of DESIGN.md. */
export const LAUNCHER_ENV = [
  ENV.rank.name,
  ENV.size.name,
  ENV.localRank.name,
  ENV.localSize.name,
  ENV.rendezvous.name,
  ENV.jobId.name,
  ENV.token.name,
] as const;

/**
 * Parses a positive integer environment variable by name, or throws a clear error naming it.
 * @deprecated use `readEnv` with a key of `ENV`; kept for code that names arbitrary variables.
 */
export function envNumber(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : int(1)(raw, name);
}
