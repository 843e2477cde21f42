/** Runs a ringwire sweep: starts the ranks (rank.ts) through @ringwire/run's launch() and collects rank 0's rows. */
import { fileURLToPath } from 'node:url';
import { type HostSlots, launch } from '@ringwire/run';
import { LINE_TAG, type WorkerConfig } from './config.js';
import type { RawRow } from './table.js';

const RANK = fileURLToPath(new URL('./rank.js', import.meta.url));

export interface ProgressEvent {
  bytes: number;
  phase: 'warmup' | 'timed' | 'check';
  /** Iterations finished since the last event. */
  done: number;
}

export interface SweepRun {
  np: number;
  config: WorkerConfig;
  hosts?: HostSlots[];
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
  onRow?: (row: RawRow) => void;
  /** Output of the ranks that is not a result line, and launcher messages. */
  log?: (line: string) => void;
}

/** A sweep that failed; `code` is the exit code ringbench passes on. */
export class SweepError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

/** Runs one sweep (every size) with the given implementation and returns its raw rows. */
export async function runSweep(o: SweepRun): Promise<{ rows: RawRow[]; kernels?: string }> {
  const rows: RawRow[] = [];
  let kernels: string | undefined;
  const tail: string[] = [];
  const log = (line: string) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    o.log?.(line);
  };
  const onLine = (line: string) => {
    const m = /^\[(\d+)\] (.*)$/.exec(line);
    const text = m ? m[2] : line;
    if (m?.[1] === '0' && text.startsWith(LINE_TAG)) {
      const ev = JSON.parse(text.slice(LINE_TAG.length)) as { t: string } & RawRow &
        ProgressEvent & { kernels?: string };
      if (ev.t === 'row') {
        const { t: _t, ...row } = ev;
        rows.push(row);
        o.onRow?.(row);
      } else if (ev.t === 'progress') o.onProgress?.({ bytes: ev.bytes, phase: ev.phase, done: ev.done });
      else if (ev.t === 'start') kernels = ev.kernels;
    } else if (line.trim()) log(line);
  };
  const sink = { write: (chunk: string) => void chunk.split('\n').forEach((l) => l && onLine(l)) };
  const result = await launch({
    command: process.execPath,
    args: ['--expose-gc', RANK],
    np: o.np,
    hosts: o.hosts,
    env: { RINGBENCH_CONFIG: JSON.stringify(o.config) },
    stdout: sink,
    stderr: sink,
    log: (m) => log(`ringrun: ${m}`),
    signal: o.signal,
    timeoutMs: o.timeoutMs,
    startTimeoutMs: 60_000,
  });
  if (result.code !== 0)
    throw new SweepError(
      `the ringwire ranks failed: ${result.reason ?? `exit code ${result.code}`}\n${tail.join('\n')}`,
      result.code,
    );
  return { rows, kernels };
}
