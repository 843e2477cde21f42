import { type OpContext, peerAt, type Range, segments, subgroup } from './context.js';
import { done, type RingRun, ringAllgather, ringAllreduceAfter, ringReduceScatter } from './ring.js';
import type { Topology } from './topology.js';

/**
 * Piece sizes: the inter-host links idle while the first piece's reduce-scatter and the last
 * piece's all-gather run (the other pieces' local phases overlap the cross-host rings), so pieces
 * grow from FIRST_PIECE to MAX_PIECE (fewer rings to set up) and shrink again. Measured on 2
 * hosts x 2 ranks at 1 Gbit/s (BENCHMARKS.md): 8 equal pieces, each ring draining the links
 * before the next, kept them 91-92 % busy; this ramp with chained rings 94-95 %, as the flat ring.
 */
const FIRST_PIECE = 1 << 20;
const MAX_PIECE = 8 << 20;

/**
 * Splits `bytes` (whole elements of `elem` bytes) into pieces that double from `first` up to
 * `max` and halve again towards the end: 1, 2, 4, .., max, .., max, .., 2, 1 (x `first`).
 * Every rank derives the same pieces from the same length.
 */
export function rampPieces(bytes: number, elem: number, first = FIRST_PIECE, max = MAX_PIECE): Range[] {
  const count = bytes / elem;
  const head: number[] = [];
  const tail: number[] = [];
  let left = count;
  for (let size = Math.max(1, Math.floor(first / elem)), side = 0; left > 0; side ^= 1) {
    const n = Math.min(size, left);
    (side === 0 ? head : tail).push(n);
    left -= n;
    if (side === 1) size = Math.min(size * 2, Math.max(1, Math.floor(max / elem)));
  }
  const lengths = count > 0 ? [...head, ...tail.reverse()] : [0];
  let off = 0;
  return lengths.map((n) => {
    const r = [off * elem, n * elem] as const;
    off += n;
    return r;
  });
}

/**
 * Two-level all-reduce for several ranks on each of several hosts (as NCCL's): a ring
 * reduce-scatter among the host's L ranks (shared memory) leaves local rank l the host's sum of
 * slice l; local rank l then all-reduces slice l with local rank l of every other host (a ring
 * over the hosts, all L of a host's ranks on the inter-host links at once); a ring all-gather
 * among the host's ranks spreads the slices. Each host sends 2(H-1)/H of the data across hosts,
 * against 2(N-1)/N for the flat ring. Needs the same number of ranks on every host
 * (topology.layered).
 *
 * The buffer goes in `pieces`, pipelined over two lanes that use disjoint links: the local lane
 * runs every piece's reduce-scatter, then each piece's all-gather once that piece has crossed;
 * the cross lane all-reduces each piece as soon as its reduce-scatter is done, each piece's ring
 * chained after the previous one's (ringAllreduceAfter), so the inter-host links stay busy
 * while the local phases run. Every ring of an op has its own wire steps.
 */
export async function hierarchicalAllreduce(
  ctx: OpContext,
  buf: Uint8Array,
  topo: Topology,
  pieces: Range[] = rampPieces(buf.length, ctx.elem),
): Promise<void> {
  const { local, cross, l } = groups(ctx, topo);
  const L = local.size;
  const H = cross.size;
  const total = topo.order.length;
  // Slices of each piece, as absolute ranges of buf.
  const slices: Range[][] = pieces.map(([off, len]) =>
    segments(len / ctx.elem, L, ctx.elem).map(([o, n]) => [off + o, n] as const),
  );
  const mine = (p: number) => buf.subarray(slices[p][l][0], slices[p][l][0] + slices[p][l][1]);
  const reduced = slices.map(() => deferred());
  const crossed = slices.map(() => deferred());
  const localLane = async () => {
    for (let p = 0; p < pieces.length; p++) {
      if (L > 1) await ringReduceScatter(local, buf, slices[p], p * 2 * (L - 1));
      reduced[p].resolve();
    }
    for (let p = 0; p < pieces.length; p++) {
      await crossed[p].promise;
      if (L > 1) await ringAllgather(local, buf, slices[p], p * 2 * (L - 1) + L - 1);
    }
  };
  // A failing lane or ring must not leave the other lane waiting on it: fail its waits too.
  const failWaits = (err: unknown) => {
    for (const d of [...reduced, ...crossed]) d.reject(err);
  };
  const fail = (err: unknown) => {
    failWaits(err);
    throw err;
  };
  const crossLane = async () => {
    // Each piece's ring follows the previous one on the same connections without draining them.
    let last: RingRun | undefined;
    const pending: Promise<void>[] = [];
    for (let p = 0; p < pieces.length; p++) {
      await reduced[p].promise;
      if (H > 1) {
        const run = ringAllreduceAfter(cross, mine(p), total, p * 2 * (H - 1), last);
        last = run;
        const piece = done(run).then(() => crossed[p].resolve());
        piece.catch(failWaits);
        pending.push(piece);
      } else {
        if (ctx.desc.op === 'mean') ctx.k.scale(ctx.desc.dtype, mine(p), 1 / total);
        crossed[p].resolve();
      }
    }
    await Promise.all(pending);
  };
  await Promise.all([localLane().catch(fail), crossLane().catch(fail)]);
}

/** This rank's host group (local ranks in order) and cross group (local rank l of every host). */
function groups(ctx: OpContext, topo: Topology): { local: OpContext; cross: OpContext; l: number } {
  const me = peerAt(ctx, ctx.rank);
  const host = topo.hosts.find((rs) => rs.includes(me))!;
  const l = host.indexOf(me);
  return {
    local: subgroup(ctx, host),
    cross: subgroup(
      ctx,
      topo.hosts.map((rs) => rs[l]),
    ),
    l,
  };
}

