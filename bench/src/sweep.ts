import { fileURLToPath } from 'node:url';
import { launch } from '@ringwire/run';
import type { DType, ReduceOp } from 'ringwire';
import type { Collective, Row } from './metrics.js';

export interface SweepOptions {
  collective: Collective;
  np: number;
  sizes: number[];
  iters: number;
  warmup: number;
  dtype: DType;
  op: ReduceOp;
  algo: 'auto' | 'ring' | 'tree';
  staged?: boolean;
  /** Called with (done, total) as the sweep advances. */
  progress?: (done: number, total: number) => void;
  /** Extra environment for the ranks (tests inject RINGBENCH_CORRUPT_RANK). */
  env?: Record<string, string>;
}

const RANK = fileURLToPath(new URL('./rank.js', import.meta.url));

/** Runs the sweep on `np` local ranks and returns rank 0's rows. */
export async function runSweep(o: SweepOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const errors: string[] = [];
  const config = { collective: o.collective, sizes: o.sizes, iters: o.iters, warmup: o.warmup, dtype: o.dtype, op: o.op, algo: o.algo, staged: !!o.staged };
  const result = await launch({
    command: process.execPath,
    args: [RANK],
    np: o.np,
    env: { RINGBENCH_CONFIG: JSON.stringify(config), ...o.env },
    stdout: {
      write: (chunk: string) => {
        for (const line of chunk.split('\n')) {
          const json = line.replace(/^\[\d+\] /, '');
          if (!json.startsWith('{"event"')) continue;
          const m = JSON.parse(json) as { event: string; done?: number; total?: number } & Row;
          if (m.event === 'row') {
            const { event: _e, ...row } = m;
            rows.push(row);
          } else if (m.event === 'progress') o.progress?.(m.done!, m.total!);
        }
      },
    },
    stderr: { write: (chunk: string) => errors.push(chunk) },
    log: (m) => errors.push(`ringrun: ${m}\n`),
  });
  if (result.code !== 0) throw new Error(`the benchmark ranks failed (${result.reason ?? `exit ${result.code}`}):\n${errors.join('').slice(-4000)}`);
  return rows;
}
