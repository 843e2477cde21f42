// Every collective algorithm on 1..8 simulated ranks over the in-memory transport, against a
// plain per-element reference: every dtype and op, empty, single-element, uneven and many-chunk
// lengths. The JS kernels do the arithmetic, so no addon is needed; the whole file takes seconds.
// Inputs are chosen so that every reduction is exact in every dtype whatever its order (small
// integers, powers of two; integers wrap), so results must match bit for bit; only 'mean' rounds.

import { DTYPE_NAMES, DTYPES, type DType, REDUCE_OPS, type ReduceOp } from '@ringwire/common';
import { InvalidArgumentError } from '@ringwire/rendezvous';
import { describe, expect, it } from 'vitest';
import { allgather } from '../src/algorithms/allgather.js';
import { chainBroadcast, treeBroadcast } from '../src/algorithms/broadcast.js';
import { byPosition, type OpContext, segments, subgroup } from '../src/algorithms/context.js';
import {
  hierarchicalAllgather,
  hierarchicalAllreduce,
  hierarchicalReduceScatter,
  rampPieces,
} from '../src/algorithms/hierarchical.js';
import { ringAllreduce, ringReduceScatter } from '../src/algorithms/ring.js';
import { Topology } from '../src/algorithms/topology.js';
import { treeAllreduce } from '../src/algorithms/tree.js';
import { bf16BitsToF32, f16BitsToF32, f32BitsToBf16, f32BitsToF16, jsKernels } from '../src/kernels/js.js';
import { type Descriptor, descriptorHash, type Kind } from '../src/wire.js';
import { MemoryNetwork } from './memory-transport.js';

/** Small chunks and few credits, so most lengths take many frames and senders wait for credit. */
const CHUNK_BYTES = 64;
const CREDITS = 2;
const SIZES = [1, 2, 3, 4, 5, 6, 7, 8];
/** 13 and 997 divide by no size above 1; 997 elements span 16 to 125 chunks. */
const LENGTHS = [0, 1, 3, 13, 997];
/** A run that has not finished by then has hung (they take milliseconds). */
const BOUND_MS = 5_000;

const opsOf = (dtype: DType): ReduceOp[] => REDUCE_OPS.filter((op) => op !== 'mean' || DTYPES[dtype].float);

// ---- values and their bytes ------------------------------------------------------------------

const f32Bits = (v: number) => new Int32Array(new Float32Array([v]).buffer)[0];
const f32Of = (bits: number) => new Float32Array(new Int32Array([bits]).buffer)[0];

