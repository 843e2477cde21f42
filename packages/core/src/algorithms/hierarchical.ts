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
  const me = peerAt(ctx, ctx.rank);
  const host = topo.hosts.find((rs) => rs.includes(me))!;
  const l = host.indexOf(me);
  const local = subgroup(ctx, host);
  const cross = subgroup(
    ctx,
    topo.hosts.map((rs) => rs[l]),
  );
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

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((a, b) => ((resolve = a), (reject = b)));
  promise.catch(() => {}); // a lane that never reaches a wait does not make it unhandled
  return { promise, resolve, reject };
}
