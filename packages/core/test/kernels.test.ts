// Reduction and conversion kernels: the JS kernels against an independent per-element reference
// and hand-computed values, and every native table (portable C++, AVX2+F16C) against the JS
// kernels bit for bit. Native tests fail when the addon is missing (CI builds it); set
// RINGWIRE_NO_NATIVE=1 to run only the JS half.

import { DTYPE_NAMES, DTYPES, type DType, type KernelOp } from '@ringwire/common';
import { afterEach, describe, expect, it } from 'vitest';
import {
  jsKernels,
  type Kernels,
  kernelsInfo,
  loadKernels,
  nativeKernels,
  nativeKernelVariants,
} from '../src/kernels/index.js';
import { bf16BitsToF32, f16BitsToF32, f32BitsToBf16, f32BitsToF16 } from '../src/kernels/js.js';

const OPS: KernelOp[] = ['sum', 'prod', 'min', 'max'];
const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];
const LENGTHS = [1, 7, 33, 1000, 65537];
const NO_NATIVE = process.env.RINGWIRE_NO_NATIVE === '1';

// ---- deterministic data ----------------------------------------------------------------------

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const F32_SPECIAL = [
  0x7fc00000,
  0xffc00000,
  0x7f800001,
  0x7fa00000,
  0x7fc01234,
  0xffbfffff, // NaNs: quiet, signalling, payloads
  0x7f800000,
  0xff800000,
  0x00000000,
  0x80000000, // +-Inf, +-0
  0x00000001,
  0x807fffff,
  0x00400000,
  0x7f7fffff,
  0xff7fffff,
  0x3f800000,
  0xbf800000,
];
const F64_SPECIAL: Array<[number, number]> = [
  [0x7ff80000, 0],
  [0xfff80000, 0],
  [0x7ff00000, 1],
  [0x7ff40000, 0x1234],
  [0x7ff00000, 0],
  [0xfff00000, 0],
  [0, 0],
  [0x80000000, 0],
  [0, 1],
  [0x800fffff, 0xffffffff],
  [0x7fefffff, 0xffffffff],
  [0x3ff00000, 0],
];
const H16_SPECIAL = [
  0x7e00, 0xfe00, 0x7c01, 0x7d55, 0x7c00, 0xfc00, 0, 0x8000, 1, 0x83ff, 0x7bff, 0xfbff, 0x3c00,
];
const BF16_SPECIAL = [
  0x7fc0, 0xffc0, 0x7f81, 0x7faa, 0x7f80, 0xff80, 0, 0x8000, 1, 0x807f, 0x7f7f, 0xff7f, 0x3f80,
];

/** Fills n elements of dtype at v with a mix of specials, arbitrary bit patterns and moderate values. */
function fill(dtype: DType, v: DataView, n: number, next: () => number): void {
  for (let i = 0; i < n; i++) {
    const r = next();
    const kind = r & 7;
    switch (dtype) {
      case 'float32':
        if (kind === 0) v.setUint32(4 * i, next(), true);
        else if (kind === 1) v.setUint32(4 * i, F32_SPECIAL[next() % F32_SPECIAL.length], true);
        else v.setFloat32(4 * i, (next() / 2 ** 32 - 0.5) * 2 ** ((next() % 41) - 20), true);
        break;
      case 'float64':
        if (kind === 0) {
          v.setUint32(8 * i, next(), true);
          v.setUint32(8 * i + 4, next(), true);
        } else if (kind === 1) {
          const [hi, lo] = F64_SPECIAL[next() % F64_SPECIAL.length];
          v.setUint32(8 * i, lo, true);
          v.setUint32(8 * i + 4, hi, true);
        } else v.setFloat64(8 * i, (next() / 2 ** 32 - 0.5) * 2 ** ((next() % 81) - 40), true);
        break;
      case 'int32':
        v.setInt32(
          4 * i,
          kind === 1 ? [0x7fffffff, -0x80000000, -1, 0, 1, 65536][next() % 6] : next() | 0,
          true,
        );
        break;
      case 'uint8':
        v.setUint8(i, r >>> 24);
        break;
      case 'float16':
      case 'bfloat16': {
        const special = dtype === 'float16' ? H16_SPECIAL : BF16_SPECIAL;
        let h: number;
        if (kind < 3) h = next() & 0xffff;
        else if (kind === 3) h = special[next() % special.length];
        // Moderate magnitudes, so sums and products are mostly finite and exercise rounding.
        else if (dtype === 'float16') h = (next() & 0x8000) | ((8 + (next() % 16)) << 10) | (next() & 0x3ff);
        else h = (next() & 0x8000) | ((112 + (next() % 32)) << 7) | (next() & 0x7f);
        v.setUint16(2 * i, h, true);
        break;
      }
    }
  }
}