/** Element i of rank r's input for `op`: exact in every dtype, and so are their reductions. */
function value(dtype: DType, op: ReduceOp, r: number, i: number): number {
  if (!DTYPES[dtype].float) {
    const x = (Math.imul(r + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) | 0; // wraps when reduced
    return dtype === 'uint8' ? x & 0xff : x;
  }
  if (op === 'prod') return [0.5, -1, 2, 1, -0.5, -2][(r * 5 + i * 3) % 6];
  if (op === 'min' || op === 'max') return (((r * 31 + i * 17) % 101) - 50) / 4;
  return ((r * 7 + i * 13) % 17) - 8;
}

function toBytes(dtype: DType, values: number[]): Uint8Array {
  const a =
    dtype === 'float16'
      ? Uint16Array.from(values, (v) => f32BitsToF16(f32Bits(v)))
      : dtype === 'bfloat16'
        ? Uint16Array.from(values, (v) => f32BitsToBf16(f32Bits(v)))
        : DTYPES[dtype].array.from(values);
  return new Uint8Array(a.buffer);
}

function fromBytes(dtype: DType, bytes: Uint8Array): number[] {
  const copy = bytes.slice().buffer;
  if (dtype === 'float16') return Array.from(new Uint16Array(copy), (h) => f32Of(f16BitsToF32(h)));
  if (dtype === 'bfloat16') return Array.from(new Uint16Array(copy), (h) => f32Of(bf16BitsToF32(h)));
  return Array.from(new DTYPES[dtype].array(copy));
}

const input = (dtype: DType, op: ReduceOp, r: number, count: number) =>
  toBytes(
    dtype,
    Array.from({ length: count }, (_, i) => value(dtype, op, r, i)),
  );

/** The reduction of every rank's element i, folded in rank order with the dtype's wrap-around. */
function reference(dtype: DType, op: ReduceOp, size: number, count: number): number[] {
  const int = !DTYPES[dtype].float;
  const wrap = (x: number) => (dtype === 'uint8' ? x & 0xff : x | 0);
  const combine = (a: number, b: number) => {
    if (op === 'min') return Math.min(a, b);
    if (op === 'max') return Math.max(a, b);
    if (op === 'prod') return int ? wrap(Math.imul(a, b)) : a * b;
    return int ? wrap(a + b) : a + b;
  };
  return Array.from({ length: count }, (_, i) => {
    let acc = value(dtype, op, 0, i);
    for (let r = 1; r < size; r++) acc = combine(acc, value(dtype, op, r, i));
    return op === 'mean' ? acc / size : acc;
  });
}

/** 'mean' multiplies by 1/size and rounds to the dtype; everything else is exact. */
const MEAN_TOLERANCE: Partial<Record<DType, number>> = {
  float64: 1e-14,
  float32: 2 ** -22,
  float16: 2 ** -10,
  bfloat16: 2 ** -7,
};

/** Exact results byte for byte ('mean' within its rounding); a failure names the first bad element. */
function expectReduced(dtype: DType, op: ReduceOp, got: Uint8Array, want: number[], what: string): void {
  if (op !== 'mean' && Buffer.compare(got, toBytes(dtype, want)) === 0) return;
  const values = fromBytes(dtype, got);
  const tol = op === 'mean' ? MEAN_TOLERANCE[dtype]! : 0;
  const bad = values.findIndex(
    (v, i) => !Object.is(v, want[i]) && !(Math.abs(v - want[i]) <= tol * Math.abs(want[i])),
  );
  expect(bad < 0 ? 'as expected' : `element ${bad}: ${values[bad]}, want ${want[bad]}`, what).toBe(
    'as expected',
  );
}

// ---- running one collective on every rank ----------------------------------------------------

/**
 * Runs `body` as each of `size` ranks over one in-memory network, as the engine runs an op: one
 * OpContext per rank. Fails when a rank throws, when the ranks do not finish within BOUND_MS, or
 * when frames or credit are left over afterwards.
 */
async function onRanks<T>(
  size: number,
  d: { kind: Kind; dtype: DType; op?: ReduceOp; root?: number; count: number },
  body: (ctx: OpContext) => Promise<T>,
): Promise<T[]> {
  const net = new MemoryNetwork(size, CREDITS);
  const desc: Descriptor = { op: 'sum', root: 0, layout: 0, ...d };
  const hash = descriptorHash(desc);
  const contexts = Array.from(
    { length: size },
    (_, rank): OpContext => ({
      t: net.transport(rank),
      k: jsKernels,
      rank,
      size,
      seq: 7,
      desc,
      hash,
      elem: DTYPES[desc.dtype].bytes,
      chunkBytes: CHUNK_BYTES,
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ranks still running after ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    const all = Promise.all(
      contexts.map((ctx) =>
        body(ctx).catch((err: Error) => {
          net.fail(err); // the others would wait for it forever, as they would for a dead peer
          throw err;
        }),
      ),
    );
    const results = await Promise.race([all, bound]);
    expect(await net.leftovers()).toEqual([]);
    return results;
  } finally {
    clearTimeout(timer);
    net.fail(new Error('the op is over'));
  }
}

const label = (size: number, dtype: DType, op: string, count: number) =>
  `${size} ranks, ${dtype} ${op}, ${count} elements`;

// ---- the collectives -------------------------------------------------------------------------

describe('all-reduce (ring and tree) equals the reference on every rank, bit-identical across ranks', () => {
  for (const algo of ['ring', 'tree'] as const)
    for (const size of SIZES)
      it(`${algo}, ${size} rank(s)`, async () => {
        for (const dtype of DTYPE_NAMES)
          for (const op of opsOf(dtype))
            for (const count of LENGTHS) {
              const what = `${algo}: ${label(size, dtype, op, count)}`;
              const bufs = await onRanks(size, { kind: 'allreduce', dtype, op, count }, async (ctx) => {
                const buf = input(dtype, op, ctx.rank, count);
                // As engine.execute: one rank has nothing to do.
                if (size > 1 && algo === 'tree') await treeAllreduce(ctx, buf, new Uint8Array(buf.length));
                else if (size > 1) await ringAllreduce(ctx, buf);
                return buf;
              });
              const want = reference(dtype, op, size, count);
              for (const [r, buf] of bufs.entries()) {
                expectReduced(dtype, op, buf, want, `${what}, rank ${r}`);
                expect(Buffer.compare(buf, bufs[0]), `${what}: rank ${r} differs from rank 0`).toBe(0);
              }
            }
      });
});

describe('ring reduce-scatter leaves each rank its segment of the reference', () => {
  for (const size of SIZES)
    it(`${size} rank(s)`, async () => {
      for (const dtype of DTYPE_NAMES)
        for (const op of opsOf(dtype))
          for (const count of LENGTHS) {
            const what = label(size, dtype, op, count);
            const elem = DTYPES[dtype].bytes;
            const segs = segments(count, size, elem);
            const bufs = await onRanks(size, { kind: 'reducescatter', dtype, op, count }, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              // As engine.execute: the algorithm reduces, the engine scales the own segment for 'mean'.
              if (size > 1) await ringReduceScatter(ctx, buf, segs);
              const [off, len] = segs[ctx.rank];
              if (op === 'mean') ctx.k.scale(dtype, buf.subarray(off, off + len), 1 / size);
              return buf.subarray(off, off + len);
            });
            const want = reference(dtype, op, size, count);
            for (const [r, own] of bufs.entries()) {
              const [off, len] = segs[r];
              expectReduced(dtype, op, own, want.slice(off / elem, (off + len) / elem), `${what}, rank ${r}`);
            }
          }
    });
});

describe("broadcast (binomial tree and pipelined chain) gives every rank the root's bytes", () => {
  for (const algo of ['tree', 'chain'] as const)
    for (const size of SIZES)
      it(`${algo}, ${size} rank(s), every root`, async () => {
        for (const dtype of DTYPE_NAMES)
          for (let root = 0; root < size; root++)
            for (const count of LENGTHS) {
              const what = `${algo}: ${label(size, dtype, `root ${root}`, count)}`;
              const bufs = await onRanks(size, { kind: 'broadcast', dtype, root, count }, async (ctx) => {
                const buf = input(dtype, 'sum', ctx.rank, count);
                if (size > 1) await (algo === 'tree' ? treeBroadcast : chainBroadcast)(ctx, buf, root);
                return buf;
              });
              const want = input(dtype, 'sum', root, count);
              for (const [r, buf] of bufs.entries())
                expect(Buffer.compare(buf, want), `${what}: rank ${r}`).toBe(0);
            }
      });
});

describe('all-gather with per-rank lengths gives every rank every input, in rank order', () => {
  /** Element counts per rank: equal, uneven, and past the inline record (4096 bytes) for some ranks. */
  const layouts = (size: number, elem: number): number[][] => [
    ...LENGTHS.map((n) => Array.from({ length: size }, (_, r) => (r % 2 ? Math.ceil(n / 3) : n))),
    Array.from({ length: size }, (_, r) => (r === size - 1 ? Math.ceil(5000 / elem) : 1)),
    Array.from({ length: size }, (_, r) => Math.ceil(4100 / elem) + r),
  ];
  for (const size of SIZES)
    it(`${size} rank(s)`, async () => {
      for (const dtype of DTYPE_NAMES) {
        const elem = DTYPES[dtype].bytes;
        for (const counts of layouts(size, elem)) {
          const what = `${size} ranks, ${dtype}, counts ${counts.join(',')}`;
          const results = await onRanks(size, { kind: 'allgather', dtype, count: 0 }, (ctx) =>
            allgather(ctx, input(dtype, 'sum', ctx.rank, counts[ctx.rank]), -1, (b) => new Uint8Array(b)),
          );
          const inputs = counts.map((n, r) => input(dtype, 'sum', r, n));
          const want = Buffer.concat(inputs);
          let at = 0;
          const segs = inputs.map((b) => [(at += b.length) - b.length, b.length]);
          for (const [r, { out, segs: got }] of results.entries()) {
            expect(Buffer.compare(out, want), `${what}: rank ${r}`).toBe(0);
            expect(got, `${what}: rank ${r}`).toEqual(segs);
          }
        }
      }
    });

  it("an output too small on one rank fails every rank alike, naming that rank's", async () => {
    const results = await onRanks(3, { kind: 'allgather', dtype: 'float32', count: 0 }, (ctx) =>
      allgather(
        ctx,
        input('float32', 'sum', ctx.rank, 10),
        ctx.rank === 1 ? 119 : 120,
        (b) => new Uint8Array(b),
      )
        .then(() => undefined)
        .catch((err: Error) => err),
    );
    for (const err of results) {
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err?.message).toMatch(/rank 1's out holds 119 bytes, the result needs 120/);
    }
  });
});

// ---- across hosts: two-level all-reduce, host-ordered flat algorithms -------------------------

/**
 * Hosts x ranks per host, each laid out two ways: ranks numbered host by host, and dealt round
 * the hosts (rank r on host r % hosts), so the host order is not the rank order.
 */
const TOPOLOGIES = [
  [2, 2],
  [2, 3],
  [3, 2],
].flatMap(([hosts, per]) => {
  const n = hosts * per;
  const ranks = Array.from({ length: n }, (_, r) => r);
  return [
    {
      name: `${hosts}x${per} by host`,
      topo: new Topology(Array.from({ length: hosts }, (_, h) => ranks.slice(h * per, (h + 1) * per))),
    },
    {
      name: `${hosts}x${per} dealt`,
      topo: new Topology(Array.from({ length: hosts }, (_, h) => ranks.filter((r) => r % hosts === h))),
    },
  ];
});

describe('hierarchical all-reduce equals the flat ring and the reference at 2x2, 2x3, 3x2', () => {
  for (const { name, topo } of TOPOLOGIES)
    it(name, async () => {
      const size = topo.order.length;
      expect(topo.layered).toBe(true);
      for (const dtype of DTYPE_NAMES)
        for (const op of opsOf(dtype))
          for (const count of LENGTHS) {
            const what = `${name}: ${label(size, dtype, op, count)}`;
            const d = { kind: 'allreduce' as const, dtype, op, count };
            const hier = await onRanks(size, d, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              // Odd lengths: the default's ramp in miniature (1, 2, 4, 4, .., 2, 1 units); even
              // ones: 1 to 4 equal pieces (4 pieces of 3 elements: some are empty).
              const unit = count > 100 ? 128 : 8;
              const pieces =
                count % 2 === 1
                  ? rampPieces(buf.length, ctx.elem, unit, 4 * unit)
                  : segments(count, (count % 4) + 1, ctx.elem);
              await hierarchicalAllreduce(ctx, buf, topo, pieces);
              return buf;
            });
            const flat = await onRanks(size, d, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              await ringAllreduce(subgroup(ctx, topo.order), buf);
              return buf;
            });
            const want = reference(dtype, op, size, count);
            for (const [r, buf] of hier.entries()) {
              expectReduced(dtype, op, buf, want, `${what}, rank ${r}`);
              expect(Buffer.compare(buf, flat[r]), `${what}: rank ${r} differs from the flat ring`).toBe(0);
              expect(Buffer.compare(buf, hier[0]), `${what}: rank ${r} differs from rank 0`).toBe(0);
            }
          }
    });
});

