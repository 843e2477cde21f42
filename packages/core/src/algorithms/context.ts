import type { Kernels } from '@ringwire/common';
import { MismatchError, ProtocolError } from '@ringwire/common';
import { copyBytes } from '../kernels/index.js';
import type { OpPhases } from '../timeline.js';
import type { CollectiveTransport } from '../transport/types.js';
import { type Descriptor, describe, type FrameHeader, FrameType } from '../wire.js';

/** Everything an algorithm needs for one collective; algorithms hold no other state. */
export interface OpContext {
  t: CollectiveTransport;
  k: Kernels;
  /** This rank's position among the op's participants, and their number. */
  rank: number;
  size: number;
  /**
   * The participants' transport ranks by position (a ring visits them in this order); absent:
   * position = rank. Lets one algorithm run over a subset of the job, as on a sub-communicator.
   */
  ranks?: readonly number[];
  seq: number;
  desc: Descriptor;
  hash: number;
  /** Bytes per element. */
  elem: number;
  chunkBytes: number;
  /** Payload bytes sent, counted for the job summary. */
  stats?: { sent: number };
  /** The timeline's phase marks (RINGWIRE_TIMELINE), absent when it is off. */
  phases?: OpPhases;
}

/** A byte range [offset, offset + length) of the op's buffer. */
export type Range = readonly [offset: number, length: number];

/** Splits `count` elements into `n` ranges of bytes, the first `count % n` one element longer. */
export function segments(count: number, n: number, elem: number): Range[] {
  const base = Math.floor(count / n);
  const extra = count % n;
  return Array.from(
    { length: n },
    (_, i) => [(i * base + Math.min(i, extra)) * elem, (base + (i < extra ? 1 : 0)) * elem] as const,
  );
}

export const mod = (a: number, n: number) => ((a % n) + n) % n;

/** The transport rank of the participant at position `pos`. */
export const peerAt = (ctx: OpContext, pos: number): number => (ctx.ranks ? ctx.ranks[pos] : pos);

/** The position of transport rank `rank` among the participants (-1: not one of them). */
export const positionOf = (ctx: OpContext, rank: number): number =>
  ctx.ranks ? ctx.ranks.indexOf(rank) : rank < ctx.size ? rank : -1;

/**
 * The context for running an algorithm among `ranks` (transport ranks, in ring order), which
 * must include this rank: a sub-communicator without any setup, since every rank derives the
 * same groups from the same peer table.
 */
export function subgroup(ctx: OpContext, ranks: readonly number[]): OpContext {
  const me = peerAt(ctx, ctx.rank);
  const rank = ranks.indexOf(me);
  if (rank < 0) throw new Error(`rank ${me} is not in the group ${ranks.join(',')}`);
  return { ...ctx, rank, size: ranks.length, ranks };
}

/** Ranges indexed by rank, reordered by position (what the ring helpers take). */
export const byPosition = <T>(ctx: OpContext, perRank: readonly T[]): T[] =>
  ctx.ranks ? ctx.ranks.map((r) => perRank[r]) : [...perRank];

function header(ctx: OpContext, step: number, offset: number, length: number): FrameHeader {
  return {
    type: FrameType.DATA,
    desc: ctx.desc,
    hash: ctx.hash,
    step,
    generation: ctx.t.generation,
    seq: ctx.seq,
    offset,
    length,
  };
}

/** Chunk size for a range: whole elements, at most chunkBytes. */
function chunkOf(ctx: OpContext): number {
  return Math.max(ctx.elem, ctx.chunkBytes - (ctx.chunkBytes % ctx.elem));
}

/**
 * Sends bytes [off, off+len) of `buf` to `peer` as chunk frames, as fast as credit allows;
 * resolves when every byte has been handed to the kernel (so `buf` may be overwritten).
 * With `after`, each chunk waits for after(its end within the range) first (see Landing).
 * A zero-length range still sends one empty frame, which keeps the peers in step.
 */
export async function sendRange(
  ctx: OpContext,
  peer: number,
  step: number,
  buf: Uint8Array,
  [off, len]: Range,
  after?: (end: number) => Promise<void>,
): Promise<void> {
  const chunk = chunkOf(ctx);
  const writes: Promise<void>[] = [];
  let pos = 0;
  do {
    const n = Math.min(chunk, len - pos);
    if (after) await after(pos + n);
    if (ctx.stats) ctx.stats.sent += n;
    writes.push(
      (await ctx.t.send(peer, header(ctx, step, off + pos, n), buf.subarray(off + pos, off + pos + n)))
        .written,
    );
    pos += n;
  } while (pos < len);
  await Promise.all(writes);
}