// ---- helpers ---------------------------------------------------------------------------------

const hex = (x: number, w: number) => `0x${(x >>> 0).toString(16).padStart(w, '0')}`;

/** Byte-equality with a readable first mismatch (expect().toEqual on 500 KiB is unreadable). */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, bpe: number, what: string): void {
  expect(actual.byteLength, what).toBe(expected.byteLength);
  for (let i = 0; i < actual.byteLength; i++) {
    if (actual[i] !== expected[i]) {
      const e = Math.floor(i / bpe) * bpe;
      const a = Array.from(actual.subarray(e, e + bpe), (b) => hex(b, 2)).join(' ');
      const x = Array.from(expected.subarray(e, e + bpe), (b) => hex(b, 2)).join(' ');
      expect.fail(`${what}: element ${e / bpe} differs: got [${a}], want [${x}]`);
    }
  }
}

/** A view of `bytes` bytes at `offset` into a fresh SharedArrayBuffer with guard bytes around it. */
function sabView(bytes: number, offset: number): Uint8Array {
  const sab = new SharedArrayBuffer(offset + bytes + 16);
  new Uint8Array(sab).fill(0xa5);
  return new Uint8Array(sab, offset, bytes);
}

function expectGuardsIntact(v: Uint8Array, what: string): void {
  const all = new Uint8Array(v.buffer);
  for (let i = 0; i < all.length; i++) {
    if ((i < v.byteOffset || i >= v.byteOffset + v.byteLength) && all[i] !== 0xa5) {
      expect.fail(`${what}: wrote outside the view at byte ${i}`);
    }
  }
}

function copyTo(bytes: Uint8Array, offset: number): Uint8Array {
  const v = sabView(bytes.byteLength, offset);
  v.set(bytes);
  return v;
}

function u32(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, true);
  return b;
}

// ---- independent per-element reference (DataView, no typed-array fast paths) ----------------

const _isNaNBits32 = (b: number) => (b & 0x7fffffff) > 0x7f800000;

function refOp(op: KernelOp, a: number, b: number): number {
  switch (op) {
    case 'sum':
      return a + b;
    case 'prod':
      return a * b;
    case 'min':
      if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
      if (a === b) return Object.is(a, -0) || Object.is(b, -0) ? -0 : a;
      return Math.min(a, b);
    case 'max':
      if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
      if (a === b) return Object.is(a, 0) || Object.is(b, 0) ? 0 : a;
      return Math.max(a, b);
  }
}

function reference(dtype: DType, op: KernelOp, dst: Uint8Array, src: Uint8Array): Uint8Array {
  const out = dst.slice();
  const o = new DataView(out.buffer);
  const s = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const n = dst.byteLength / DTYPES[dtype].bytes;
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'float32': {
        const r = Math.fround(refOp(op, o.getFloat32(4 * i, true), s.getFloat32(4 * i, true)));
        if (Number.isNaN(r)) o.setUint32(4 * i, 0x7fc00000, true);
        else o.setFloat32(4 * i, r, true);
        break;
      }
      case 'float64': {
        const r = refOp(op, o.getFloat64(8 * i, true), s.getFloat64(8 * i, true));
        if (Number.isNaN(r)) {
          o.setUint32(8 * i, 0, true);
          o.setUint32(8 * i + 4, 0x7ff80000, true);
        } else o.setFloat64(8 * i, r, true);
        break;
      }
      case 'int32': {
        const a = o.getInt32(4 * i, true);
        const b = s.getInt32(4 * i, true);
        const r =
          op === 'sum'
            ? a + b
            : op === 'prod'
              ? Number((BigInt(a) * BigInt(b)) & 0xffffffffn)
              : refOp(op, a, b);
        o.setInt32(4 * i, r | 0, true);
        break;
      }
      case 'uint8': {
        const a = o.getUint8(i);
        const b = s.getUint8(i);
        o.setUint8(i, (op === 'sum' ? a + b : op === 'prod' ? a * b : refOp(op, a, b)) % 256);
        break;
      }
      case 'float16':
      case 'bfloat16': {
        const [widen, narrow] =
          dtype === 'float16' ? [f16BitsToF32, f32BitsToF16] : [bf16BitsToF32, f32BitsToBf16];
        const a = new DataView(u32(widen(o.getUint16(2 * i, true))).buffer).getFloat32(0, true);
        const b = new DataView(u32(widen(s.getUint16(2 * i, true))).buffer).getFloat32(0, true);
        const r = Math.fround(refOp(op, a, b));
        const tmp = new DataView(new ArrayBuffer(4));
        if (Number.isNaN(r)) tmp.setUint32(0, 0x7fc00000, true);
        else tmp.setFloat32(0, r, true);
        o.setUint16(2 * i, narrow(tmp.getInt32(0, true)), true);
        break;
      }
    }
  }
  return out;
}