describe('two-level reduce-scatter and all-gather equal the flat ring at 2x2, 2x3, 3x2', () => {
  for (const { name, topo } of TOPOLOGIES)
    it(name, async () => {
      const size = topo.order.length;
      for (const dtype of DTYPE_NAMES) {
        const elem = DTYPES[dtype].bytes;
        for (const op of opsOf(dtype))
          for (const count of LENGTHS) {
            const what = `${name}: ${label(size, dtype, op, count)}`;
            const segs = segments(count, size, elem);
            const d = { kind: 'reducescatter' as const, dtype, op, count };
            const own = (ctx: OpContext, buf: Uint8Array) =>
              buf.subarray(segs[ctx.rank][0], segs[ctx.rank][0] + segs[ctx.rank][1]);
            const two = await onRanks(size, d, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              // Ramped pieces in miniature (units of 8 bytes): several pieces even for short buffers.
              await hierarchicalReduceScatter(
                ctx,
                buf,
                segs,
                topo,
                0,
                rampPieces(buf.length, ctx.elem, 8, 32),
              );
              return own(ctx, buf);
            });
            const flat = await onRanks(size, d, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              const ring = subgroup(ctx, topo.order);
              await ringReduceScatter(ring, buf, byPosition(ring, segs));
              return own(ctx, buf);
            });
            const want = reference(dtype, op, size, count);
            for (const [r, mine] of two.entries()) {
              const [off, len] = segs[r];
              // ('mean' is scaled by the engine afterwards: here both hold the sum.)
              if (op !== 'mean')
                expectReduced(
                  dtype,
                  op,
                  mine,
                  want.slice(off / elem, (off + len) / elem),
                  `${what}, rank ${r}`,
                );
              expect(Buffer.compare(mine, flat[r]), `${what}: rank ${r} differs from the flat ring`).toBe(0);
            }
          }
        // All-gather: uneven blocks, some past the inline record.
        for (const n of [...LENGTHS, Math.ceil(5000 / elem)]) {
          const counts = Array.from({ length: size }, (_, r) => (r % 2 ? Math.ceil(n / 3) : n + r));
          const what = `${name}: ${dtype}, counts ${counts.join(',')}`;
          const results = await onRanks(size, { kind: 'allgather', dtype, count: 0 }, (ctx) =>
            allgather(
              ctx,
              input(dtype, 'sum', ctx.rank, counts[ctx.rank]),
              -1,
              (b) => new Uint8Array(b),
              () => (out, blocks, first) =>
                hierarchicalAllgather(
                  ctx,
                  out,
                  blocks,
                  topo,
                  first,
                  rampPieces(out.length, ctx.elem, 64, 256),
                ),
            ),
          );
          const want = Buffer.concat(counts.map((c, r) => input(dtype, 'sum', r, c)));
          for (const [r, { out }] of results.entries())
            expect(Buffer.compare(out, want), `${what}: rank ${r}`).toBe(0);
        }
      }
    });
});

