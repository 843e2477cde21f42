import type { Algo, ErrorCode, TlsMaterial } from '@ringwire/common';
import type { TimelineExport } from './timeline.js';
import type { Descriptor } from './wire.js';

/** What the caller's thread hands the engine thread at start (plain data: it is cloned). */
export interface EngineConfig {
  rendezvous: string;
  jobId: string;
  token: string;
  size: number;
  rank?: number;
  localRank?: number;
  host?: string;
  joinTimeoutMs: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  /** This rank is declared lost after this long without a word to the rendezvous (resolveHeartbeatTimeoutMs). */
  heartbeatTimeoutMs: number;
  stallWarningMs: number;
  chunkBytes: number;
  credits: number;
  crossoverBytes: number;
  /** The default algorithm of each op (RINGWIRE_ALGO). */
  algo: Algo;
  /** Same-host peers exchange payloads through shared memory (RINGWIRE_SHM; shared.ts). */
  sharedMemory: boolean;
  /** How often the counters go to the rendezvous (RINGWIRE_METRICS_INTERVAL_MS); 0: never. */
  metricsIntervalMs: number;
  logLevel?: string;
  /** Record a timeline (RINGWIRE_TIMELINE; the caller's thread writes the file). */
  timeline?: string;
  /** An elastic job's bounds (and settle window, when RINGWIRE_ELASTIC_SETTLE_MS is set). */
  elastic?: { min: number; max: number; settleMs?: number };
  workerId?: string;
  /** TLS on every link (RINGWIRE_TLS_CERT, _KEY, _CA; readTls): wss to the rendezvous, mutual TLS between peers. */
  tls?: TlsMaterial;
}

export type { Algo };

/**
 * One collective, posted to the engine. `buf` is shared (no tensor bytes are copied), or an
 * ordinary buffer in the transfer list (moved here, and moved back in the reply's `buf`): the
 * caller's array with { transfer: true }, or a staging buffer too large to keep (staging.ts).
 */
export interface OpRequest {
  t: 'op';
  id: number;
  seq: number;
  desc: Descriptor;
  buf: SharedArrayBuffer | ArrayBuffer;
  byteOffset: number;
  byteLength: number;
  algo: Algo;
  /** All-reduce only: `buf` holds float32, reduced as desc.dtype (float16/bfloat16) by a narrowed copy. */
  narrow?: boolean;
  /** All-gather only: where the result goes (else a new buffer, transferred back). */
  out?: { buf: SharedArrayBuffer; byteOffset: number; byteLength: number };
  /** Set by the engine as the op arrives, when the timeline is on (performance.now()). */
  arrived?: number;
}

export type ErrorJSON = { code: ErrorCode; message: string; rank?: number; ranks?: number[] };

export type EngineReply =
  | {
      t: 'ready';
      rank: number;
      size: number;
      localRank: number;
      localSize: number;
      generation: number;
      host: string;
      port: number;
      kernels: string;
      sharedMemoryPeers: number[];
      /** Added to this rank's clock gives rank 0's (measured only with a timeline; else 0). */
      clockOffsetUs: number;
      clockRttUs: number;
    }
  | { t: 'init-failed'; error: ErrorJSON }
  /** Buffers moved to the caller: `out`, all-gather's new result; `buf`, the op's own ordinary buffer. */
  | {
      t: 'done';
      id: number;
      algo?: string;
      range?: [number, number];
      out?: ArrayBuffer;
      buf?: ArrayBuffer;
      segs?: [number, number][];
    }
  | { t: 'op-failed'; id: number; error: ErrorJSON }
  | { t: 'failed'; error: ErrorJSON }
  /** Elastic jobs: workers wait to join the next generation. */
  | { t: 'membership'; generation: number; waiting: number }
  | { t: 'closed'; timeline?: TimelineExport };