/**
 * Receives bytes [off, off+len) from `peer`, handing each chunk to `consume(dst, payload)`,
 * where dst is the matching slice of `buf`. `onChunk` fires after each chunk is consumed.
 */
export async function recvRange(
  ctx: OpContext,
  peer: number,
  step: number,
  buf: Uint8Array,
  [off, len]: Range,
  consume: (dst: Uint8Array, src: Uint8Array) => void,
  onChunk?: (end: number) => void,
): Promise<void> {
  let pos = 0;
  do {
    const f = await ctx.t.recv(peer);
    ctx.phases?.arrived();
    check(ctx, peer, f.h, step, off + pos);
    if (pos + f.h.length > len)
      throw new ProtocolError(`rank ${peer} sent ${f.h.length} bytes past the end of step ${step}`, {
        rank: peer,
      });
    consume(buf.subarray(off + pos, off + pos + f.h.length), f.payload);
    ctx.t.release(peer);
    pos += f.h.length;
    onChunk?.(pos);
  } while (pos < len);
}

/**
 * How far the receiving side of a pipelined algorithm has got: (step, bytes of that step's
 * range consumed), advancing in order. A sender forwarding what arrives waits on it per chunk,
 * so a step's chunks leave while the rest of the previous step is still arriving. One waiter.
 */
export class Landing {
  private step = -1;
  private end = 0;
  private wake?: () => void;

  mark(step: number, end: number): void {
    this.step = step;
    this.end = end;
    this.wake?.();
  }

  /** Resolves once `step` has consumed `end` bytes (or a later step has begun). */
  async until(step: number, end: number): Promise<void> {
    while (this.step < step || (this.step === step && this.end < end))
      await new Promise<void>((resolve) => (this.wake = resolve));
  }
}

/** Stores a chunk; nothing to do when it was placed there already (see placeSteps). */
export const copyInto = (dst: Uint8Array, src: Uint8Array) => {
  if (src.buffer !== dst.buffer || src.byteOffset !== dst.byteOffset) copyBytes(dst, src);
};

/**
 * Until the returned undo is called, chunks from `peer` for the given steps of this op are read
 * by the kernel straight into their place in `buf` rather than into a credit slot: one memory
 * pass less. Only a frame of this op and step whose bytes lie inside the step's range is placed;
 * any other still goes to a slot and fails check() as before.
 */
export function placeSteps(
  ctx: OpContext,
  peer: number,
  buf: Uint8Array,
  ranges: Map<number, Range>,
): () => void {
  ctx.t.place(peer, (h) => {
    const range = ranges.get(h.step);
    if (
      !range ||
      h.seq !== ctx.seq ||
      h.hash !== ctx.hash ||
      h.offset < range[0] ||
      h.offset + h.length > range[0] + range[1]
    )
      return undefined;
    return buf.subarray(h.offset, h.offset + h.length);
  });
  return () => ctx.t.place(peer, undefined);
}

/** The op's reduction of one received chunk into this rank's data (dst = op(dst, src)). */
export function reducer(ctx: OpContext): (dst: Uint8Array, src: Uint8Array) => void {
  const op = ctx.desc.op === 'mean' ? 'sum' : ctx.desc.op;
  return (dst, src) => ctx.k.reduceInto(ctx.desc.dtype, op, dst, src);
}

/** A frame from another collective, or another shape of this one, fails the job with both descriptors. */
function check(ctx: OpContext, peer: number, h: FrameHeader, step: number, offset: number): void {
  if (h.seq !== ctx.seq || h.hash !== ctx.hash)
    throw mismatch(ctx.rank, ctx.seq, ctx.desc, peer, h.seq, h.desc);
  if (h.step !== step || h.offset !== offset) {
    throw new ProtocolError(
      `rank ${peer} sent step ${h.step} offset ${h.offset}, expected step ${step} offset ${offset}`,
      { rank: peer },
    );
  }
}

/** The error for rank `peer` being at op #theirSeq `theirs` while this rank runs op #seq `mine`. */
export function mismatch(
  rank: number,
  seq: number,
  mine: Descriptor,
  peer: number,
  theirSeq: number,
  theirs: Descriptor,
): MismatchError {
  const t = { ...theirs, layout: 0 };
  const same = describe(t) === describe({ ...mine, layout: 0 });
  const what =
    theirSeq !== seq
      ? `rank ${peer} sent data for op #${theirSeq} ${describe(t)} while rank ${rank} is at op #${seq} ${describe(mine)}`
      : `rank ${rank} called ${describe(mine)} but rank ${peer} called ${describe(t)}${same ? ' with its grouped arrays laid out differently' : ''}`;
  return new MismatchError(`collective mismatch at op #${seq}: ${what}`, { rank: peer });
}
