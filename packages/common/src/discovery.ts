import { ENV, readEnv } from './env.js';
import { InvalidArgumentError } from './errors.js';

/**
 * Where a worker learns its place in the job: ringrun's RINGWIRE_* variables, else the engine
 * that started it (Open MPI, MPICH/Hydra, a Slurm step, a Kubernetes Indexed Job). Pure: it
 * reads only the environment object it is given, so every case is a unit-tested fixture.
 */

/** Who supplied rank and size: ringrun / the user ('ringwire'), an engine, or nobody ('none'). */
export type Engine = 'ringwire' | 'openmpi' | 'mpich' | 'slurm' | 'kubernetes' | 'none';

/** The engines, in the order discovery consults them when RINGWIRE_RANK is unset. */
export const ENGINE_ORDER = ['openmpi', 'mpich', 'slurm', 'kubernetes'] as const;

export interface Discovery {
  engine: Engine;
  /** Undefined when nobody says (the rendezvous then assigns ranks, grouped by host). */
  rank?: number;
  size: number;
  localRank?: number;
  localSize?: number;
  /** ws://host:port; undefined when neither RINGWIRE_RENDEZVOUS nor an engine gives one. */
  rendezvous?: string;
  jobId: string;
  /**
   * Rank 0 started by an engine: it serves the rendezvous in-process when the address is its own
   * host and nothing answers there (torch's TCPStore pattern), so no separate server is needed.
   */
  mayServe: boolean;
}

/** The default rendezvous port for an engine's job: 29400 + a hash of the job id, so that two jobs sharing a node do not collide. */
export function defaultRendezvousPort(jobId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < jobId.length; i++) h = Math.imul(h ^ jobId.charCodeAt(i), 0x01000193);
  return 29400 + ((h >>> 0) % 1000);
}

interface Claim {
  engine: (typeof ENGINE_ORDER)[number];
  rank: number;
  size: number;
  localRank?: number;
  localSize?: number;
  /** The variables it came from, for error messages. */
  vars: string;
}

type Env = NodeJS.ProcessEnv;

/** Reads one engine's rank and size; both or neither must be set. */
function pair(
  engine: Claim['engine'],
  env: Env,
  rankKey: 'ompiRank' | 'pmiRank' | 'slurmRank' | 'k8sIndex',
  sizeKey: 'ompiSize' | 'pmiSize' | 'slurmSize' | 'size',
): Claim | undefined {
  const rank = readEnv(rankKey, env);
  const size = readEnv(sizeKey, env);
  const vars = `${ENV[rankKey].name}=${rank ?? '(unset)'}, ${ENV[sizeKey].name}=${size ?? '(unset)'}`;
  if (rank === undefined && size === undefined) return undefined;
  if (rank === undefined || size === undefined)
    throw new InvalidArgumentError(`partial ${engine} environment: ${vars}; both are needed`);
  if (size === 0) throw new InvalidArgumentError(`${engine} says the job has no workers: ${vars}`);
  if (rank >= size) throw new InvalidArgumentError(`${engine} rank is outside the size: ${vars}`);
  return { engine, rank, size, vars };
}

const CLAIMS: Record<Claim['engine'], (env: Env) => Claim | undefined> = {
  openmpi: (env) => {
    const c = pair('openmpi', env, 'ompiRank', 'ompiSize');
    return c && { ...c, localRank: readEnv('ompiLocalRank', env), localSize: readEnv('ompiLocalSize', env) };
  },
  mpich: (env) => {
    const c = pair('mpich', env, 'pmiRank', 'pmiSize');
    return (
      c && { ...c, localRank: readEnv('mpichLocalRank', env), localSize: readEnv('mpichLocalSize', env) }
    );
  },
  slurm: (env) => {
    // A batch script's SLURM_PROCID/NTASKS describe the script, not the processes it starts
    // (mpirun inside sbatch): only an srun step, which has SLURM_STEP_ID, places this process.
    if (readEnv('slurmStepId', env) === undefined) return undefined;
    const c = pair('slurm', env, 'slurmRank', 'slurmSize');
    if (!c) return undefined;
    const perNode = readEnv('slurmTasksPerNode', env);
    const localSize =
      perNode === undefined ? undefined : parseTasksPerNode(perNode)[readEnv('slurmNodeId', env) ?? 0];
    return { ...c, localRank: readEnv('slurmLocalRank', env), localSize };
  },
  kubernetes: (env) => {
    if (readEnv('k8sIndex', env) === undefined) return undefined;
    if (readEnv('size', env) === undefined)
      throw new InvalidArgumentError(
        `${ENV.k8sIndex.name} is set (a Kubernetes Indexed Job) but ${ENV.size.name} is not: set it to the Job's completions`,
      );
    const c = pair('kubernetes', env, 'k8sIndex', 'size');
    return c && { ...c, localRank: 0, localSize: 1 };
  },
};