// ---- JS kernels ------------------------------------------------------------------------------

describe('js kernels: reduceInto against a per-element reference', () => {
  for (const dtype of DTYPE_NAMES) {
    for (const op of OPS) {
      it(`${dtype} ${op}`, () => {
        const bpe = DTYPES[dtype].bytes;
        const next = xorshift(0x9e3779b9 ^ (DTYPE_NAMES.indexOf(dtype) * 31 + OPS.indexOf(op)));
        for (const n of [1, 7, 33, 1000]) {
          for (const [dOff, sOff] of [
            [0, 0],
            [1, 3],
            [7, 5],
            [bpe, 2 * bpe],
          ]) {
            const a = new Uint8Array(n * bpe);
            const b = new Uint8Array(n * bpe);
            fill(dtype, new DataView(a.buffer), n, next);
            fill(dtype, new DataView(b.buffer), n, next);
            const dst = copyTo(a, dOff);
            const src = copyTo(b, sOff);
            jsKernels.reduceInto(dtype, op, dst, src);
            const what = `${dtype} ${op} n=${n} offsets ${dOff}/${sOff}`;
            expectSameBytes(dst, reference(dtype, op, a, b), bpe, what);
            expectSameBytes(src, b, bpe, `${what} (src unchanged)`);
            expectGuardsIntact(dst, what);
          }
        }
      });
    }
  }
});

