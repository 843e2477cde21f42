/** The element types ringwire carries, and how each is stored. float16 and bfloat16 live in Uint16Array. */
export const DTYPES = {
  float32: { bytes: 4, array: Float32Array, float: true },
  float64: { bytes: 8, array: Float64Array, float: true },
  int32: { bytes: 4, array: Int32Array, float: false },
  uint8: { bytes: 1, array: Uint8Array, float: false },
  float16: { bytes: 2, array: Uint16Array, float: true },
  bfloat16: { bytes: 2, array: Uint16Array, float: true },
} as const;
export type DType = keyof typeof DTYPES;
export const DTYPE_NAMES = Object.keys(DTYPES) as DType[];

/** Reductions the kernels implement; 'mean' is 'sum' followed by a scale. */
export type KernelOp = 'sum' | 'min' | 'max' | 'prod';
export type ReduceOp = KernelOp | 'mean';
export const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'mean', 'min', 'max', 'prod'];

export type RingwireArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;
