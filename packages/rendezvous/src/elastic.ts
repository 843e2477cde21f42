import { RendezvousError } from '@ringwire/common';
import type { ElasticBounds } from './protocol.js';

/** One formed generation of an elastic job, as `/status` shows it. */
export interface GenerationRecord {
  generation: number;
  /** When it formed (ISO 8601). */
  at: string;
  size: number;
  /** Worker ids that were not in the previous generation. */
  joined: string[];
  /** Worker ids of the previous generation that are not in this one. */
  left: string[];
  reason: string;
}

/**
 * What the server keeps of an elastic job across its generations (and across the moments when
 * every member has left one generation and none has joined the next yet).
 */
export interface ElasticState {
  min: number;
  max: number;
  settleMs: number;
  history: GenerationRecord[];
  /** The last generation's ranks by worker id: survivors keep this order. */
  order: Map<string, number>;
  /** Why a member of the current generation went away, by worker id (for the history). */
  leftWhy: Map<string, string>;
  /** When the membership last changed (a join, a leave, a lost connection). */
  lastChange: number;
  /** When the job's first worker joined. */
  started: number;
  settleTimer?: NodeJS.Timeout;
}

/** Validates a join's elastic bounds against its target size; throws a RendezvousError naming the problem. */
export function parseBounds(v: unknown, size: number, defaultSettleMs: number): Required<ElasticBounds> {
  const b = (v ?? {}) as Record<string, unknown>;
  const { min, max } = b;
  const settleMs = b.settleMs ?? defaultSettleMs;
  if (!Number.isInteger(min) || (min as number) < 1)
    throw new RendezvousError(`join: elastic.min must be a positive integer, got ${min}`);
  if (!Number.isInteger(max) || (max as number) < (min as number))
    throw new RendezvousError(`join: elastic.max must be an integer >= min (${min}), got ${max}`);
  if (size < (min as number) || size > (max as number))
    throw new RendezvousError(`join: size ${size} is outside the elastic bounds ${min}..${max}`);
  if (!Number.isInteger(settleMs) || (settleMs as number) < 0)
    throw new RendezvousError(`join: elastic.settleMs must be an integer >= 0, got ${settleMs}`);
  return { min: min as number, max: max as number, settleMs: Math.min(settleMs as number, 2 ** 31 - 1) };
}

/** A new job's elastic state. */
export function newElasticState(bounds: Required<ElasticBounds>): ElasticState {
  const now = Date.now();
  return { ...bounds, history: [], order: new Map(), leftWhy: new Map(), lastChange: now, started: now };
}

interface Candidate {
  workerId: string;
  host: string;
  port: number;
  /** Arrival order among the waiting workers. */
  arrived?: number;
}

/**
 * The members of the next generation, in rank order: survivors keep their previous order,
 * newcomers follow, grouped by host (in arrival order within a host); at most `max` of them.
 */
export function nextOrder<T extends Candidate>(
  waiting: T[],
  previous: Map<string, number>,
  max: number,
): T[] {
  const survivors = waiting
    .filter((m) => previous.has(m.workerId))
    .sort((a, b) => previous.get(a.workerId)! - previous.get(b.workerId)!);
  const fresh = waiting.filter((m) => !previous.has(m.workerId));
  const firstSeen = new Map<string, number>();
  const at = (m: T) => m.arrived ?? 0;
  for (const m of fresh) if (!firstSeen.has(m.host)) firstSeen.set(m.host, at(m));
  fresh.sort((a, b) => firstSeen.get(a.host)! - firstSeen.get(b.host)! || at(a) - at(b));
  return [...survivors, ...fresh].slice(0, max);
}

/** The history record of a generation formed from `workers` (by rank) after `state.order`. */
export function record(state: ElasticState, generation: number, workers: string[]): GenerationRecord {
  const now = new Set(workers);
  const joined = workers.filter((w) => !state.order.has(w));
  const left = [...state.order.keys()].filter((w) => !now.has(w));
  const why = [
    ...left.map((w) => `${w} left (${state.leftWhy.get(w) ?? 'did not re-join'})`),
    ...joined.map((w) => `${w} joined`),
  ];
  const reason = state.order.size === 0 ? 'start' : why.length ? why.join('; ') : 'membership renewed';
  return { generation, at: new Date().toISOString(), size: workers.length, joined, left, reason };
}