describe('js kernels: edge semantics', () => {
  const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
  const bitsF32 = (v: Uint8Array) => Array.from(new Uint32Array(v.buffer, v.byteOffset, v.byteLength / 4));

  it('int32 sum and prod wrap like C int32', () => {
    const d = new Int32Array([0x7fffffff, -0x80000000, 46341, 0x10000, -0x80000000]);
    const s = new Int32Array([1, -1, 46341, 0x10000, -1]);
    const p = d.slice();
    jsKernels.reduceInto('int32', 'sum', new Uint8Array(d.buffer), new Uint8Array(s.buffer));
    expect(Array.from(d)).toEqual([-0x80000000, 0x7fffffff, 92682, 0x20000, 0x7fffffff]);
    jsKernels.reduceInto('int32', 'prod', new Uint8Array(p.buffer), new Uint8Array(s.buffer));
    expect(Array.from(p)).toEqual([0x7fffffff, -0x80000000, -2147479015, 0, -0x80000000]);
  });

  it('uint8 sum and prod wrap mod 256', () => {
    const d = new Uint8Array([200, 255, 16, 255, 3]);
    const p = d.slice();
    const s = new Uint8Array([100, 1, 16, 255, 5]);
    jsKernels.reduceInto('uint8', 'sum', d, s);
    expect(Array.from(d)).toEqual([44, 0, 32, 254, 8]);
    jsKernels.reduceInto('uint8', 'prod', p, s);
    expect(Array.from(p)).toEqual([(200 * 100) % 256, 255, 0, 1, 15]);
  });

  it('min/max: NaN propagates as the canonical NaN, -0 < +0', () => {
    const mk = () => f32(NaN, 1, -0, 0, 2, -Infinity);
    const other = f32(1, NaN, 0, -0, 2, Infinity);
    new DataView(other.buffer).setUint32(4, 0xffc01234, true); // a negative NaN with a payload
    const lo = mk();
    jsKernels.reduceInto('float32', 'min', lo, other);
    expect(bitsF32(lo)).toEqual([0x7fc00000, 0x7fc00000, 0x80000000, 0x80000000, 0x40000000, 0xff800000]);
    const hi = mk();
    jsKernels.reduceInto('float32', 'max', hi, other);
    expect(bitsF32(hi)).toEqual([0x7fc00000, 0x7fc00000, 0, 0, 0x40000000, 0x7f800000]);
  });

  it('sum/prod write the canonical NaN whatever the input payloads', () => {
    const d = f32(0, Infinity, 1);
    const s = f32(0, -Infinity, 1);
    new DataView(d.buffer).setUint32(0, 0xff801234, true);
    new DataView(s.buffer).setUint32(8, 0x7fa00001, true);
    jsKernels.reduceInto('float32', 'sum', d, s);
    expect(bitsF32(d)).toEqual([0x7fc00000, 0x7fc00000, 0x7fc00000]);
  });

  it('float ops are commutative bit for bit (NaN included)', () => {
    for (const dtype of FLOATS) {
      const bpe = DTYPES[dtype].bytes;
      const next = xorshift(77 + bpe);
      const a = new Uint8Array(4096 * bpe);
      const b = new Uint8Array(4096 * bpe);
      fill(dtype, new DataView(a.buffer), 4096, next);
      fill(dtype, new DataView(b.buffer), 4096, next);
      for (const op of OPS) {
        const ab = a.slice();
        const ba = b.slice();
        jsKernels.reduceInto(dtype, op, ab, b);
        jsKernels.reduceInto(dtype, op, ba, a);
        expectSameBytes(ab, ba, bpe, `${dtype} ${op} commutes`);
      }
    }
  });

  it('float16 arithmetic rounds the float32 result to nearest even', () => {
    // 2048 + 1 is a tie between 2048 and 2050 in float16: ties to even gives 2048; 2050 + 1 -> 2052.
    const d = new Uint16Array([0x6800, 0x6801, 0x7bff, 0x3c00]);
    const s = new Uint16Array([0x3c00, 0x3c00, 0x7bff, 0x0001]);
    jsKernels.reduceInto('float16', 'sum', new Uint8Array(d.buffer), new Uint8Array(s.buffer));
    expect(Array.from(d, (x) => hex(x, 4))).toEqual(['0x6800', '0x6802', '0x7c00', '0x3c00']);
  });

  it('scale multiplies in float32 by fround(factor), float64 in float64, rejects integers', () => {
    const d = new Float32Array([3, 1e30, -0, Infinity]);
    jsKernels.scale('float32', new Uint8Array(d.buffer), 1 / 3);
    const third = Math.fround(1 / 3);
    expect(Array.from(d)).toEqual([
      Math.fround(3 * third),
      Math.fround(Math.fround(1e30) * third),
      -0,
      Infinity,
    ]);
    const z = new Float32Array([Infinity]);
    jsKernels.scale('float32', new Uint8Array(z.buffer), 0);
    expect(new Uint32Array(z.buffer)[0]).toBe(0x7fc00000);
    const g = new Float64Array([3]);
    jsKernels.scale('float64', new Uint8Array(g.buffer), 1 / 3);
    expect(g[0]).toBe(3 * (1 / 3));
    const h = new Uint16Array([0x4200]); // 3.0
    jsKernels.scale('float16', new Uint8Array(h.buffer), 0.5);
    expect(h[0]).toBe(0x3e00); // 1.5
    expect(() => jsKernels.scale('int32', new Uint8Array(4), 2)).toThrow(TypeError);
    expect(() => jsKernels.scale('uint8', new Uint8Array(4), 2)).toThrow(TypeError);
  });

  it('rejects bad arguments', () => {
    expect(() => jsKernels.reduceInto('float32', 'sum', new Uint8Array(8), new Uint8Array(4))).toThrow(
      RangeError,
    );
    expect(() => jsKernels.reduceInto('float32', 'sum', new Uint8Array(6), new Uint8Array(6))).toThrow(
      RangeError,
    );
    expect(() =>
      jsKernels.reduceInto('float32', 'mean' as KernelOp, new Uint8Array(4), new Uint8Array(4)),
    ).toThrow(TypeError);
    expect(() =>
      jsKernels.reduceInto('toString' as DType, 'sum', new Uint8Array(4), new Uint8Array(4)),
    ).toThrow(TypeError);
    expect(() => jsKernels.f32ToF16(new Uint8Array(8), new Uint8Array(2))).toThrow(RangeError);
  });

  it('works on Node Buffers at pool offsets', () => {
    const a = Buffer.from(new Float32Array([1, 2, 3]).buffer);
    const d = Buffer.allocUnsafe(13).subarray(1); // pool slice, offset not a multiple of 4
    a.copy(d, 0, 0, 12);
    jsKernels.reduceInto('float32', 'sum', d.subarray(0, 12), a);
    expect(Array.from(new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + 12)))).toEqual([2, 4, 6]);
  });
});

// ---- conversions: hand-computed values -------------------------------------------------------

