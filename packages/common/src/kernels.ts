import type { DType, KernelOp } from './dtypes.js';

/**
 * The reduction and conversion kernels the engine calls on every chunk. All views are byte views
 * (Uint8Array) into SharedArrayBuffers or received frames, at any byte offset (aligned or not);
 * lengths are in bytes and a whole number of elements. No kernel allocates per call on the hot path.
 */
export interface Kernels {
  readonly name: 'native' | 'js';
  /** dst[i] = op(dst[i], src[i]) elementwise; float16/bfloat16 are computed in float32 and rounded to nearest even. */
  reduceInto(dtype: DType, op: KernelOp, dst: Uint8Array, src: Uint8Array): void;
  /** dst[i] *= factor (used for 'mean'); float dtypes only. */
  scale(dtype: DType, dst: Uint8Array, factor: number): void;
  /**
   * dst.set(src) for equal lengths (overlap allowed). Natively a memmove: V8 copies into or out of
   * SharedArrayBuffers with relaxed atomic word moves, 2.4x slower on this VM.
   */
  copy(dst: Uint8Array, src: Uint8Array): void;
  /** float32 -> float16 / bfloat16, round to nearest even; src holds n*4 bytes, dst n*2. */
  f32ToF16(src: Uint8Array, dst: Uint8Array): void;
  f32ToBf16(src: Uint8Array, dst: Uint8Array): void;
  /** float16 / bfloat16 -> float32 (exact); src holds n*2 bytes, dst n*4. */
  f16ToF32(src: Uint8Array, dst: Uint8Array): void;
  bf16ToF32(src: Uint8Array, dst: Uint8Array): void;
}
