import { InvalidArgumentError, ProtocolError } from '@ringwire/common';
import { copyBytes } from '../kernels/index.js';
import { Phase } from '../timeline.js';
import { byPosition, type OpContext, peerAt, type Range } from './context.js';
import { ringAllgather } from './ring.js';

/** Gathers the blocks `segs` (by transport rank) of `out`, wire steps from `firstStep`. */
export type DataGather = (out: Uint8Array, segs: Range[], firstStep: number) => Promise<void>;

/** A rank's data up to this many bytes rides with its length, so small all-gathers take one ring pass. */
const INLINE = 4096;

/**
 * All-gather with per-rank lengths. First a ring all-gather of fixed records, one per rank: the
 * length, the room in the caller's output (-1: a new buffer) and, when the length is at most
 * INLINE bytes, the data itself. Every rank then checks every rank's room, so an output that is
 * too small fails the collective on every rank alike. When every rank's data fitted in its
 * record, that was all; otherwise a ring all-gather of the data follows, into a buffer laid out
 * rank by rank: by the flat ring, or by what `twoLevel` returns for the total (the same on every
 * rank, as it depends only on the records). Returns the buffer and the layout. The participants
 * are the whole job, in any ring order (ctx.ranks); records and layout go by transport rank.
 */
export async function allgather(
  ctx: OpContext,
  input: Uint8Array,
  room: number,
  alloc: (bytes: number) => Uint8Array,
  twoLevel?: (total: number) => DataGather | undefined,
): Promise<{ out: Uint8Array; segs: Range[] }> {
  const { size: n } = ctx;
  const r = peerAt(ctx, ctx.rank);
  const rec = 16 + INLINE;
  const records = new Uint8Array(n * rec);
  const fields = new DataView(records.buffer);
  fields.setFloat64(r * rec, input.length, true);
  fields.setFloat64(r * rec + 8, room, true);
  if (input.length <= INLINE) records.set(input, r * rec + 16);
  await ringAllgather(
    { ...ctx, elem: 1 },
    records,
    byPosition(
      ctx,
      Array.from({ length: n }, (_, i) => [i * rec, rec] as const),
    ),
  );
  const segs: Range[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const len = fields.getFloat64(i * rec, true);
    if (!Number.isSafeInteger(len) || len < 0 || len % ctx.elem)
      throw new ProtocolError(`rank ${i} announced ${len} bytes for all-gather`, { rank: i });
    segs.push([total, len]);
    total += len;
  }
  for (let i = 0; i < n; i++) {
    const has = fields.getFloat64(i * rec + 8, true);
    if (has >= 0 && has < total)
      throw new InvalidArgumentError(
        `allgather: rank ${i}'s out holds ${has} bytes, the result needs ${total}`,
        { rank: i },
      );
  }
  ctx.phases?.mark(Phase.copy);
  const out = alloc(total);
  if (segs.every(([, len]) => len <= INLINE)) {
    segs.forEach(([o, len], i) =>
      copyBytes(out.subarray(o, o + len), records.subarray(i * rec + 16, i * rec + 16 + len)),
    );
    return { out, segs };
  }
  copyBytes(out.subarray(segs[r][0], segs[r][0] + input.length), input);
  ctx.phases?.mark(Phase.allGather);
  const gather = twoLevel?.(total);
  if (gather) await gather(out, segs, n - 1);
  else await ringAllgather(ctx, out, byPosition(ctx, segs), n - 1);
  return { out, segs };
}
