import { copyInto, type OpContext, peerAt, recvRange, sendRange } from './context.js';

/**
 * Latency-optimal all-reduce for small messages: recursive doubling, log2(p) exchange rounds
 * among the largest power of two p <= n. The n-p extra ranks first fold their data into a
 * partner below p and get the result back at the end. Partners combine a+b and b+a, which IEEE
 * arithmetic makes bitwise equal, so every rank ends with identical bytes. Ranks are positions
 * among ctx's participants.
 */
export async function treeAllreduce(ctx: OpContext, buf: Uint8Array, scratch: Uint8Array): Promise<void> {
  const { rank: r, size: n } = ctx;
  const range = [0, buf.length] as const;
  let p = 1;
  while (p * 2 <= n) p *= 2;
  const op = ctx.desc.op === 'mean' ? 'sum' : ctx.desc.op;
  const at = (pos: number) => peerAt(ctx, pos);
  const reduceFrom = () => ctx.k.reduceInto(ctx.desc.dtype, op, buf, scratch.subarray(0, buf.length));
  let step = 0;
  if (r >= p) {
    await sendRange(ctx, at(r - p), step, buf, range);
    await recvRange(ctx, at(r - p), 64, buf, range, copyInto);
  } else {
    if (r + p < n) {
      await recvRange(ctx, at(r + p), step, scratch, range, copyInto);
      reduceFrom();
    }
    for (let mask = 1; mask < p; mask <<= 1) {
      step++;
      const partner = at(r ^ mask);
      await Promise.all([
        sendRange(ctx, partner, step, buf, range),
        recvRange(ctx, partner, step, scratch, range, copyInto),
      ]);
      reduceFrom();
    }
    if (r + p < n) await sendRange(ctx, at(r + p), 64, buf, range);
  }
  if (ctx.desc.op === 'mean') ctx.k.scale(ctx.desc.dtype, buf, 1 / n);
}
