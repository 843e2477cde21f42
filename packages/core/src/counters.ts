import type { Kind } from './wire.js';

/** nccl-tests' bus-bandwidth factor of a collective over n ranks (DESIGN.md, Benchmark). */
export function busFactor(kind: Kind, n: number): number {
  if (n < 2) return 0;
  if (kind === 'allreduce') return (2 * (n - 1)) / n;
  if (kind === 'allgather' || kind === 'reducescatter') return (n - 1) / n;
  return kind === 'broadcast' ? 1 : 0;
}

/** What one rank's engine did over the job: the end-of-job summary reports these. */
export interface CounterValues {
  rank: number;
  /** Collectives completed. */
  ops: number;
  /** Payload bytes this rank handed to its peers (frame headers not counted). */
  bytesSent: number;
  /** Sum over ops of bytes x busFactor, and of their time in the engine: busbw = busBytes / busyMs. */
  busBytes: number;
  busyMs: number;
}

/** The rendezvous key a rank leaves its counters under as it closes (ringrun's summary reads it). */
export const COUNTERS_KEY = 'ringwire/counters/';
