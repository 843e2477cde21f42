/** What the CLI tells every rank (and the peer programs) to run; shared by rank.ts, sweep.ts and peers.ts. */
import type { Algo } from '@ringwire/common';
import type { BenchDType, BenchOp, Collective } from './table.js';

export interface WorkerConfig {
  collective: Collective;
  /** Bytes per size: the whole buffer (all ranks' data for all-gather and reduce-scatter). */
  sizes: number[];
  iters: number;
  warmup: number;
  /** Untimed correctness runs per size. */
  checks: number;
  dtype: BenchDType;
  op: BenchOp;
  algo: Algo;
  root: number;
  /** Ordinary ArrayBuffer-backed arrays (copied through the core's staging buffers) instead of allocate(). */
  staged: boolean;
  /** Testing hook (RINGBENCH_CORRUPT_RANK / _BYTES): this rank flips one element of its result before the check. */
  corruptRank?: number;
  corruptBytes?: number;
}

/** Result lines from rank 0 (and from the peers' rank 0) start with this. */
export const LINE_TAG = 'RINGBENCH ';
