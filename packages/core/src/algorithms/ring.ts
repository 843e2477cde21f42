import { Phase } from '../timeline.js';
import {
  copyInto,
  Landing,
  mod,
  type OpContext,
  peerAt,
  placeSteps,
  type Range,
  recvRange,
  reducer,
  segments,
  sendRange,
} from './context.js';

/**
 * The ring: at each step position r sends one segment to r+1 and receives one from r-1 (positions
 * among ctx's participants; `segs` is indexed by position). In the
 * reduce-scatter phase (n-1 steps) step k sends segment r-k-1 and reduces the arriving segment
 * r-k-2 into its own copy, so afterwards rank r holds the reduction of segment r; in the
 * all-gather phase step k forwards segment r-k and stores segment r-k-1. What a step sends is
 * what the step before received, so each chunk is forwarded as soon as it has landed and the
 * steps (and the two phases) overlap instead of draining the pipeline at every boundary.
 * `scale` multiplies the own segment as its reduction completes ('mean'). Wire steps are
 * numbered from `firstStep`.
 */
function ring(
  ctx: OpContext,
  buf: Uint8Array,
  segs: Range[],
  phases: { reduce: boolean; gather: boolean; scale?: number; firstStep?: number },
  after?: RingRun,
): RingRun {
  const { rank: r, size: n } = ctx;
  const reduce = reducer(ctx);
  const steps: { send: Range; recv: Range; consume: (dst: Uint8Array, src: Uint8Array) => void }[] = [];
  if (phases.reduce) {
    for (let k = 0; k < n - 1; k++)
      steps.push({ send: segs[mod(r - k - 1, n)], recv: segs[mod(r - k - 2, n)], consume: reduce });
    const { scale } = phases;
    if (scale !== undefined)
      steps[n - 2].consume = (dst, src) => (reduce(dst, src), ctx.k.scale(ctx.desc.dtype, dst, scale));
  }
  if (phases.gather) {
    for (let k = 0; k < n - 1; k++)
      steps.push({ send: segs[mod(r - k, n)], recv: segs[mod(r - k - 1, n)], consume: copyInto });
  }
  const first = phases.firstStep ?? 0;
  const landing = new Landing();
  const next = peerAt(ctx, mod(r + 1, n));
  const prev = peerAt(ctx, mod(r - 1, n));
  const stored = new Map(
    steps.flatMap((s, i) => (s.consume === copyInto ? [[first + i, s.recv] as const] : [])),
  );
  const sent = (async () => {
    if (after) await after.sent;
    for (const [i, s] of steps.entries())
      await sendRange(
        ctx,
        next,
        first + i,
        buf,
        s.send,
        i > 0 ? (end) => landing.until(i - 1, end) : undefined,
      );
  })();
  const received = (async () => {
    if (after) await after.received;
    // Placed only while this loop reads: a chained ring's loop follows it on the same peer.
    const unplace = placeSteps(ctx, prev, buf, stored);
    try {
      for (const [i, s] of steps.entries()) {
        // The timeline's phases follow the receiving side: all-gather starts when reduce-scatter has landed.
        if (phases.reduce && phases.gather && i === n - 1) ctx.phases?.mark(Phase.allGather);
        await recvRange(ctx, prev, first + i, buf, s.recv, s.consume, (end) => landing.mark(i, end));
      }
    } finally {
      unplace();
    }
  })();
  // The caller awaits both (see done); these only keep an early failure from being unhandled.
  sent.catch(() => {});
  received.catch(() => {});
  return { sent, received };
}

/**
 * A ring's two loops: `sent` settles once its last frame is handed to the transport, `received`
 * once its last frame has been consumed. A ring started `after` another on the same peers sends
 * once the other has sent and reads once the other has read (the frames stay in order on each
 * connection), so its first frames follow the other's last without the pipeline draining.
 */
export interface RingRun {
  sent: Promise<void>;
  received: Promise<void>;
}

/** Resolves once both loops of `run` have, or rejects with the first failure. */
export const done = async (run: RingRun): Promise<void> => void (await Promise.all([run.sent, run.received]));

/**
 * Ring reduce-scatter: afterwards position r holds the reduction of segs[r]; wire steps from
 * `firstStep` (n-1 of them).
 */
export const ringReduceScatter = (ctx: OpContext, buf: Uint8Array, segs: Range[], firstStep = 0) =>
  done(ring(ctx, buf, segs, { reduce: true, gather: false, firstStep }));

/** Ring all-gather: every position ends with every segment; wire steps from `firstStep`. */
export const ringAllgather = (ctx: OpContext, buf: Uint8Array, segs: Range[], firstStep = 0) =>
  done(ring(ctx, buf, segs, { reduce: false, gather: true, firstStep }));

/**
 * Bandwidth-optimal all-reduce of all of `buf`: reduce-scatter then all-gather, each rank sending
 * 2(n-1)/n of the data. For 'mean' only the owned segment is scaled, before it is gathered, by
 * 1/meanOver (the job's size, also when the ring spans only part of it). Wire steps from
 * `firstStep` (2(n-1) of them).
 */
export const ringAllreduce = (ctx: OpContext, buf: Uint8Array, meanOver = ctx.size, firstStep = 0) =>
  done(ringAllreduceAfter(ctx, buf, meanOver, firstStep));

/** ringAllreduce started after `after` on the same peers (see RingRun), returning its loops. */
export const ringAllreduceAfter = (
  ctx: OpContext,
  buf: Uint8Array,
  meanOver = ctx.size,
  firstStep = 0,
  after?: RingRun,
): RingRun =>
  ring(
    ctx,
    buf,
    segments(buf.length / ctx.elem, ctx.size, ctx.elem),
    { reduce: true, gather: true, scale: ctx.desc.op === 'mean' ? 1 / meanOver : undefined, firstStep },
    after,
  );