describe('hierarchical all-reduce fails on every rank when one rank dies mid-op', () => {
  it('2x2 in ramped pieces (chained cross rings): every other rank rejects with the failure, none hangs', async () => {
    const topo = TOPOLOGIES.find((t) => t.name === '2x2 by host')!.topo;
    const count = 4096;
    const d = { kind: 'allreduce' as const, dtype: 'float32' as const, op: 'sum' as const, count };
    const ends: string[] = [];
    await expect(
      onRanks(4, d, async (ctx) => {
        if (ctx.rank === 3) {
          // Dies without taking part: the others are mid-op, waiting on it.
          await new Promise((r) => setTimeout(r, 5));
          throw new Error('rank 3 died');
        }
        const buf = input('float32', 'sum', ctx.rank, count);
        const pieces = rampPieces(buf.length, ctx.elem, 64, 1024);
        await hierarchicalAllreduce(ctx, buf, topo, pieces).catch((err: Error) => {
          ends.push(`rank ${ctx.rank}: ${err.message}`);
          throw err;
        });
      }),
    ).rejects.toThrow('rank 3 died');
    await new Promise((r) => setTimeout(r, 50));
    expect(ends.sort()).toEqual(['rank 0: rank 3 died', 'rank 1: rank 3 died', 'rank 2: rank 3 died']);
  });
});