const F32_TO_F16: Array<[number, number, string]> = [
  [0x3f800000, 0x3c00, '1.0'],
  [0xc0000000, 0xc000, '-2.0'],
  [0x477fe000, 0x7bff, '65504 (max)'],
  [0x477fefff, 0x7bff, 'just below 65520'],
  [0x477ff000, 0x7c00, '65520 -> Inf (tie to even)'],
  [0x7f7fffff, 0x7c00, 'FLT_MAX -> Inf'],
  [0x7f800000, 0x7c00, '+Inf'],
  [0xff800000, 0xfc00, '-Inf'],
  [0x33800000, 0x0001, '2^-24 smallest denormal'],
  [0x33000000, 0x0000, '2^-25 ties to even 0'],
  [0x33400000, 0x0001, '1.5 * 2^-25'],
  [0x33000001, 0x0001, 'just above 2^-25'],
  [0x38800000, 0x0400, '2^-14 smallest normal'],
  [0x387fc000, 0x03ff, 'largest denormal'],
  [0x387ff000, 0x0400, 'tie between largest denormal and smallest normal -> even'],
  [0x3dcccccd, 0x2e66, '0.1'],
  [0x3f801000, 0x3c00, '1 + 2^-11 ties to even (down)'],
  [0x3f803000, 0x3c02, '1 + 3 * 2^-11 ties to even (up)'],
  [0x3f801001, 0x3c01, 'just above a tie'],
  [0x80000000, 0x8000, '-0'],
  [0x00000001, 0x0000, 'float32 denormal underflows to +0'],
  [0x80000001, 0x8000, 'negative float32 denormal underflows to -0'],
  [0x7fc00000, 0x7e00, 'quiet NaN'],
  [0xffc00000, 0xfe00, 'negative quiet NaN'],
  [0x7f800001, 0x7e00, 'signalling NaN, payload below f16 precision: quieted'],
  [0x7fa00000, 0x7f00, 'signalling NaN: quieted, top payload bits kept'],
  [0x7fc02000, 0x7e01, 'quiet NaN payload kept'],
];
const F16_TO_F32: Array<[number, number, string]> = [
  [0x3c00, 0x3f800000, '1.0'],
  [0x0001, 0x33800000, '2^-24'],
  [0x03ff, 0x387fc000, 'largest denormal'],
  [0x8001, 0xb3800000, '-2^-24'],
  [0x7bff, 0x477fe000, '65504'],
  [0x7c00, 0x7f800000, 'Inf'],
  [0x8000, 0x80000000, '-0'],
  [0x7e00, 0x7fc00000, 'quiet NaN'],
  [0x7d00, 0x7fe00000, 'signalling NaN quieted, payload kept'],
  [0xfc01, 0xffc02000, 'negative signalling NaN'],
];
const F32_TO_BF16: Array<[number, number, string]> = [
  [0x3f800000, 0x3f80, '1.0'],
  [0x3f808000, 0x3f80, 'tie, even below'],
  [0x3f818000, 0x3f82, 'tie, odd below -> up'],
  [0x3f808001, 0x3f81, 'just above a tie'],
  [0x7f7fffff, 0x7f80, 'FLT_MAX -> Inf'],
  [0xff800000, 0xff80, '-Inf'],
  [0x80000000, 0x8000, '-0'],
  [0x00008000, 0x0000, 'denormal tie -> even 0'],
  [0x00018000, 0x0002, 'denormal tie -> even 2'],
  [0x7fc00000, 0x7fc0, 'quiet NaN'],
  [0x7f800001, 0x7fc0, 'signalling NaN quieted (would otherwise round to Inf)'],
  [0xff810000, 0xffc1, 'negative NaN payload kept'],
];
const BF16_TO_F32: Array<[number, number, string]> = [
  [0x3f80, 0x3f800000, '1.0'],
  [0xff80, 0xff800000, '-Inf'],
  [0x0001, 0x00010000, 'denormal'],
  [0x7f81, 0x7fc10000, 'signalling NaN quieted'],
];

type Conv = 'f32ToF16' | 'f16ToF32' | 'f32ToBf16' | 'bf16ToF32';
const CONV_CASES: Array<[Conv, Array<[number, number, string]>, number, number]> = [
  ['f32ToF16', F32_TO_F16, 4, 2],
  ['f16ToF32', F16_TO_F32, 2, 4],
  ['f32ToBf16', F32_TO_BF16, 4, 2],
  ['bf16ToF32', BF16_TO_F32, 2, 4],
];