/** Every engine whose variables are present, in ENGINE_ORDER; refuses engines that disagree. */
function claims(env: Env): Claim[] {
  const found = ENGINE_ORDER.map((e) => CLAIMS[e](env)).filter((c): c is Claim => c !== undefined);
  const mpi = (c: Claim) => c.engine === 'openmpi' || c.engine === 'mpich';
  for (const a of found)
    for (const b of found) {
      if (a === b) continue;
      // Two MPIs describe the same processes; Slurm with a different size is an enclosing
      // allocation (mpirun inside srun), so only the same size must give the same rank.
      const disagree = (mpi(a) && mpi(b) && a.size !== b.size) || (a.size === b.size && a.rank !== b.rank);
      if (disagree)
        throw new InvalidArgumentError(`${a.engine} and ${b.engine} disagree: ${a.vars} vs ${b.vars}`);
    }
  return found;
}

/** Reads rank, size, local rank and size, rendezvous and job id from `env` (see the README's table). */
export function discover(env: Env = process.env): Discovery {
  const explicitRank = readEnv('rank', env);
  const explicitSize = readEnv('size', env);
  if (explicitRank !== undefined) {
    const size = explicitSize ?? 1;
    if (explicitRank >= size)
      throw new InvalidArgumentError(
        `${ENV.rank.name}=${explicitRank} is outside ${ENV.size.name}=${explicitSize ?? '(unset: 1)'}`,
      );
    return {
      engine: 'ringwire',
      rank: explicitRank,
      size,
      localRank: readEnv('localRank', env),
      localSize: readEnv('localSize', env),
      rendezvous: readEnv('rendezvous', env),
      jobId: readEnv('jobId', env) ?? 'default',
      mayServe: false,
    };
  }
  const found = claims(env);
  const [c] = found;
  if (!c) {
    return {
      engine: 'none',
      size: explicitSize ?? 1,
      localRank: readEnv('localRank', env),
      rendezvous: readEnv('rendezvous', env),
      jobId: readEnv('jobId', env) ?? 'default',
      mayServe: false,
    };
  }
  if (explicitSize !== undefined && explicitSize !== c.size)
    throw new InvalidArgumentError(`${ENV.size.name}=${explicitSize} disagrees with ${c.engine}: ${c.vars}`);
  const jobId = readEnv('jobId', env) ?? engineJobId(c.engine, env);
  const localRank = readEnv('localRank', env) ?? c.localRank;
  // Engines describing the same processes complete each other (srun --mpi=pmi2: PMI_* and SLURM_*).
  const same = found.filter((o) => o.size === c.size);
  const localSize = readEnv('localSize', env) ?? same.find((o) => o.localSize !== undefined)?.localSize;
  let rendezvous = readEnv('rendezvous', env);
  if (rendezvous === undefined) {
    const port = readEnv('rendezvousPort', env) ?? defaultRendezvousPort(jobId);
    rendezvous = `ws://${rendezvousHost(same, localSize, env)}:${port}`;
  }
  return {
    engine: c.engine,
    rank: c.rank,
    size: c.size,
    localRank,
    localSize,
    rendezvous,
    jobId,
    mayServe: c.rank === 0,
  };
}

function engineJobId(engine: Claim['engine'], env: Env): string {
  const id =
    engine === 'openmpi'
      ? readEnv('ompiJobId', env)
      : engine === 'mpich'
        ? readEnv('pmiJobId', env)
        : engine === 'slurm'
          ? readEnv('slurmJobId', env) && `${readEnv('slurmJobId', env)}.${readEnv('slurmStepId', env)}`
          : k8sJobName(env);
  return id === undefined ? 'default' : `${engine}-${id}`;
}

/** An Indexed Job's pods are named <job>-<index>; undefined when HOSTNAME does not say. */
function k8sJobName(env: Env): string | undefined {
  const host = readEnv('hostname', env);
  const suffix = `-${readEnv('k8sIndex', env)}`;
  return host?.endsWith(suffix) && host.length > suffix.length ? host.slice(0, -suffix.length) : undefined;
}

