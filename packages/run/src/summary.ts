import type { CounterValues } from 'ringwire';

/** How one worker ended, for the end-of-job summary. */
export interface WorkerSummary {
  rank: number;
  host: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** What the rank reported as it closed its communicator (none: it did not close one cleanly). */
  counters?: CounterValues;
}

const MiB = 1024 * 1024;

/**
 * The summary lines, one per worker: exit, wall time, payload bytes sent to peers and the mean bus
 * bandwidth of its collectives (nccl-tests' busbw: bytes x factor / time in the engine).
 */
export function summaryLines(workers: WorkerSummary[]): string[] {
  return workers
    .sort((a, b) => a.rank - b.rank)
    .map((w) => {
      const exit = w.signal ? `killed by ${w.signal}` : `exit ${w.code ?? '?'}`;
      const c = w.counters;
      const traffic = c
        ? `sent ${c.bytesSent} B (${(c.bytesSent / MiB).toFixed(1)} MiB), mean busbw ${
            c.busyMs > 0 ? (c.busBytes / c.busyMs / 1e6).toFixed(3) : '0.000'
          } GB/s over ${c.ops} ops`
        : 'no counters (the communicator was not closed)';
      return `summary: rank ${w.rank} (${w.host}): ${exit}, ${(w.wallMs / 1000).toFixed(2)} s, ${traffic}`;
    });
}