describe('rampPieces', () => {
  it('covers the buffer with whole-element pieces that grow to the cap and shrink again', () => {
    for (const [bytes, elem] of [
      [64 << 20, 4],
      [(64 << 20) + 12, 4],
      [3 << 20, 2],
      [1000, 8],
      [5, 1],
    ]) {
      const pieces = rampPieces(bytes, elem, 1024, 8192);
      let end = 0;
      for (const [off, len] of pieces) {
        expect(off).toBe(end);
        expect(len % elem).toBe(0);
        end += len;
      }
      expect(end).toBe(bytes);
      const lens = pieces.map(([, len]) => len);
      expect(Math.max(...lens)).toBeLessThanOrEqual(8192);
      if (bytes >= 4 * 8192) expect(lens.slice(0, 4)).toEqual([1024, 2048, 4096, 8192]);
      if (bytes >= 4 * 8192) expect(lens.slice(-3)).toEqual([4096, 2048, 1024]);
    }
    expect(rampPieces(0, 4)).toEqual([[0, 0]]);
  });
});

describe('flat algorithms in host order give the same results as in rank order', () => {
  for (const { name, topo } of TOPOLOGIES.filter((t) => t.name.endsWith('dealt')))
    it(name, async () => {
      const size = topo.order.length;
      const inOrder = (ctx: OpContext) => subgroup(ctx, topo.order);
      for (const dtype of DTYPE_NAMES) {
        const elem = DTYPES[dtype].bytes;
        for (const count of LENGTHS) {
          for (const op of opsOf(dtype)) {
            const what = `${name}: ${label(size, dtype, op, count)}`;
            const want = reference(dtype, op, size, count);
            const tree = await onRanks(size, { kind: 'allreduce', dtype, op, count }, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              await treeAllreduce(inOrder(ctx), buf, new Uint8Array(buf.length));
              return buf;
            });
            for (const [r, buf] of tree.entries())
              expectReduced(dtype, op, buf, want, `tree ${what}, rank ${r}`);
            const segs = segments(count, size, elem);
            const rs = await onRanks(size, { kind: 'reducescatter', dtype, op, count }, async (ctx) => {
              const buf = input(dtype, op, ctx.rank, count);
              const c = inOrder(ctx);
              await ringReduceScatter(c, buf, byPosition(c, segs));
              const [off, len] = segs[ctx.rank];
              if (op === 'mean') ctx.k.scale(dtype, buf.subarray(off, off + len), 1 / size);
              return buf.subarray(off, off + len);
            });
            for (const [r, own] of rs.entries()) {
              const [off, len] = segs[r];
              expectReduced(
                dtype,
                op,
                own,
                want.slice(off / elem, (off + len) / elem),
                `rs ${what}, rank ${r}`,
              );
            }
          }
          for (const algo of ['tree', 'chain'] as const)
            for (let root = 0; root < size; root++) {
              const bufs = await onRanks(size, { kind: 'broadcast', dtype, root, count }, async (ctx) => {
                const buf = input(dtype, 'sum', ctx.rank, count);
                await (algo === 'tree' ? treeBroadcast : chainBroadcast)(inOrder(ctx), buf, root);
                return buf;
              });
              const want = input(dtype, 'sum', root, count);
              for (const [r, buf] of bufs.entries())
                expect(Buffer.compare(buf, want), `${algo} ${name} root ${root}: rank ${r}`).toBe(0);
            }
          const counts = Array.from({ length: size }, (_, r) => (r % 2 ? count : Math.ceil(4100 / elem) + r));
          const results = await onRanks(size, { kind: 'allgather', dtype, count: 0 }, (ctx) =>
            allgather(
              inOrder(ctx),
              input(dtype, 'sum', ctx.rank, counts[ctx.rank]),
              -1,
              (b) => new Uint8Array(b),
            ),
          );
          const gathered = Buffer.concat(counts.map((c, r) => input(dtype, 'sum', r, c)));
          for (const [r, { out }] of results.entries())
            expect(Buffer.compare(out, gathered), `allgather ${name} ${dtype}: rank ${r}`).toBe(0);
        }
      }
    });
});
