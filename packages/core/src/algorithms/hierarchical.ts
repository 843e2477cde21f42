import { type OpContext, peerAt, segments, subgroup } from './context.js';
import { ringAllgather, ringAllreduce, ringReduceScatter } from './ring.js';
import type { Topology } from './topology.js';

/**
 * Two-level all-reduce for several ranks on each of several hosts (as NCCL's): a ring
 * reduce-scatter among the host's L ranks (shared memory) leaves local rank l the host's sum of
 * slice l; local rank l then all-reduces slice l with local rank l of every other host (a ring
 * over the hosts, all L of a host's ranks on the inter-host links at once); a ring all-gather
 * among the host's ranks spreads the slices. Each host sends 2(H-1)/H of the data across hosts,
 * against 2(N-1)/N for the flat ring. Needs the same number of ranks on every host
 * (topology.layered). Steps of the second local ring follow the first's, as they share links.
 */
export async function hierarchicalAllreduce(ctx: OpContext, buf: Uint8Array, topo: Topology): Promise<void> {
  const me = peerAt(ctx, ctx.rank);
  const host = topo.hosts.find((rs) => rs.includes(me))!;
  const l = host.indexOf(me);
  const local = subgroup(ctx, host);
  const cross = subgroup(
    ctx,
    topo.hosts.map((rs) => rs[l]),
  );
  const L = local.size;
  const total = topo.order.length;
  const slices = segments(buf.length / ctx.elem, L, ctx.elem);
  if (L > 1) await ringReduceScatter(local, buf, slices);
  const [off, len] = slices[l];
  const slice = buf.subarray(off, off + len);
  if (cross.size > 1) await ringAllreduce(cross, slice, total);
  else if (ctx.desc.op === 'mean') ctx.k.scale(ctx.desc.dtype, slice, 1 / total);
  if (L > 1) await ringAllgather(local, buf, slices, L - 1);
}
