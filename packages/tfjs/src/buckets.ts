import * as tf from '@tensorflow/tfjs-core';
import type { Communicator, Kernels } from 'ringwire';
import { canNarrowOnDevice, type Half, narrowOnDevice, widenOnDevice } from './narrow.js';

/** Default bucket size of the device path: 25 MiB of float32 gradients, as PyTorch DDP's bucket_cap_mb. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** What exchangeBuckets needs from the optimizer. */
export interface BucketExchange {
  comm: Communicator;
  op: 'mean' | 'sum';
  half: Half | null;
  kernels: Kernels;
  /** The shared fusion buffers, `fused.size` long (u16 only with compression). */
  f32: Float32Array;
  u16: Uint16Array | null;
  /** Elements per bucket (even, so halves pack two per word). */
  bucketElems: number;
}

/** Where the time of exchangeBuckets went (ms), and how many elements were moved, not copied. */
export interface BucketTimings {
  download: number;
  allreduce: number;
  upload: number;
  moved: number;
}

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const now = () => performance.now();
// A rejection seen later by an await must not count as unhandled in the meantime.
const quiet = <T>(p: Promise<T>): Promise<T> => (p.catch(() => {}), p);

/**
 * All-reduces a flat float32 tensor that lives on the device (GPU backends' fused gradients) in
 * buckets of `bucketElems`, and returns the reduced values as a new flat device tensor. Every
 * bucket's device work and read are queued at once, so the download of bucket k+1 runs while
 * bucket k is on the wire, and bucket k is uploaded as soon as its all-reduce ends, while k+1's
 * still runs. Buckets are fixed ranges of the fused layout, issued in order: the same all-reduces
 * in the same order on every rank. With compression on a WebGPU backend the buckets are narrowed on
 * the device before the read and widened there after the upload (narrow.ts), so both transfers move
 * half the bytes; elsewhere the engine narrows on the CPU, with the same bits.
 */
export async function exchangeBuckets(
  fused: tf.Tensor,
  x: BucketExchange,
): Promise<{ flat: tf.Tensor; timings: BucketTimings }> {
  const { comm, op, half, kernels: k, f32, u16, bucketElems } = x;
  const total = fused.size;
  const onDevice = half !== null && canNarrowOnDevice();
  const timings: BucketTimings = { download: 0, allreduce: 0, upload: 0, moved: 0 };
  const ranges: [number, number][] = [];
  for (let s = 0; s < total; s += bucketElems) ranges.push([s, Math.min(total, s + bucketElems)]);

  const t0 = now();
  // Queue every bucket's slice (and narrowing) and read; the backend runs them in order.
  const pieces = ranges.map(([s, e]) =>
    tf.tidy(() => {
      const b = e - s === total ? fused : tf.slice(fused, s, e - s);
      return onDevice ? narrowOnDevice(b, half) : b;
    }),
  );
  const reads = pieces.map((piece) => quiet(piece.data() as Promise<Float32Array | Int32Array>));
  const uploads: tf.Tensor[] = [];
  const inflight: Promise<void>[] = [];
  let uploadMs = 0;
  const upload = (i: number, reduced: Float32Array | null): void => {
    const t = now();
    const [s, e] = ranges[i];
    if (reduced) {
      // Dawn's writeBuffer and TensorFlow's C API need not accept shared memory: plain arrays there.
      const plain =
        tf.getBackend() === 'cpu' || !(reduced.buffer instanceof SharedArrayBuffer)
          ? reduced
          : reduced.slice();
      uploads[i] = tf.tensor1d(plain, 'float32');
    } else {
      const words = new Int32Array(Math.ceil((e - s) / 2));
      new Uint16Array(words.buffer, 0, e - s).set(u16!.subarray(s, e));
      const packed = tf.tensor1d(words, 'int32');
      uploads[i] = widenOnDevice(packed, e - s, half!);
      packed.dispose();
    }
    uploadMs += now() - t;
  };
  let beforeTail = 0;
  try {
    for (const [i, [s, e]] of ranges.entries()) {
      const data = await reads[i];
      if (onDevice) {
        k.copy(bytes(u16!.subarray(s, e)), new Uint8Array(data.buffer, data.byteOffset, (e - s) * 2));
        const sent = comm.allreduce(u16!.subarray(s, e), { op, dtype: half });
        inflight.push(quiet(sent.then(() => upload(i, null))));
      } else {
        // Float32 buckets the tensor alone owns move to the engine thread instead of a copy; with
        // compression the engine narrows and widens them.
        const moved = movable(pieces[i], data as Float32Array);
        const own = moved ? (data as Float32Array) : f32.subarray(s, e);
        if (moved) timings.moved += e - s;
        else k.copy(bytes(own), bytes(data));
        const sent = comm.allreduce(own, { op, transfer: moved, wire: half ?? undefined });
        inflight.push(quiet(sent.then((r) => upload(i, moved ? (r as Float32Array) : own))));
      }
      if (pieces[i] !== fused) pieces[i].dispose();
    }
    beforeTail = uploadMs;
    timings.download = now() - t0 - beforeTail;
    const t1 = now();
    await Promise.all(inflight);
    const t2 = now();
    // Uploads ran on this thread while later buckets were on the wire: count them as upload.
    timings.allreduce = t2 - t1 - (uploadMs - beforeTail);
    const flat = uploads.length === 1 ? uploads[0] : tf.concat(uploads);
    if (uploads.length > 1) tf.dispose(uploads);
    timings.upload = uploadMs + now() - t2;
    return { flat, timings };
  } catch (err) {
    await Promise.allSettled([...reads, ...inflight]);
    for (const piece of pieces) if (piece !== fused && !piece.isDisposed) piece.dispose();
    tf.dispose(uploads);
    throw err;
  }
}

/**
 * Whether `data` (a piece's `await data()`) is a whole ArrayBuffer that no other tensor holds, so
 * the all-reduce may move it instead of copying it. The piece is disposed right after.
 */
export function movable(piece: tf.Tensor, data: Float32Array): boolean {
  const backend = tf.backend() as unknown as { refCount?: (dataId: object) => number };
  return (
    data.buffer instanceof ArrayBuffer &&
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength &&
    backend.refCount?.(piece.dataId) === 1
  );
}
