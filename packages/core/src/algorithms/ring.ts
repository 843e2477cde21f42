import { mod, recvRange, reducer, copyInto, segments, sendRange, type OpContext, type Range } from './context.js';

/**
 * Ring reduce-scatter: n-1 steps; at step k rank r sends segment r-k-1 to r+1 and reduces
 * segment r-k-2 arriving from r-1 into its own copy. Afterwards rank r holds the reduction of
 * segment r. Within a step the chunks stream: while chunk j is reduced, chunk j+1 is on the wire.
 */
export async function ringReduceScatter(ctx: OpContext, buf: Uint8Array, segs: Range[]): Promise<void> {
  const { rank: r, size: n } = ctx;
  const next = mod(r + 1, n);
  const prev = mod(r - 1, n);
  const reduce = reducer(ctx);
  for (let k = 0; k < n - 1; k++) {
    await Promise.all([
      sendRange(ctx, next, k, buf, segs[mod(r - k - 1, n)]),
      recvRange(ctx, prev, k, buf, segs[mod(r - k - 2, n)], reduce),
    ]);
  }
}

/**
 * Ring all-gather: n-1 steps; at step k rank r forwards segment r-k to r+1 and stores segment
 * r-k-1 from r-1. `firstStep` numbers the steps after an earlier phase of the same op.
 */
export async function ringAllgather(ctx: OpContext, buf: Uint8Array, segs: Range[], firstStep = 0): Promise<void> {
  const { rank: r, size: n } = ctx;
  const next = mod(r + 1, n);
  const prev = mod(r - 1, n);
  for (let k = 0; k < n - 1; k++) {
    await Promise.all([
      sendRange(ctx, next, firstStep + k, buf, segs[mod(r - k, n)]),
      recvRange(ctx, prev, firstStep + k, buf, segs[mod(r - k - 1, n)], copyInto),
    ]);
  }
}

/**
 * Bandwidth-optimal all-reduce: reduce-scatter then all-gather, each rank sending 2(n-1)/n of
 * the data. For 'mean' only the owned segment is scaled, before it is gathered.
 */
export async function ringAllreduce(ctx: OpContext, buf: Uint8Array): Promise<void> {
  const segs = segments(ctx.desc.count, ctx.size, ctx.elem);
  await ringReduceScatter(ctx, buf, segs);
  if (ctx.desc.op === 'mean') {
    const [off, len] = segs[ctx.rank];
    ctx.k.scale(ctx.desc.dtype, buf.subarray(off, off + len), 1 / ctx.size);
  }
  await ringAllgather(ctx, buf, segs, ctx.size - 1);
}
