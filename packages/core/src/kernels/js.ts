/**
 * Pure-JS kernels: the fallback when @ringwire/native is absent or RINGWIRE_NO_NATIVE=1.
 *
 * Semantics match native/src/kernels.h bit for bit (the tests compare them):
 *  - float sum/prod/min/max and scale write any NaN as the canonical quiet NaN (float32 0x7FC00000,
 *    float64 0x7FF8000000000000, float16 0x7E00, bfloat16 0x7FC0): which NaN payload hardware or
 *    the JIT propagates depends on operand order, so only a canonical NaN is reproducible.
 *  - min/max: NaN if either operand is NaN; -0 < +0 (Math.min/Math.max semantics).
 *  - float16/bfloat16 arithmetic is done in float32 and rounded to nearest even.
 *  - conversions keep NaN payloads the way x86 F16C does: quiet bit set, top payload bits kept.
 *  - int32/uint8 sum and prod wrap; scale is float-only and multiplies in float32 by
 *    Math.fround(factor) (float64: in float64).
 *
 * float32 arithmetic is done in float64 and rounded on store; for + and * of two float32 values
 * that double rounding is exact (53 >= 2*24+2), so results equal true float32 arithmetic.
 */

import type { Kernels } from '@ringwire/common';
import { DTYPES, type DType, type KernelOp } from '@ringwire/common';

type Arr = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array;
/** Elementwise loop: d[i] = op(d[i], s[i]) over d.length elements. */
type Loop<A> = (d: A, s: A) => void;
/** In-place unary loop (scale). */
type UnaryLoop<A> = (d: A, factor: number) => void;
/** Conversion loop: d[i] = f(s[i]) over s.length elements. */
type ConvLoop<S, D> = (s: S, d: D) => void;

interface Kind<A extends Arr> {
  readonly ctor: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => A;
  readonly bpe: number;
}

// ---------------------------------------------------------------------------------------------
// Scalar conversions (exported for tests). Bits are carried as int32 (Int32Array elements).

/** float32 bits -> float16 bits, round to nearest even. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff;
  if (a >= 0x7f800000) return sign | (a === 0x7f800000 ? 0x7c00 : 0x7e00 | ((a >>> 13) & 0x3ff));
  if (a >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to Inf
  if (a >= 0x38800000) {
    // Normal half: rebias the exponent, round off 13 mantissa bits (a carry may bump the exponent).
    const m = a - 0x38000000;
    return sign | ((m + 0xfff + ((m >>> 13) & 1)) >>> 13);
  }
  if (a < 0x33000000) return sign; // below 2^-25; 2^-25 itself ties to even (0)
  // Subnormal half: round(value / 2^-24) with the implicit bit restored.
  const mant = (a & 0x7fffff) | 0x800000;
  const shift = 126 - (a >>> 23); // 14..24
  let r = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (r & 1) !== 0)) r++; // may carry to 0x400, the smallest normal
  return sign | r;
}

/** float16 bits -> float32 bits as int32 (exact; NaN quieted, payload kept). */
export function f16BitsToF32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return sign | 0x7f800000 | (m !== 0 ? 0x400000 | (m << 13) : 0);
  if (e !== 0) return sign | ((e + 112) << 23) | (m << 13);
  if (m === 0) return sign;
  const p = 31 - Math.clz32(m); // subnormal m * 2^-24: normalize around the top set bit
  return sign | ((p + 103) << 23) | ((m << (23 - p)) & 0x7fffff);
}