/** Rank 0's host, as the engines tell it. */
function rendezvousHost(same: Claim[], localSize: number | undefined, env: Env): string {
  const [c] = same;
  if (localSize === c.size) return '127.0.0.1'; // every rank on this host
  if (same.some((o) => o.engine === 'slurm')) {
    const list = readEnv('slurmNodeList', env) ?? readEnv('slurmJobNodeList', env);
    if (list) return parseSlurmNodeList(list)[0];
  }
  if (c.engine === 'kubernetes') {
    // The headless Service is named after the Job (as `ringrun k8s` writes it): pod 0 is <job>-0.<job>.
    const job = k8sJobName(env);
    if (job) return `${job}-0.${job}`;
  }
  throw new InvalidArgumentError(
    `${c.engine} does not say where rank 0 runs (${c.vars}, local size ${localSize ?? 'unknown'}): ` +
      `set ${ENV.rendezvous.name} to rank 0's host, e.g. ${passVar(c.engine, `${ENV.rendezvous.name}=ws://node1:29400`)}`,
  );
}

/** How to give every rank a variable with this engine. */
function passVar(engine: Engine, assignment: string): string {
  const [name, value] = assignment.split('=');
  switch (engine) {
    case 'openmpi':
      return `mpirun -x ${assignment} -np N node app.mjs`;
    case 'mpich':
      return `mpiexec -genv ${name} ${value} -n N node app.mjs`;
    case 'slurm':
      return `export ${assignment} before srun or sbatch (they pass the environment on)`;
    case 'kubernetes':
      return `an env entry ${name} in the pod template`;
    default:
      return `${assignment} in every worker's environment`;
  }
}

/** How to pass a job token with this engine (shown when the token is missing). */
export function tokenHint(engine: Engine): string {
  switch (engine) {
    case 'openmpi':
      return 'export RINGWIRE_TOKEN=$(openssl rand -hex 16); mpirun -x RINGWIRE_TOKEN -np N node app.mjs';
    case 'mpich':
      return 'export RINGWIRE_TOKEN=$(openssl rand -hex 16); mpiexec -genvlist RINGWIRE_TOKEN -n N node app.mjs';
    case 'kubernetes':
      return 'a Secret passed as env RINGWIRE_TOKEN (valueFrom.secretKeyRef), as `ringrun k8s` writes it';
    default:
      return `${passVar(engine, 'RINGWIRE_TOKEN=$(openssl rand -hex 16)')}, or RINGWIRE_TOKEN_FILE=<a file every rank can read>`;
  }
}

/**
 * Expands a Slurm host list without scontrol: `node[01-03,07],gpu5` -> node01 node02 node03
 * node07 gpu5; several bracket groups in one name multiply (`r[1-2]n[1-2]`).
 */
export function parseSlurmNodeList(list: string): string[] {
  const out: string[] = [];
  for (const name of splitTop(list)) if (name) out.push(...expandName(name, list));
  if (out.length === 0) throw new InvalidArgumentError(`empty Slurm node list ${JSON.stringify(list)}`);
  return out;
}

/** Splits on commas outside brackets. */
function splitTop(list: string): string[] {
  const parts: string[] = [];
  let depth = 0,
    start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '[') depth++;
    else if (list[i] === ']') depth--;
    else if (list[i] === ',' && depth === 0) parts.push(list.slice(start, i)), (start = i + 1);
  }
  parts.push(list.slice(start));
  return parts.map((p) => p.trim());
}

function expandName(name: string, list: string): string[] {
  const bad = () => new InvalidArgumentError(`malformed Slurm node list ${JSON.stringify(list)}`);
  const open = name.indexOf('[');
  if (open < 0) {
    if (name.includes(']')) throw bad();
    return [name];
  }
  const close = name.indexOf(']', open);
  if (close < 0) throw bad();
  const prefix = name.slice(0, open);
  const rest = expandName(name.slice(close + 1), list);
  const out: string[] = [];
  for (const range of name.slice(open + 1, close).split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
    if (!m) throw bad();
    const lo = Number(m[1]),
      hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi - lo > 100_000) throw bad();
    for (let i = lo; i <= hi; i++) {
      const n = String(i).padStart(m[1].length, '0');
      for (const r of rest) out.push(prefix + n + r);
    }
  }
  return out;
}

/** Expands Slurm's tasks-per-node notation: `2(x3),1` -> [2, 2, 2, 1]. */
export function parseTasksPerNode(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`malformed Slurm tasks per node ${JSON.stringify(spec)}`);
    for (let i = 0; i < Number(m[2] ?? 1); i++) out.push(Number(m[1]));
  }
  return out;
}