/**
 * `segs` (one range per rank) cut as `pieces` cuts the whole buffer (rampPieces): piece p holds
 * the same share of every rank's range, so each piece is a smaller collective of the same shape.
 */
function splitSegments(segs: readonly Range[], pieces: readonly Range[], elem: number): Range[][] {
  const total = pieces.reduce((t, [, n]) => t + n, 0);
  const at = (n: number, cut: number) => (total ? Math.floor((n * cut) / total) : 0);
  return pieces.map(([cut, len]) =>
    segs.map(([off, n]) => {
      const count = n / elem;
      const from = at(count, cut);
      return [off + from * elem, (at(count, cut + len) - from) * elem] as const;
    }),
  );
}

/**
 * Runs `first` then `second` on every piece, as two pipelined lanes on disjoint links: `second`
 * of piece p starts once `first` of p is done, while `first` goes on with p+1. A failure in
 * either lane fails the other's waits.
 */
async function twoLanes(
  pieces: number,
  first: (p: number) => Promise<void>,
  second: (p: number) => Promise<void>,
): Promise<void> {
  const ready = Array.from({ length: pieces }, () => deferred());
  const fail = (err: unknown) => {
    for (const d of ready) d.reject(err);
    throw err;
  };
  const lane1 = async () => {
    for (let p = 0; p < pieces; p++) {
      await first(p);
      ready[p].resolve();
    }
  };
  const lane2 = async () => {
    for (let p = 0; p < pieces; p++) {
      await ready[p].promise;
      await second(p);
    }
  };
  await Promise.all([lane1().catch(fail), lane2().catch(fail)]);
}

/**
 * One two-level pass of `ring` (a ring reduce-scatter or all-gather) over the blocks `segs` (by
 * transport rank): within each host one ring per host's block of segments (shared memory), across
 * the hosts one ring among the same local ranks, in `pieces` with the two lanes overlapped; the
 * within-host lane first (`localFirst`) or second. Wire steps from `firstStep`.
 */
async function twoLevelPass(
  ctx: OpContext,
  buf: Uint8Array,
  segs: readonly Range[],
  topo: Topology,
  firstStep: number,
  pieces: readonly Range[],
  ring: (ctx: OpContext, buf: Uint8Array, segs: Range[], firstStep: number) => Promise<void>,
  localFirst: boolean,
): Promise<void> {
  const { local, cross, l } = groups(ctx, topo);
  const L = local.size;
  const H = cross.size;
  const P = pieces.length;
  const split = splitSegments(segs, pieces, ctx.elem);
  // The within-host rings take P*H*(L-1) wire steps, the cross-host ones P*(H-1), in lane order.
  const localFrom = localFirst ? firstStep : firstStep + P * (H - 1);
  const crossFrom = localFirst ? firstStep + P * H * (L - 1) : firstStep;
  const inHost = async (p: number) => {
    if (L > 1)
      for (const [h, rs] of topo.hosts.entries())
        await ring(
          local,
          buf,
          rs.map((r) => split[p][r]),
          localFrom + (p * H + h) * (L - 1),
        );
  };
  const acrossHosts = async (p: number) => {
    if (H > 1)
      await ring(
        cross,
        buf,
        topo.hosts.map((rs) => split[p][rs[l]]),
        crossFrom + p * (H - 1),
      );
  };
  await twoLanes(P, localFirst ? inHost : acrossHosts, localFirst ? acrossHosts : inHost);
}

/**
 * Two-level reduce-scatter (layered topologies): `segs` holds every rank's result range, by
 * transport rank. Within each host, one ring reduce-scatter per host's block of segments leaves
 * local rank l the host's sum of the segment of every host's local rank l (shared memory); then
 * local rank l reduce-scatters those across the hosts. A host sends (H-1)/H of the data across
 * hosts, against (N-1)/N for the flat ring. In ramped pieces (as all-reduce's), the local lane
 * runs ahead of the cross lane. Wire steps from `firstStep`.
 */
export const hierarchicalReduceScatter = (
  ctx: OpContext,
  buf: Uint8Array,
  segs: readonly Range[],
  topo: Topology,
  firstStep = 0,
  pieces: readonly Range[] = rampPieces(buf.length, ctx.elem),
): Promise<void> => twoLevelPass(ctx, buf, segs, topo, firstStep, pieces, ringReduceScatter, true);

/**
 * Two-level all-gather (layered topologies) of the blocks `segs` (by transport rank; this rank's
 * is in place): local rank l first all-gathers the blocks of every host's local rank l across the
 * hosts, then each host's block of blocks is spread within the host (shared memory). A host
 * receives (H-1)/H of the data across hosts, against (N-1)/N for the flat ring. In ramped pieces
 * (as all-reduce's), the local lane follows the cross lane. Wire steps from `firstStep`.
 */
export const hierarchicalAllgather = (
  ctx: OpContext,
  out: Uint8Array,
  segs: readonly Range[],
  topo: Topology,
  firstStep = 0,
  pieces: readonly Range[] = rampPieces(out.length, ctx.elem),
): Promise<void> => twoLevelPass(ctx, out, segs, topo, firstStep, pieces, ringAllgather, false);

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((a, b) => ((resolve = a), (reject = b)));
  promise.catch(() => {}); // a lane that never reaches a wait does not make it unhandled
  return { promise, resolve, reject };
}