function checkHandValues(k: Kernels): void {
  for (const [fn, cases, sb, db] of CONV_CASES) {
    for (const offset of [0, 1]) {
      const src = sabView(cases.length * sb, offset);
      const dst = sabView(cases.length * db, 3 - offset);
      const sv = new DataView(src.buffer, src.byteOffset);
      const dv = new DataView(dst.buffer, dst.byteOffset);
      cases.forEach(([x], i) => (sb === 4 ? sv.setUint32(4 * i, x, true) : sv.setUint16(2 * i, x, true)));
      k[fn](src, dst);
      cases.forEach(([, want, label], i) => {
        const got = db === 4 ? dv.getUint32(4 * i, true) : dv.getUint16(2 * i, true);
        expect(hex(got, db * 2), `${k.name} ${fn} ${label}`).toBe(hex(want, db * 2));
      });
      expectGuardsIntact(dst, fn);
    }
  }
}

function allHalfPatterns(): Uint8Array {
  const h = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) h[i] = i;
  return new Uint8Array(h.buffer);
}

/** f16 -> f32 -> f16 (and bf16 likewise) is the identity except that NaNs come back quiet. */
function checkRoundTrip(
  k: Kernels,
  toF32: 'f16ToF32' | 'bf16ToF32',
  fromF32: 'f32ToF16' | 'f32ToBf16',
): void {
  const halves = allHalfPatterns();
  const wide = new Uint8Array(65536 * 4);
  const back = new Uint8Array(65536 * 2);
  k[toF32](halves, wide);
  k[fromF32](wide, back);
  const b = new Uint16Array(back.buffer);
  const [expMask, quiet] = toF32 === 'f16ToF32' ? [0x7c00, 0x0200] : [0x7f80, 0x0040];
  for (let h = 0; h < 65536; h++) {
    const nan = (h & expMask) === expMask && (h & ~expMask & 0x7fff) !== 0;
    if (b[h] !== (nan ? h | quiet : h))
      expect.fail(`${k.name} ${toF32}/${fromF32}: ${hex(h, 4)} -> ${hex(b[h], 4)}`);
  }
}

describe('js kernels: conversions', () => {
  it('match hand-computed values (aligned and unaligned)', () => checkHandValues(jsKernels));
  it('f16 -> f32 -> f16 round-trips all 65536 patterns', () =>
    checkRoundTrip(jsKernels, 'f16ToF32', 'f32ToF16'));
  it('bf16 -> f32 -> bf16 round-trips all 65536 patterns', () =>
    checkRoundTrip(jsKernels, 'bf16ToF32', 'f32ToBf16'));
  it('f16 -> f32 is exact: every finite half equals its float32 value', () => {
    const wide = new Float32Array(65536);
    jsKernels.f16ToF32(allHalfPatterns(), new Uint8Array(wide.buffer));
    for (let h = 0; h < 65536; h++) {
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      if (e === 0x1f) continue;
      const v = (h & 0x8000 ? -1 : 1) * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
      if (!Object.is(wide[h], v)) expect.fail(`${hex(h, 4)} -> ${wide[h]}, want ${v}`);
    }
  });
});

// ---- kernel selection ------------------------------------------------------------------------

describe('loadKernels', () => {
  const saved = process.env.RINGWIRE_NO_NATIVE;
  afterEach(() => {
    if (saved === undefined) delete process.env.RINGWIRE_NO_NATIVE;
    else process.env.RINGWIRE_NO_NATIVE = saved;
  });

  it('honours RINGWIRE_NO_NATIVE=1', () => {
    process.env.RINGWIRE_NO_NATIVE = '1';
    expect(loadKernels()).toBe(jsKernels);
    expect(kernelsInfo()).toEqual({ name: 'js', native: false, reason: 'RINGWIRE_NO_NATIVE=1' });
  });

  it.skipIf(NO_NATIVE)('returns the native kernels when the addon loads', () => {
    delete process.env.RINGWIRE_NO_NATIVE;
    const info = kernelsInfo();
    expect(nativeKernels(), `addon did not load: ${info.reason}`).not.toBeNull();
    expect(loadKernels()).toBe(nativeKernels());
    expect(info.native).toBe(true);
    expect(info.name).toBe('native');
    expect(typeof info.simd).toBe('string');
  });
});

// ---- native against JS, bit for bit ----------------------------------------------------------

