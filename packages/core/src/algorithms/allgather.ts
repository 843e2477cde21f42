import { ProtocolError } from '@ringwire/rendezvous';
import { ringAllgather } from './ring.js';
import type { OpContext, Range } from './context.js';

/**
 * All-gather with per-rank lengths: a ring all-gather of the lengths (8 bytes per rank), then a
 * ring all-gather of the data into a buffer laid out rank by rank. Returns the layout.
 */
export async function allgather(ctx: OpContext, input: Uint8Array, alloc: (bytes: number) => Uint8Array): Promise<{ out: Uint8Array; segs: Range[] }> {
  const { rank: r, size: n } = ctx;
  const counts = new Float64Array(n);
  counts[r] = input.length;
  const countBytes = new Uint8Array(counts.buffer);
  const countSegs = Array.from({ length: n }, (_, i) => [i * 8, 8] as const);
  await ringAllgather({ ...ctx, elem: 8 }, countBytes, countSegs);
  const segs: Range[] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isSafeInteger(counts[i]) || counts[i] < 0 || counts[i] % ctx.elem) throw new ProtocolError(`rank ${i} announced ${counts[i]} bytes for all-gather`, { rank: i });
    segs.push([off, counts[i]]);
    off += counts[i];
  }
  const out = alloc(off);
  out.set(input, segs[r][0]);
  await ringAllgather(ctx, out, segs, n - 1);
  return { out, segs };
}
