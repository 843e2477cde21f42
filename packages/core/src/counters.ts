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

/** The engine's running totals. `sent` is added to by the algorithms (through OpContext.stats). */
export class Counters {
  ops = 0;
  sent = 0;
  busBytes = 0;
  busyMs = 0;

  /** One completed op of `bytes` that took `ms` in the engine. */
  add(kind: Kind, bytes: number, n: number, ms: number): void {
    this.ops++;
    this.busBytes += bytes * busFactor(kind, n);
    this.busyMs += ms;
  }

  values(rank: number): CounterValues {
    return { rank, ops: this.ops, bytesSent: this.sent, busBytes: this.busBytes, busyMs: this.busyMs };
  }
}

/** The rendezvous key a rank leaves its counters under as it closes (ringrun's summary reads it). */
export const COUNTERS_KEY = 'ringwire/counters/';
