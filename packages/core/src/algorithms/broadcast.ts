import {
  copyInto,
  Landing,
  mod,
  type OpContext,
  peerAt,
  placeSteps,
  positionOf,
  recvRange,
  sendRange,
} from './context.js';

/**
 * Small messages: binomial tree from the root (a transport rank), ceil(log2 n) hops.
 */
export async function treeBroadcast(ctx: OpContext, buf: Uint8Array, rootRank: number): Promise<void> {
  const { rank: r, size: n } = ctx;
  const root = positionOf(ctx, rootRank);
  const vr = mod(r - root, n);
  const range = [0, buf.length] as const;
  let mask = 1;
  for (; mask < n; mask <<= 1) {
    if (vr & mask) {
      await recvRange(ctx, peerAt(ctx, mod(vr - mask + root, n)), 0, buf, range, copyInto);
      break;
    }
  }
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (vr + mask < n) await sendRange(ctx, peerAt(ctx, mod(vr + mask + root, n)), 0, buf, range);
  }
}

/**
 * Large messages: a pipelined chain root -> root+1 -> ... in position order (host by host, so it
 * crosses each host boundary once); each rank forwards chunk j while chunk j+1 arrives, so every
 * link carries the data once and the time is about size / bandwidth. Chunks are read straight
 * into place. The root is a transport rank.
 */
export async function chainBroadcast(ctx: OpContext, buf: Uint8Array, rootRank: number): Promise<void> {
  const { rank: r, size: n } = ctx;
  const vr = mod(r - positionOf(ctx, rootRank), n);
  const prev = peerAt(ctx, mod(r - 1, n));
  const next = peerAt(ctx, mod(r + 1, n));
  const last = vr === n - 1;
  if (vr === 0) return sendRange(ctx, next, 0, buf, [0, buf.length]);
  const unplace = placeSteps(ctx, prev, buf, new Map([[0, [0, buf.length]]]));
  try {
    if (last) return await recvRange(ctx, prev, 0, buf, [0, buf.length], copyInto);
    // Forward each chunk as soon as it has landed.
    const landing = new Landing();
    await Promise.all([
      recvRange(ctx, prev, 0, buf, [0, buf.length], copyInto, (end) => landing.mark(0, end)),
      sendRange(ctx, next, 0, buf, [0, buf.length], (end) => landing.until(0, end)),
    ]);
  } finally {
    unplace();
  }
}