/** float32 bits -> bfloat16 bits, round to nearest even (NaN: quiet, top payload bits kept). */
export function f32BitsToBf16(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** bfloat16 bits -> float32 bits as int32 (NaN quieted). */
export function bf16BitsToF32(h: number): number {
  const x = h << 16;
  return (x & 0x7fffffff) > 0x7f800000 ? x | 0x400000 : x;
}

// 256 KiB table: a lookup beats the branches of f16BitsToF32 in the widening loops.
let f16Table: Int32Array | null = null;
function getF16Table(): Int32Array {
  if (f16Table === null) {
    f16Table = new Int32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------
// Views. Aligned data is read through typed arrays made per call over the caller's bytes: two
// small view objects per call, but `i < d.length` loops over them measured ~1.5x faster than
// indexing a cached whole-buffer view at an offset. Misaligned data is staged through aligned
// module-level scratch blocks (64 KiB at a time).

const STAGE_BYTES = 1 << 16;
const stageA = new ArrayBuffer(STAGE_BYTES);
const stageB = new ArrayBuffer(STAGE_BYTES);
const stageA8 = new Uint8Array(stageA);
const stageB8 = new Uint8Array(stageB);

const F32: Kind<Float32Array> = { ctor: Float32Array, bpe: 4 };
const F64: Kind<Float64Array> = { ctor: Float64Array, bpe: 8 };
const I32: Kind<Int32Array> = { ctor: Int32Array, bpe: 4 };
const U16: Kind<Uint16Array> = { ctor: Uint16Array, bpe: 2 };
const U8: Kind<Uint8Array> = { ctor: Uint8Array, bpe: 1 };

function runBinary<A extends Arr>(k: Kind<A>, loop: Loop<A>, dst: Uint8Array, src: Uint8Array): void {
  const bpe = k.bpe;
  const n = dst.byteLength / bpe;
  if (((dst.byteOffset | src.byteOffset) & (bpe - 1)) === 0) {
    loop(new k.ctor(dst.buffer, dst.byteOffset, n), new k.ctor(src.buffer, src.byteOffset, n));
    return;
  }
  const per = STAGE_BYTES / bpe;
  for (let i = 0; i < n; i += per) {
    const m = Math.min(per, n - i);
    const lo = i * bpe;
    const hi = lo + m * bpe;
    stageA8.set(dst.subarray(lo, hi));
    stageB8.set(src.subarray(lo, hi));
    loop(new k.ctor(stageA, 0, m), new k.ctor(stageB, 0, m));
    dst.set(stageA8.subarray(0, hi - lo), lo);
  }
}

function runUnary<A extends Arr>(k: Kind<A>, loop: UnaryLoop<A>, dst: Uint8Array, factor: number): void {
  const bpe = k.bpe;
  const n = dst.byteLength / bpe;
  if ((dst.byteOffset & (bpe - 1)) === 0) {
    loop(new k.ctor(dst.buffer, dst.byteOffset, n), factor);
    return;
  }
  const per = STAGE_BYTES / bpe;
  for (let i = 0; i < n; i += per) {
    const m = Math.min(per, n - i);
    const lo = i * bpe;
    stageA8.set(dst.subarray(lo, lo + m * bpe));
    loop(new k.ctor(stageA, 0, m), factor);
    dst.set(stageA8.subarray(0, m * bpe), lo);
  }
}

function runConvert<S extends Arr, D extends Arr>(
  sk: Kind<S>,
  dk: Kind<D>,
  loop: ConvLoop<S, D>,
  src: Uint8Array,
  dst: Uint8Array,
): void {
  const n = src.byteLength / sk.bpe;
  if ((src.byteOffset & (sk.bpe - 1)) === 0 && (dst.byteOffset & (dk.bpe - 1)) === 0) {
    loop(new sk.ctor(src.buffer, src.byteOffset, n), new dk.ctor(dst.buffer, dst.byteOffset, n));
    return;
  }
  const per = STAGE_BYTES / Math.max(sk.bpe, dk.bpe);
  for (let i = 0; i < n; i += per) {
    const m = Math.min(per, n - i);
    stageA8.set(src.subarray(i * sk.bpe, (i + m) * sk.bpe));
    loop(new sk.ctor(stageA, 0, m), new dk.ctor(stageB, 0, m));
    dst.set(stageB8.subarray(0, m * dk.bpe), i * dk.bpe);
  }
}

// ---------------------------------------------------------------------------------------------
// Loops, one per (element type, op) so each stays monomorphic for the JIT. NaN is canonicalized
// with if/else: on Node 20 the equivalent `d[i] = r === r ? r : NaN` measured half as fast.

function sumF32(d: Float32Array, s: Float32Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = d[i] + s[i];
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function prodF32(d: Float32Array, s: Float32Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = d[i] * s[i];
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function minF32(d: Float32Array, s: Float32Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = Math.min(d[i], s[i]);
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function maxF32(d: Float32Array, s: Float32Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = Math.max(d[i], s[i]);
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}

function sumF64(d: Float64Array, s: Float64Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = d[i] + s[i];
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function prodF64(d: Float64Array, s: Float64Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = d[i] * s[i];
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function minF64(d: Float64Array, s: Float64Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = Math.min(d[i], s[i]);
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function maxF64(d: Float64Array, s: Float64Array): void {
  for (let i = 0; i < d.length; i++) {
    const r = Math.max(d[i], s[i]);
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}

function sumI32(d: Int32Array, s: Int32Array): void {
  for (let i = 0; i < d.length; i++) d[i] = (d[i] + s[i]) | 0;
}
function prodI32(d: Int32Array, s: Int32Array): void {
  for (let i = 0; i < d.length; i++) d[i] = Math.imul(d[i], s[i]);
}
function minI32(d: Int32Array, s: Int32Array): void {
  for (let i = 0; i < d.length; i++) {
    const a = d[i];
    const b = s[i];
    d[i] = Math.min(b, a);
  }
}
function maxI32(d: Int32Array, s: Int32Array): void {
  for (let i = 0; i < d.length; i++) {
    const a = d[i];
    const b = s[i];
    d[i] = Math.max(b, a);
  }
}

function sumU8(d: Uint8Array, s: Uint8Array): void {
  for (let i = 0; i < d.length; i++) d[i] = (d[i] + s[i]) & 0xff;
}
function prodU8(d: Uint8Array, s: Uint8Array): void {
  for (let i = 0; i < d.length; i++) d[i] = Math.imul(d[i], s[i]) & 0xff;
}
function minU8(d: Uint8Array, s: Uint8Array): void {
  for (let i = 0; i < d.length; i++) {
    const a = d[i];
    const b = s[i];
    d[i] = Math.min(b, a);
  }
}
function maxU8(d: Uint8Array, s: Uint8Array): void {
  for (let i = 0; i < d.length; i++) {
    const a = d[i];
    const b = s[i];
    d[i] = Math.max(b, a);
  }
}

// float16/bfloat16: widen blocks into float32 scratch, reuse the float32 loops, round back. Each
// block is addressed through subarray views: offset indexing measured ~1.4x slower here.
const BLOCK = 4096;
const wideA = new Float32Array(BLOCK);
const wideB = new Float32Array(BLOCK);
const wideABits = new Int32Array(wideA.buffer);
const wideBBits = new Int32Array(wideB.buffer);

type Widen = (src: Uint16Array, out: Int32Array) => void;
type Narrow = (bits: Int32Array, dst: Uint16Array) => void;

function widenF16(src: Uint16Array, out: Int32Array): void {
  const t = getF16Table();
  for (let j = 0; j < src.length; j++) out[j] = t[src[j]];
}
function narrowF16(bits: Int32Array, dst: Uint16Array): void {
  for (let j = 0; j < dst.length; j++) dst[j] = f32BitsToF16(bits[j]);
}
function widenBf16(src: Uint16Array, out: Int32Array): void {
  for (let j = 0; j < src.length; j++) out[j] = bf16BitsToF32(src[j]);
}
function narrowBf16(bits: Int32Array, dst: Uint16Array): void {
  for (let j = 0; j < dst.length; j++) dst[j] = f32BitsToBf16(bits[j]);
}

// The float32 loops run over the whole scratch block, or a view of its head for the last one.
const wideHead = (w: Float32Array, m: number) => (m === BLOCK ? w : w.subarray(0, m));

function halfLoop(widen: Widen, narrow: Narrow, op: Loop<Float32Array>): Loop<Uint16Array> {
  return (d, s) => {
    const n = d.length;
    for (let i = 0; i < n; i += BLOCK) {
      const m = Math.min(BLOCK, n - i);
      const db = d.subarray(i, i + m);
      widen(db, wideABits);
      widen(s.subarray(i, i + m), wideBBits);
      op(wideHead(wideA, m), wideHead(wideB, m));
      narrow(wideABits, db);
    }
  };
}

function scaleF32(d: Float32Array, factor: number): void {
  const f = Math.fround(factor);
  for (let i = 0; i < d.length; i++) {
    const r = d[i] * f;
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function scaleF64(d: Float64Array, f: number): void {
  for (let i = 0; i < d.length; i++) {
    const r = d[i] * f;
    if (r === r) d[i] = r;
    else d[i] = NaN;
  }
}
function halfScale(widen: Widen, narrow: Narrow): UnaryLoop<Uint16Array> {
  return (d, factor) => {
    const n = d.length;
    for (let i = 0; i < n; i += BLOCK) {
      const m = Math.min(BLOCK, n - i);
      const db = d.subarray(i, i + m);
      widen(db, wideABits);
      scaleF32(wideHead(wideA, m), factor);
      narrow(wideABits, db);
    }
  };
}

function convF32ToF16(s: Int32Array, d: Uint16Array): void {
  for (let i = 0; i < s.length; i++) d[i] = f32BitsToF16(s[i]);
}
function convF32ToBf16(s: Int32Array, d: Uint16Array): void {
  for (let i = 0; i < s.length; i++) d[i] = f32BitsToBf16(s[i]);
}
function convF16ToF32(s: Uint16Array, d: Int32Array): void {
  const t = getF16Table();
  for (let i = 0; i < s.length; i++) d[i] = t[s[i]];
}
function convBf16ToF32(s: Uint16Array, d: Int32Array): void {
  for (let i = 0; i < s.length; i++) d[i] = bf16BitsToF32(s[i]);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

type Reducer = (dst: Uint8Array, src: Uint8Array) => void;
type Scaler = (dst: Uint8Array, factor: number) => void;

function reducers<A extends Arr>(k: Kind<A>, ops: Record<KernelOp, Loop<A>>): Record<KernelOp, Reducer> {
  const out = Object.create(null) as Record<KernelOp, Reducer>;
  for (const op of Object.keys(ops) as KernelOp[]) {
    const loop = ops[op];
    out[op] = (dst, src) => runBinary(k, loop, dst, src);
  }
  return out;
}

const f32Ops = { sum: sumF32, prod: prodF32, min: minF32, max: maxF32 };
const halfOps = (w: Widen, nr: Narrow): Record<KernelOp, Loop<Uint16Array>> => ({
  sum: halfLoop(w, nr, sumF32),
  prod: halfLoop(w, nr, prodF32),
  min: halfLoop(w, nr, minF32),
  max: halfLoop(w, nr, maxF32),
});

const REDUCE = Object.assign(Object.create(null) as Record<DType, Record<KernelOp, Reducer>>, {
  float32: reducers(F32, f32Ops),
  float64: reducers(F64, { sum: sumF64, prod: prodF64, min: minF64, max: maxF64 }),
  int32: reducers(I32, { sum: sumI32, prod: prodI32, min: minI32, max: maxI32 }),
  uint8: reducers(U8, { sum: sumU8, prod: prodU8, min: minU8, max: maxU8 }),
  float16: reducers(U16, halfOps(widenF16, narrowF16)),
  bfloat16: reducers(U16, halfOps(widenBf16, narrowBf16)),
});

const scaleF16 = halfScale(widenF16, narrowF16);
const scaleBf16 = halfScale(widenBf16, narrowBf16);
const SCALE = Object.assign(Object.create(null) as Record<DType, Scaler | null>, {
  float32: (dst: Uint8Array, f: number) => runUnary(F32, scaleF32, dst, f),
  float64: (dst: Uint8Array, f: number) => runUnary(F64, scaleF64, dst, f),
  int32: null,
  uint8: null,
  float16: (dst: Uint8Array, f: number) => runUnary(U16, scaleF16, dst, f),
  bfloat16: (dst: Uint8Array, f: number) => runUnary(U16, scaleBf16, dst, f),
});

function elementBytes(dtype: DType): number {
  const b = Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype].bytes : undefined;
  if (b === undefined) throw new TypeError(`unknown dtype: ${String(dtype)}`);
  return b;
}

function checkConvert(src: Uint8Array, dst: Uint8Array, sb: number, db: number): void {
  if (src.byteLength % sb !== 0 || dst.byteLength % db !== 0 || src.byteLength / sb !== dst.byteLength / db) {
    throw new RangeError(
      `convert: src (${src.byteLength} bytes) and dst (${dst.byteLength} bytes) hold different element counts`,
    );
  }
}

export const jsKernels: Kernels = Object.freeze({
  name: 'js' as const,
  reduceInto(dtype: DType, op: KernelOp, dst: Uint8Array, src: Uint8Array): void {
    const eb = elementBytes(dtype);
    const fn = REDUCE[dtype][op];
    if (fn === undefined) throw new TypeError(`unknown op: ${String(op)}`);
    if (dst.byteLength !== src.byteLength || dst.byteLength % eb !== 0) {
      throw new RangeError(
        `reduceInto: dst (${dst.byteLength} bytes) and src (${src.byteLength} bytes) must be equal whole numbers of ${eb}-byte elements`,
      );
    }
    fn(dst, src);
  },
  scale(dtype: DType, dst: Uint8Array, factor: number): void {
    const eb = elementBytes(dtype);
    const fn = SCALE[dtype];
    if (fn === null) throw new TypeError('scale: float dtypes only');
    if (typeof factor !== 'number') throw new TypeError('scale: factor must be a number');
    if (dst.byteLength % eb !== 0) {
      throw new RangeError(
        `scale: dst (${dst.byteLength} bytes) is not a whole number of ${eb}-byte elements`,
      );
    }
    fn(dst, factor);
  },
  copy(dst: Uint8Array, src: Uint8Array): void {
    if (dst.byteLength !== src.byteLength)
      throw new RangeError(`copy: dst (${dst.byteLength} bytes) and src (${src.byteLength} bytes) differ`);
    dst.set(src);
  },
  f32ToF16(src: Uint8Array, dst: Uint8Array): void {
    checkConvert(src, dst, 4, 2);
    runConvert(I32, U16, convF32ToF16, src, dst);
  },
  f32ToBf16(src: Uint8Array, dst: Uint8Array): void {
    checkConvert(src, dst, 4, 2);
    runConvert(I32, U16, convF32ToBf16, src, dst);
  },
  f16ToF32(src: Uint8Array, dst: Uint8Array): void {
    checkConvert(src, dst, 2, 4);
    runConvert(U16, I32, convF16ToF32, src, dst);
  },
  bf16ToF32(src: Uint8Array, dst: Uint8Array): void {
    checkConvert(src, dst, 2, 4);
    runConvert(U16, I32, convBf16ToF32, src, dst);
  },
});
