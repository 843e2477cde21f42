import { type OpContext, peerAt, type Range, segments, subgroup } from './context.js';
import { ringAllgather, ringAllreduce, ringReduceScatter } from './ring.js';
import type { Topology } from './topology.js';

/** Pieces of at least this many bytes: fewer, larger pieces keep each ring's pipeline full. */
const PIECE_BYTES = 4 << 20;
/** At most this many pieces: the link idles only during the first piece's and the last's local phases. */
const MAX_PIECES = 8;

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
 * the cross lane all-reduces each piece as soon as its reduce-scatter is done. So the inter-host
 * links stay busy while the local phases run. Each lane is sequential on its links, and every
 * ring of an op has its own wire steps.
 */
export async function hierarchicalAllreduce(
  ctx: OpContext,
  buf: Uint8Array,
  topo: Topology,
  pieces = Math.max(1, Math.min(MAX_PIECES, Math.floor(buf.length / PIECE_BYTES))),
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
  const slices: Range[][] = segments(buf.length / ctx.elem, pieces, ctx.elem).map(([off, len]) =>
    segments(len / ctx.elem, L, ctx.elem).map(([o, n]) => [off + o, n] as const),
  );
  const mine = (p: number) => buf.subarray(slices[p][l][0], slices[p][l][0] + slices[p][l][1]);
  const reduced = slices.map(() => deferred());
  const crossed = slices.map(() => deferred());
  const localLane = async () => {
    for (let p = 0; p < pieces; p++) {
      if (L > 1) await ringReduceScatter(local, buf, slices[p], p * 2 * (L - 1));
      reduced[p].resolve();
    }
    for (let p = 0; p < pieces; p++) {
      await crossed[p].promise;
      if (L > 1) await ringAllgather(local, buf, slices[p], p * 2 * (L - 1) + L - 1);
    }
  };
  const crossLane = async () => {
    for (let p = 0; p < pieces; p++) {
      await reduced[p].promise;
      if (H > 1) await ringAllreduce(cross, mine(p), total, p * 2 * (H - 1));
      else if (ctx.desc.op === 'mean') ctx.k.scale(ctx.desc.dtype, mine(p), 1 / total);
      crossed[p].resolve();
    }
  };
  // A failing lane must not leave the other waiting on it: fail its waits too.
  const fail = (err: unknown) => {
    for (const d of [...reduced, ...crossed]) d.reject(err);
    throw err;
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
