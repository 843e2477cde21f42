/**
 * Test data for the correctness runs: small integers, so every dtype (bfloat16 included) and
 * every order of reduction gives an exact result. Rank r's element i depends on (i + r) mod 7,
 * so a misplaced segment or a wrong rank's data shows. The same formulas live in the peer
 * programs (bench/peers), which check their results the same way.
 */
import type { BenchDType, BenchOp, Collective } from './table.js';

export const PERIOD = 7;

/** Rank r's input value at global element index i. */
export function inputValue(op: BenchOp, r: number, n: number, i: number): number {
  const k = (i + r) % PERIOD;
  if (op === 'prod') return k === 0 ? 2 : 1; // at most ceil(n/7) factors of 2: exact and small
  if (op === 'mean') return 1 + (i % PERIOD) + meanOffset(r, n); // offsets cancel: the mean is exact
  return 1 + k;
}

/** Per-rank offsets that sum to zero over the ranks. */
function meanOffset(r: number, n: number): number {
  return r < n - 1 ? r : -((n - 1) * (n - 2)) / 2;
}

/** The reduced value at global element i. */
export function reducedValue(op: BenchOp, n: number, i: number): number {
  if (op === 'mean') return 1 + (i % PERIOD);
  let acc = inputValue(op, 0, n, i);
  for (let r = 1; r < n; r++) {
    const v = inputValue(op, r, n, i);
    acc =
      op === 'sum' ? acc + v : op === 'prod' ? acc * v : op === 'min' ? Math.min(acc, v) : Math.max(acc, v);
  }
  return acc;
}

// ---- float16 / bfloat16 bits (carried in Uint16Array) ---------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round to nearest even; the patterns never need subnormals. */
export function toF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const e8 = (b >>> 23) & 0xff;
  if (e8 === 0) return sign;
  if (e8 === 0xff) return sign | 0x7c00 | (b & 0x7fffff ? 0x200 : 0);
  const e = e8 - 112;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) return sign;
  let h = sign | (e << 10) | ((b >>> 13) & 0x3ff);
  const rest = b & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

/** IEEE float16 bits to the number they encode. */
export function fromF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A number to bfloat16 bits, rounded to nearest even (NaN stays NaN). */
export function toBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bfloat16 bits to the number they encode. */
export function fromBf16(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** The value as stored in the dtype's typed array. */
export function encode(dtype: BenchDType, x: number): number {
  return dtype === 'float16' ? toF16(x) : dtype === 'bfloat16' ? toBf16(x) : x;
}

/** A dtype's stored value back to a number (the inverse of `encode`). */
export function decode(dtype: BenchDType, raw: number): number {
  return dtype === 'float16' ? fromF16(raw) : dtype === 'bfloat16' ? fromBf16(raw) : raw;
}

/** Relative tolerance for 'mean' (sum then scale by 1/n rounds once or twice). */
const MEAN_TOL: Record<BenchDType, number> = {
  float64: 1e-12,
  float32: 1e-6,
  float16: 2e-3,
  bfloat16: 1.6e-2,
  int32: 0,
  uint8: 0,
};

// ---- fill and check -------------------------------------------------------------------------

type Arr = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

/** Fills `a` (holding global elements offset..) with rank r's input. */
export function fill(a: Arr, dtype: BenchDType, op: BenchOp, r: number, n: number, offset: number): void {
  const m = Math.min(PERIOD, a.length);
  for (let j = 0; j < m; j++) a[j] = encode(dtype, inputValue(op, r, n, offset + j));
  // The pattern repeats every 7 elements: double the filled prefix instead of a per-element loop.
  for (let len = m; len < a.length; len *= 2) a.copyWithin(len, 0, Math.min(len, a.length - len));
}

/**
 * Counts elements of `a` (global elements offset..) that differ from `expected(i)`. 'mean' on
 * float types allows the rounding of the final scale; everything else must match exactly.
 */
export function countWrong(
  a: Arr,
  dtype: BenchDType,
  op: BenchOp,
  offset: number,
  expected: (i: number) => number,
): number {
  const tol = op === 'mean' ? MEAN_TOL[dtype] : 0;
  const want = Array.from({ length: PERIOD }, (_, k) => expected(offset + k));
  let wrong = 0;
  if (tol === 0) {
    const raw = want.map((v) => encode(dtype, v));
    for (let i = 0, k = 0; i < a.length; i++, k = k === PERIOD - 1 ? 0 : k + 1) if (a[i] !== raw[k]) wrong++;
  } else {
    for (let i = 0, k = 0; i < a.length; i++, k = k === PERIOD - 1 ? 0 : k + 1) {
      const got = decode(dtype, a[i]);
      if (!(Math.abs(got - want[k]) <= tol * Math.max(1, Math.abs(want[k])))) wrong++;
    }
  }
  return wrong;
}

/** Flips one bit of element 0 (the testing hook behind RINGBENCH_CORRUPT_RANK). */
export function corrupt(a: Arr): void {
  if (!a.length) return;
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.BYTES_PER_ELEMENT);
  bytes[bytes.length - 1] ^= 0x40;
}

/** The value expected at global element i of a collective's output. */
export function expectedOutput(
  c: Collective,
  op: BenchOp,
  n: number,
  root: number,
  i: number,
  perRank: number,
): number {
  switch (c) {
    case 'allreduce':
    case 'reducescatter':
      return reducedValue(op, n, i);
    case 'broadcast':
      return inputValue('sum', root, n, i);
    case 'allgather':
      return inputValue('sum', Math.floor(i / perRank), n, i);
  }
}