if (NO_NATIVE) {
  describe.skip('native kernels (skipped: RINGWIRE_NO_NATIVE=1)', () => {
    it('compare with js', () => {});
  });
  console.warn('kernels.test: RINGWIRE_NO_NATIVE=1, native kernels not compared');
} else {
  const variants = nativeKernelVariants();
  describe('native addon', () => {
    it('loads, with its portable table and (on x86-64 with AVX2) the SIMD one', () => {
      expect(Object.keys(variants), kernelsInfo().reason).toContain('portable');
      if (process.arch === 'x64') expect(Object.keys(variants)).toContain('avx2+f16c');
    });
  });

  for (const [simd, native] of Object.entries(variants)) {
    describe(`native ${simd} vs js`, () => {
      for (const dtype of DTYPE_NAMES) {
        it(`reduceInto ${dtype}: all ops, lengths ${LENGTHS.join('/')}, unaligned offsets`, () => {
          const bpe = DTYPES[dtype].bytes;
          const next = xorshift(0x1234567 + DTYPE_NAMES.indexOf(dtype));
          for (const op of OPS) {
            for (const n of LENGTHS) {
              const offsets =
                n > 1000
                  ? [
                      [0, 0],
                      [3, 5],
                    ]
                  : [
                      [0, 0],
                      [1, 3],
                      [7, 5],
                      [2, 6],
                      [bpe, 0],
                      [4, 1],
                    ];
              for (const [dOff, sOff] of offsets) {
                const a = new Uint8Array(n * bpe);
                const b = new Uint8Array(n * bpe);
                fill(dtype, new DataView(a.buffer), n, next);
                fill(dtype, new DataView(b.buffer), n, next);
                const dn = copyTo(a, dOff);
                const dj = copyTo(a, dOff);
                const src = copyTo(b, sOff);
                native.reduceInto(dtype, op, dn, src);
                jsKernels.reduceInto(dtype, op, dj, src);
                const what = `${simd} ${dtype} ${op} n=${n} offsets ${dOff}/${sOff}`;
                expectSameBytes(dn, dj, bpe, what);
                expectSameBytes(src, b, bpe, `${what} (src unchanged)`);
                expectGuardsIntact(dn, what);
              }
            }
          }
        });
      }

      it('reduceInto: every pair of special values', () => {
        for (const dtype of FLOATS) {
          const bpe = DTYPES[dtype].bytes;
          const write = (v: DataView, i: number, k: number) => {
            if (dtype === 'float32') v.setUint32(4 * i, F32_SPECIAL[k], true);
            else if (dtype === 'float64') {
              v.setUint32(8 * i, F64_SPECIAL[k][1], true);
              v.setUint32(8 * i + 4, F64_SPECIAL[k][0], true);
            } else v.setUint16(2 * i, (dtype === 'float16' ? H16_SPECIAL : BF16_SPECIAL)[k], true);
          };
          const count = {
            float32: F32_SPECIAL,
            float64: F64_SPECIAL,
            float16: H16_SPECIAL,
            bfloat16: BF16_SPECIAL,
          }[dtype as 'float32'].length;
          const n = count * count;
          const a = new Uint8Array(n * bpe);
          const b = new Uint8Array(n * bpe);
          for (let i = 0; i < count; i++) {
            for (let j = 0; j < count; j++) {
              write(new DataView(a.buffer), i * count + j, i);
              write(new DataView(b.buffer), i * count + j, j);
            }
          }
          for (const op of OPS) {
            const dn = a.slice();
            const dj = a.slice();
            native.reduceInto(dtype, op, dn, b);
            jsKernels.reduceInto(dtype, op, dj, b);
            expectSameBytes(dn, dj, bpe, `${simd} ${dtype} ${op} specials`);
          }
        }
      });

      it('scale agrees for every float dtype', () => {
        for (const dtype of FLOATS) {
          const bpe = DTYPES[dtype].bytes;
          const next = xorshift(4242 + bpe);
          for (const factor of [0.5, 1 / 3, -2, 1e-30, 1e30, 0, -0, NaN, Infinity, 1 / 7]) {
            for (const [n, off] of [
              [1, 0],
              [33, 1],
              [1000, 3],
              [65537, 0],
            ]) {
              const a = new Uint8Array(n * bpe);
              fill(dtype, new DataView(a.buffer), n, next);
              const dn = copyTo(a, off);
              const dj = copyTo(a, off);
              native.scale(dtype, dn, factor);
              jsKernels.scale(dtype, dj, factor);
              expectSameBytes(dn, dj, bpe, `${simd} scale ${dtype} by ${factor} n=${n} offset ${off}`);
              expectGuardsIntact(dn, 'scale');
            }
          }
        }
        expect(() => native.scale('int32', new Uint8Array(4), 2)).toThrow(TypeError);
      });

      it('conversions match hand-computed values', () => checkHandValues(native));
      it('f16 and bf16 round-trip all 65536 patterns', () => {
        checkRoundTrip(native, 'f16ToF32', 'f32ToF16');
        checkRoundTrip(native, 'bf16ToF32', 'f32ToBf16');
      });

      it('f16/bf16 -> f32 agree on all 65536 patterns', () => {
        for (const fn of ['f16ToF32', 'bf16ToF32'] as const) {
          for (const [sOff, dOff] of [
            [0, 0],
            [1, 2],
          ]) {
            const src = copyTo(allHalfPatterns(), sOff);
            const dn = sabView(65536 * 4, dOff);
            const dj = sabView(65536 * 4, dOff);
            native[fn](src, dn);
            jsKernels[fn](src, dj);
            expectSameBytes(dn, dj, 4, `${simd} ${fn}`);
          }
        }
      });

      it('f32 -> f16/bf16 agree on random patterns and every pattern near the rounding boundaries', () => {
        const next = xorshift(99);
        const bits: number[] = [];
        for (let i = 0; i < 1 << 18; i++) bits.push(next());
        // Every pattern within 4096 ulps of the f16 underflow, denormal/normal and overflow edges.
        for (const edge of [0x33000000, 0x33800000, 0x38800000, 0x477ff000, 0x7f800000]) {
          for (let d = -4096; d <= 4096; d++) bits.push((edge + d) >>> 0, ((edge + d) | 0x80000000) >>> 0);
        }
        // Exact ties for both formats at random magnitudes.
        for (let i = 0; i < 4096; i++)
          bits.push(((next() & ~0x1fff) | 0x1000) >>> 0, ((next() & ~0xffff) | 0x8000) >>> 0);
        const n = bits.length;
        for (const fn of ['f32ToF16', 'f32ToBf16'] as const) {
          for (const [sOff, dOff] of [
            [0, 0],
            [3, 1],
          ]) {
            const src = sabView(n * 4, sOff);
            const sv = new DataView(src.buffer, src.byteOffset);
            bits.forEach((x, i) => sv.setUint32(4 * i, x, true));
            const dn = sabView(n * 2, dOff);
            const dj = sabView(n * 2, dOff);
            native[fn](src, dn);
            jsKernels[fn](src, dj);
            expectSameBytes(dn, dj, 2, `${simd} ${fn}`);
          }
        }
      });

      it('copy agrees with the JS copy: shared and ordinary buffers, unaligned, overlapping, empty', () => {
        const next = xorshift(7);
        for (const [len, from, to] of [
          [0, 0, 0],
          [1, 3, 0],
          [1000, 1, 7],
          [65537, 5, 2],
          [4096, 0, 100],
          [4096, 100, 0],
        ]) {
          const a = new Uint8Array(new SharedArrayBuffer(len + 200)).map(() => next() & 0xff);
          const b = new Uint8Array(a); // ordinary copy of the same bytes
          // overlapping (memmove semantics) within one shared buffer, and shared -> ordinary
          native.copy(a.subarray(to, to + len), a.subarray(from, from + len));
          jsKernels.copy(b.subarray(to, to + len), b.subarray(from, from + len));
          expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
          const c = new Uint8Array(len + 3);
          native.copy(c.subarray(3), a.subarray(0, len));
          expect(Buffer.from(c.subarray(3)).equals(Buffer.from(a.subarray(0, len)))).toBe(true);
        }
        expect(() => native.copy(new Uint8Array(4), new Uint8Array(3))).toThrow(RangeError);
        expect(() => jsKernels.copy(new Uint8Array(4), new Uint8Array(3))).toThrow(RangeError);
      });

      it('rejects bad arguments like the JS kernels', () => {
        expect(() => native.reduceInto('float32', 'sum', new Uint8Array(8), new Uint8Array(4))).toThrow(
          RangeError,
        );
        expect(() => native.reduceInto('float32', 'sum', new Uint8Array(6), new Uint8Array(6))).toThrow(
          RangeError,
        );
        expect(() =>
          native.reduceInto('float32', 'mean' as KernelOp, new Uint8Array(4), new Uint8Array(4)),
        ).toThrow(TypeError);
        expect(() =>
          native.reduceInto('toString' as DType, 'sum', new Uint8Array(4), new Uint8Array(4)),
        ).toThrow(TypeError);
        expect(() => native.f32ToF16(new Uint8Array(8), new Uint8Array(2))).toThrow(RangeError);
        expect(() => native.reduceInto('float32', 'sum', {} as Uint8Array, new Uint8Array(4))).toThrow(
          TypeError,
        );
      });
    });
  }
}
