import * as tf from '@tensorflow/tfjs-core';

/**
 * float32 <-> float16/bfloat16 on a WebGPU device, bit for bit as ringwire's CPU kernels
 * (core's f32BitsToF16 / f32BitsToBf16 / f16BitsToF32 / bf16BitsToF32: round to nearest even, NaN
 * quieted with its payload kept, subnormals exact). WGSL's pack2x16float is not used: its rounding
 * and its results for Inf/NaN/overflow are implementation-defined. The halves travel packed two per
 * int32 element (element 2i in the low 16 bits, as a little-endian Uint16Array view reads them).
 */
export type Half = 'float16' | 'bfloat16';

const NARROW: Record<Half, string> = {
  float16: `
    fn narrow(x : u32) -> u32 {
      let sign = (x >> 16u) & 0x8000u;
      let a = x & 0x7fffffffu;
      if (a >= 0x7f800000u) {
        if (a == 0x7f800000u) { return sign | 0x7c00u; }
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
      }
      if (a >= 0x477ff000u) { return sign | 0x7c00u; }
      if (a >= 0x38800000u) {
        let m = a - 0x38000000u;
        return sign | ((m + 0xfffu + ((m >> 13u) & 1u)) >> 13u);
      }
      if (a < 0x33000000u) { return sign; }
      let mant = (a & 0x7fffffu) | 0x800000u;
      let shift = 126u - (a >> 23u);
      var r = mant >> shift;
      let rem = mant & ((1u << shift) - 1u);
      let half = 1u << (shift - 1u);
      if (rem > half || (rem == half && (r & 1u) != 0u)) { r = r + 1u; }
      return sign | r;
    }`,
  bfloat16: `
    fn narrow(x : u32) -> u32 {
      if ((x & 0x7fffffffu) > 0x7f800000u) { return (x >> 16u) | 0x40u; }
      return (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
    }`,
};

const WIDEN: Record<Half, string> = {
  float16: `
    fn widen(h : u32) -> u32 {
      let sign = (h & 0x8000u) << 16u;
      let e = (h >> 10u) & 0x1fu;
      let m = h & 0x3ffu;
      if (e == 0x1fu) {
        if (m != 0u) { return sign | 0x7f800000u | 0x400000u | (m << 13u); }
        return sign | 0x7f800000u;
      }
      if (e != 0u) { return sign | ((e + 112u) << 23u) | (m << 13u); }
      if (m == 0u) { return sign; }
      let p = 31u - countLeadingZeros(m);
      return sign | ((p + 103u) << 23u) | ((m << (23u - p)) & 0x7fffffu);
    }`,
  bfloat16: `
    fn widen(h : u32) -> u32 {
      let x = h << 16u;
      if ((x & 0x7fffffffu) > 0x7f800000u) { return x | 0x400000u; }
      return x;
    }`,
};

/** A flat tfjs WebGPU program (see @tensorflow/tfjs-backend-webgpu's WebGPUProgram). */
class Program {
  readonly variableNames = ['A'];
  readonly workgroupSize: [number, number, number] = [64, 1, 1];
  readonly size = true;
  readonly uniforms = 'count : i32,';
  readonly dispatchLayout = { x: [0] };
  readonly dispatch: [number, number, number];
  readonly outputShape: number[];
  constructor(
    readonly shaderKey: string,
    outputLength: number,
    private readonly body: string,
  ) {
    this.outputShape = [outputLength];
    this.dispatch = [Math.ceil(outputLength / this.workgroupSize[0]), 1, 1];
  }
  getUserCode(): string {
    return `${this.body}
      fn main(index : i32) {
        if (index < uniforms.size) { ${this.shaderKey.startsWith('ringwire_narrow') ? NARROW_MAIN : WIDEN_MAIN} }
      }`;
  }
}

// Output word i packs elements 2i and 2i+1 of A (float32, `count` long; a missing last one is 0).
const NARROW_MAIN = `
  let i = 2 * index;
  let lo = narrow(bitcast<u32>(A[i]));
  var hi = 0u;
  if (i + 1 < uniforms.count) { hi = narrow(bitcast<u32>(A[i + 1])); }
  result[index] = bitcast<i32>(lo | (hi << 16u));`;
// Output element i (float32) is the half in word i/2 of A (int32), low bits for even i.
const WIDEN_MAIN = `
  let w = bitcast<u32>(A[index / 2]);
  let h = (w >> (16u * u32(index & 1))) & 0xffffu;
  result[index] = bitcast<f32>(widen(h));`;

interface WebGPUBackendLike {
  runWebGPUProgram(
    program: Program,
    inputs: tf.TensorInfo[],
    dtype: tf.DataType,
    uniforms: { type: string; data: number[] }[],
  ): tf.TensorInfo;
}

function run(program: Program, input: tf.Tensor, dtype: tf.DataType, count: number): tf.Tensor {
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  const info = backend.runWebGPUProgram(program, [input], dtype, [{ type: 'int32', data: [count] }]);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** Whether the current backend runs WGSL programs (tfjs-backend-webgpu). */
export function canNarrowOnDevice(): boolean {
  return typeof (tf.backend() as unknown as Partial<WebGPUBackendLike>).runWebGPUProgram === 'function';
}

/** Narrows a flat float32 tensor on the device: int32 [ceil(n/2)], two halves per element. */
export function narrowOnDevice(x: tf.Tensor, half: Half): tf.Tensor {
  const n = x.size;
  return run(new Program(`ringwire_narrow_${half}`, Math.ceil(n / 2), NARROW[half]), x, 'int32', n);
}

/** Widens `count` halves packed two per int32 element back to a flat float32 tensor on the device. */
export function widenOnDevice(packed: tf.Tensor, count: number, half: Half): tf.Tensor {
  return run(new Program(`ringwire_widen_${half}`, count, WIDEN[half]), packed, 'float32', count);
}
