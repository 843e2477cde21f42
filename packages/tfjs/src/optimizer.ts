import * as tf from '@tensorflow/tfjs-core';
import { type Communicator, InvalidArgumentError, type Kernels, loadKernels, Track } from 'ringwire';
import { DEFAULT_BUCKET_BYTES, exchangeBuckets, movable } from './buckets.js';
import { resolveComm } from './context.js';
import { checkLayout, type LayoutEntry, layoutKey } from './layout.js';
import type { Half } from './narrow.js';
import { DistributedOptimizerCallback } from './optimizer-callback.js';

/** What tf.Optimizer's getWeights and applyGradients take (not exported by tfjs-core's index). */
type NamedTensor = { name: string; tensor: tf.Tensor };

export type Compression = 'none' | 'fp16' | 'bf16';

export interface DistributedOptimizerOptions {
  /** The communicator; default: the one from `init()` of @ringwire/tfjs. */
  comm?: Communicator;
  /** How gradients are combined across ranks: 'mean' (default, Horovod's Average) or 'sum'. */
  op?: 'mean' | 'sum';
  /** Carry the fused gradients as float16 / bfloat16 on the wire ('none' by default). */
  compression?: Compression;
  /** Accumulate gradients locally over this many minimize() calls, then all-reduce and apply once (default 1). */
  backwardPassesPerStep?: number;
  /** With backwardPassesPerStep > 1: divide the local sum by backwardPassesPerStep (Horovod's default: false). */
  averageAggregatedGradients?: boolean;
  /**
   * Where gradients are fused into one buffer. 'device': flatten + concat on the backend, one download
   * (GPU backends). 'host': each gradient is read straight into the shared fusion buffer (the 'cpu'
   * backend, where a device concat is one more 4-bytes-per-parameter allocation and copy). 'auto' (default):
   * 'host' on the cpu backend, 'device' elsewhere.
   */
  fusion?: 'auto' | 'device' | 'host';
  /**
   * Host fusion: the fused buffer is all-reduced in slices of this many bytes of float32 (default 8 MiB):
   * while slice k is on the wire, slice k+1 is copied (and converted) into the fusion buffer.
   * Infinity: one all-reduce after the whole copy.
   */
  pipelineBytes?: number;
  /**
   * Device fusion (GPU backends): the fused gradients are read, all-reduced and uploaded in buckets
   * of this many bytes of float32 (default 25 MiB, as PyTorch DDP's bucket_cap_mb): the download of
   * bucket k+1 overlaps the all-reduce of bucket k, whose upload overlaps the all-reduce of k+1.
   * Infinity: one bucket.
   */
  bucketBytes?: number;
  /**
   * Check once per variable layout, with a small all-gather, that every rank fuses the same
   * shapes in the same order (default true). Without it, a different element count still fails
   * in the core as a descriptor mismatch, but equal counts with different shapes go unnoticed.
   */
  verifyLayout?: boolean;
  /**
   * Wait for the backend to finish the gradient computation before timing the download, so that
   * `lastTimings.compute` includes asynchronous GPU work (one extra 1-element read per step).
   */
  profile?: boolean;
}

/** Milliseconds spent in each phase of the last applied step (see DistributedOptimizer.lastTimings). */
export interface StepTimings {
  /** computeGradients (on async backends: dispatch only, unless `profile` is set). */
  compute: number;
  /** Flatten/concat (device fusion) or keeping the gradients, and local accumulation. */
  fuse: number;
  /** Reading the fused gradients into the shared fusion buffer (and float16/bfloat16 conversion); slices already read are on the wire meanwhile. */
  download: number;
  /** The all-reduce, as far as it did not overlap the download: from the last slice read to the last slice reduced. */
  allreduce: number;
  /** Conversion back from float16/bfloat16, upload, split into per-variable tensors. */
  upload: number;
  /** The wrapped optimizer's applyGradients. */
  apply: number;
  /** Elements all-reduced. */
  count: number;
  /** Of those, the elements whose buffer was moved to the engine thread instead of copied. */
  moved: number;
  /** Where fusion ran. */
  fusion: 'device' | 'host';
  backend: string;
}

interface Pending {
  names: string[];
  shapes: number[][];
  sizes: number[];
  total: number;
  key: string;
  /** One fused tensor (device fusion) or one tensor per variable (host fusion), all kept. */
  pieces: tf.Tensor[];
  fusion: 'device' | 'host';
  passes: number;
  ready: boolean;
}

type Mode = 'fit' | 'step' | undefined;

const now = () => performance.now();
const bytes = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Wraps any tf.Optimizer so that gradients are averaged (or summed) across all ranks before they
 * are applied, as Horovod's DistributedOptimizer does. `minimize()` is synchronous in TensorFlow.js
 * (and runs inside tf.tidy in model.fit), so a step has two halves:
 *  1. minimize(): computes the gradients, fuses them in a fixed variable order (the order fit or the
 *     caller passes, else the registration order), keeps them, and returns the loss;
 *  2. synchronize() (awaited): one read of the fused gradients into a reused SharedArrayBuffer, one
 *     all-reduce, one upload, a split back into per-variable tensors, the wrapped optimizer's
 *     applyGradients.
 * In model.fit, the callback from `callback()` (or `distributedFit`) runs half 2 in onBatchEnd;
 * in custom loops, `await opt.step(lossFn)` runs both. Every backend works, WebGPU included: the
 * read is `await tensor.data()`, never dataSync.
 */
export class DistributedOptimizer extends tf.Optimizer {
  readonly optimizer: tf.Optimizer;
  readonly op: 'mean' | 'sum';
  readonly compression: Compression;
  readonly backwardPassesPerStep: number;
  readonly averageAggregatedGradients: boolean;
  readonly fusion: 'auto' | 'device' | 'host';
  readonly profile: boolean;
  readonly verifyLayout: boolean;
  readonly pipelineBytes: number;
  readonly bucketBytes: number;
  /** Phase timings of the last applied step (null before the first). */
  lastTimings: StepTimings | null = null;

  private readonly commOption?: Communicator;
  private mode: Mode;
  private pending: Pending | null = null;
  private checkedKey = '';
  /** The communicator checkedKey was checked on: a new one (an elastic re-formation) checks again. */
  private checkedComm: Communicator | null = null;
  private f32: Float32Array | null = null;
  private u16: Uint16Array | null = null;
  private bufComm: Communicator | null = null;
  private kernels?: Kernels;
  private partial: Pick<StepTimings, 'compute' | 'fuse'> = { compute: 0, fuse: 0 };
  /** For the timeline (RINGWIRE_TIMELINE): steps applied so far, and when this one's first pass began. */
  private steps = 0;
  private stepStart?: number;

  // tf.Optimizer's static Symbol.hasInstance is duck-typed (any optimizer would pass): use the prototype chain.
  static override [Symbol.hasInstance](x: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(DistributedOptimizer, x);
  }

  constructor(optimizer: tf.Optimizer, options: DistributedOptimizerOptions = {}) {
    super();
    if (
      !optimizer ||
      typeof optimizer.applyGradients !== 'function' ||
      typeof optimizer.computeGradients !== 'function'
    ) {
      throw new InvalidArgumentError('DistributedOptimizer: expected a tf.Optimizer to wrap');
    }
    if (optimizer instanceof DistributedOptimizer)
      throw new InvalidArgumentError('DistributedOptimizer: the optimizer is already distributed');
    const {
      op = 'mean',
      compression = 'none',
      backwardPassesPerStep = 1,
      averageAggregatedGradients = false,
      fusion = 'auto',
      profile = false,
    } = options;
    if (op !== 'mean' && op !== 'sum')
      throw new InvalidArgumentError(
        `DistributedOptimizer: op must be 'mean' or 'sum', got ${JSON.stringify(op)}`,
      );
    if (!['none', 'fp16', 'bf16'].includes(compression))
      throw new InvalidArgumentError(
        `DistributedOptimizer: compression must be 'none', 'fp16' or 'bf16', got ${JSON.stringify(compression)}`,
      );
    if (!Number.isInteger(backwardPassesPerStep) || backwardPassesPerStep < 1)
      throw new InvalidArgumentError(
        `DistributedOptimizer: backwardPassesPerStep must be an integer >= 1, got ${backwardPassesPerStep}`,
      );
    if (!['auto', 'device', 'host'].includes(fusion))
      throw new InvalidArgumentError(`DistributedOptimizer: fusion must be 'auto', 'device' or 'host'`);
    this.optimizer = optimizer;
    this.op = op;
    this.compression = compression;
    this.backwardPassesPerStep = backwardPassesPerStep;
    this.averageAggregatedGradients = averageAggregatedGradients;
    this.fusion = fusion;
    this.profile = profile;
    this.verifyLayout = options.verifyLayout ?? true;
    this.pipelineBytes = options.pipelineBytes ?? 8 * 1024 * 1024;
    if (!(this.pipelineBytes >= 4))
      throw new InvalidArgumentError('DistributedOptimizer: pipelineBytes must be >= 4');
    this.bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    if (!(this.bucketBytes >= 8))
      throw new InvalidArgumentError('DistributedOptimizer: bucketBytes must be >= 8');
    this.commOption = options.comm;
  }

  /** The communicator this optimizer all-reduces with. */
  get comm(): Communicator {
    return resolveComm(this.commOption, 'DistributedOptimizer');
  }

  // ---- the two halves of a step ----------------------------------------------------------

  /**
   * Computes and fuses the gradients of f() and returns the loss (when returnCost), without
   * applying them: `synchronize()` does. Only valid inside model.fit with this optimizer's
   * callback, or inside `step()`; anywhere else it throws rather than silently train locally.
   */
  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    if (!this.mode) {
      throw new InvalidArgumentError(
        'DistributedOptimizer.minimize() ran outside a distributed step, so its gradients would never be all-reduced. ' +
          'In model.fit, pass opt.callback() in the callbacks (or call distributedFit(model, x, y, args)); ' +
          'in a custom loop, use `await opt.step(lossFn)`.',
      );
    }
    this.assertNotReady();
    const t0 = now();
    const { value, grads } = this.optimizer.computeGradients(f, varList);
    const t1 = now();
    const names = (varList ? varList.map((v) => v.name) : Object.keys(grads)).filter((n) => grads[n] != null);
    try {
      this.stage(
        names,
        names.map((n) => grads[n]),
      );
    } catch (err) {
      tf.dispose(grads);
      value.dispose();
      throw err;
    }
    // Gradients the layout does not use are freed here; with host fusion the staged ones are kept.
    const staged = new Set(names);
    for (const [n, g] of Object.entries(grads))
      if (!staged.has(n) || this.pending?.fusion === 'device') g.dispose();
    this.partial.compute += t1 - t0;
    this.partial.fuse += now() - t1;
    this.trace('compute', t0, t1 - t0);
    this.trace('fuse', t1, this.partial.fuse);
    if (returnCost) return value;
    value.dispose();
    return null;
  }

  /**
   * All-reduces and applies the staged gradients once backwardPassesPerStep passes have been
   * accumulated; resolves true when it applied a step, false when there was nothing to apply.
   */
  async synchronize(): Promise<boolean> {
    const p = this.pending;
    if (!p?.ready) return false;
    this.pending = null;
    try {
      await this.exchange(p);
    } finally {
      tf.dispose(p.pieces);
    }
    return true;
  }

  /** A custom-loop step: minimize() then synchronize(). Resolves with the loss when returnCost. */
  async step(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): Promise<tf.Scalar | null> {
    const prev = this.mode;
    this.mode ??= 'step';
    let value: tf.Scalar | null = null;
    try {
      value = this.minimize(f, returnCost, varList);
      await this.synchronize();
      return value;
    } catch (err) {
      value?.dispose();
      throw err;
    } finally {
      this.mode = prev;
    }
  }

  /**
   * All-reduces gradients the caller computed (e.g. with tf.variableGrads and clipping) and
   * applies them; counts as one backward pass. The caller keeps ownership of `grads`.
   */
  async applyGradientsAsync(grads: tf.NamedTensorMap | NamedTensor[]): Promise<boolean> {
    this.assertNotReady();
    const list = Array.isArray(grads)
      ? grads
      : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
    const named = list.filter((g) => g.tensor != null);
    const t0 = now();
    const clones = named.map((g) => tf.clone(g.tensor));
    try {
      this.stage(
        named.map((g) => g.name),
        clones,
      );
    } catch (err) {
      tf.dispose(clones);
      throw err;
    }
    if (this.pending?.fusion === 'device') tf.dispose(clones);
    this.partial.fuse += now() - t0;
    return this.synchronize();
  }

  /** Synchronous tf.Optimizer API: cannot all-reduce, so it refuses instead of applying locally. */
  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    throw new InvalidArgumentError(
      'DistributedOptimizer.applyGradients() cannot all-reduce synchronously: use `await opt.applyGradientsAsync(grads)`',
    );
  }

  override computeGradients(
    f: () => tf.Scalar,
    varList?: tf.Variable[],
  ): { value: tf.Scalar; grads: tf.NamedTensorMap } {
    return this.optimizer.computeGradients(f, varList);
  }

  /** The fit callback that runs synchronize() after every batch (put it in model.fit's callbacks). */
  callback(): DistributedOptimizerCallback {
    return new DistributedOptimizerCallback(this);
  }

  /** Whether backwardPassesPerStep passes are staged and wait for synchronize(). */
  get ready(): boolean {
    return this.pending?.ready ?? false;
  }

  /** @internal used by the fit callback */
  beginFit(): void {
    // A fit that failed half-way may have left a staged step: it was never applied anywhere.
    if (this.pending?.ready) tf.dispose(this.pending.pieces), (this.pending = null);
    this.mode = 'fit';
  }

  /** @internal used by the fit callback */
  endFit(): void {
    if (this.mode === 'fit') this.mode = undefined;
  }

  // ---- the wrapped optimizer shows through -----------------------------------------------

  override get iterations(): number {
    return this.optimizer.iterations;
  }

  /** The wrapped optimizer's learning rate (read and set; SGD and Momentum keep their scalar in step). */
  get learningRate(): number {
    return getLearningRate(this.optimizer);
  }
  set learningRate(lr: number) {
    setLearningRate(this.optimizer, lr);
  }

  /** model.save records the wrapped optimizer, so a saved model loads without @ringwire/tfjs. */
  override getClassName(): string {
    return this.optimizer.getClassName();
  }
  getConfig(): tf.serialization.ConfigDict {
    return this.optimizer.getConfig();
  }
  override getWeights(): Promise<NamedTensor[]> {
    return this.optimizer.getWeights();
  }
  override setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.optimizer.setWeights(weightValues);
  }
  override saveIterations(): Promise<NamedTensor> {
    return this.optimizer.saveIterations();
  }
  override dispose(): void {
    if (this.pending) tf.dispose(this.pending.pieces);
    this.pending = null;
    this.optimizer.dispose();
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private assertNotReady(): void {
    if (this.pending?.ready) {
      throw new InvalidArgumentError(
        "DistributedOptimizer: the previous step's gradients were computed but never all-reduced and applied. " +
          'In model.fit, pass opt.callback() in the callbacks (or use distributedFit); in a custom loop, use `await opt.step(lossFn)` ' +
          'or `await opt.synchronize()` after minimize().',
      );
    }
  }

  private fusionFor(): 'device' | 'host' {
    if (this.fusion !== 'auto') return this.fusion;
    return tf.getBackend() === 'cpu' ? 'host' : 'device';
  }

  /** Keeps this pass's gradients (fused on the device, or as they are) and accumulates them. */
  private stage(names: string[], tensors: tf.Tensor[]): void {
    if (tensors.length === 0)
      throw new InvalidArgumentError(
        'DistributedOptimizer: no variable has a gradient (is anything trainable connected to the loss?)',
      );
    const bad = tensors.findIndex((t) => t.dtype !== 'float32');
    if (bad >= 0)
      throw new InvalidArgumentError(
        `DistributedOptimizer: gradient of ${names[bad]} is ${tensors[bad].dtype}; only float32 is supported`,
      );
    const shapes = tensors.map((t) => t.shape.slice());
    const sizes = tensors.map((t) => t.size);
    const entries: LayoutEntry[] = names.map((name, i) => ({ name, shape: shapes[i], dtype: 'float32' }));
    const key = layoutKey(entries, {});
    const prev = this.pending;
    if (prev && prev.key !== key)
      throw new InvalidArgumentError(
        'DistributedOptimizer: the variables changed between accumulated backward passes',
      );
    const fusion = prev?.fusion ?? this.fusionFor();
    let pieces: tf.Tensor[];
    if (fusion === 'device') {
      pieces = [
        tf.tidy(() =>
          tensors.length === 1
            ? tf.reshape(tensors[0], [-1])
            : tf.concat(tensors.map((t) => tf.reshape(t, [-1]))),
        ),
      ];
    } else {
      pieces = tensors;
    }
    if (prev) {
      const summed = pieces.map((t, i) => tf.add(prev.pieces[i], t));
      tf.dispose(prev.pieces);
      if (fusion === 'device') tf.dispose(pieces);
      else tf.dispose(tensors);
      pieces = summed;
    }
    pieces.forEach((t) => tf.keep(t));
    const passes = (prev?.passes ?? 0) + 1;
    this.pending = {
      names,
      shapes,
      sizes,
      total: sizes.reduce((a, b) => a + b, 0),
      key,
      pieces,
      fusion,
      passes,
      ready: passes >= this.backwardPassesPerStep,
    };
  }

  /** ringwire's kernels (native SIMD when the addon loads), loaded on first use. */
  private get k(): Kernels {
    return (this.kernels ??= loadKernels());
  }

  /** float32 <-> float16/bfloat16 with ringwire's kernels. */
  private convert(
    half: 'float16' | 'bfloat16',
    way: 'narrow' | 'widen',
    src: Uint8Array,
    dst: Uint8Array,
  ): void {
    const k = this.k;
    if (way === 'narrow') {
      if (half === 'float16') k.f32ToF16(src, dst);
      else k.f32ToBf16(src, dst);
    } else if (half === 'float16') k.f16ToF32(src, dst);
    else k.bf16ToF32(src, dst);
  }

  private buffers(comm: Communicator, total: number): { f32: Float32Array; u16: Uint16Array | null } {
    if (this.bufComm !== comm) (this.f32 = null), (this.u16 = null), (this.bufComm = comm);
    if (!this.f32 || this.f32.length < total) this.f32 = comm.allocate('float32', total) as Float32Array;
    if (this.compression !== 'none' && (!this.u16 || this.u16.length < total))
      this.u16 = comm.allocate('float16', total) as Uint16Array;
    return {
      f32: this.f32.length === total ? this.f32 : this.f32.subarray(0, total),
      u16: this.u16 ? this.u16.subarray(0, total) : null,
    };
  }

  /** Records a phase of the current step in the communicator's timeline, when it has one. */
  private trace(phase: string, start: number, ms: number): void {
    let tl: Communicator['timeline'];
    try {
      tl = this.comm.timeline;
    } catch {
      return; // no communicator yet: exchange() says so
    }
    if (!tl) return;
    if (phase === 'compute') this.stepStart ??= start;
    tl.record(Track.steps, phase, start, start + ms, this.steps);
  }

  private async exchange(p: Pending): Promise<void> {
    const comm = this.comm;
    const half: Half | null =
      this.compression === 'fp16' ? 'float16' : this.compression === 'bf16' ? 'bfloat16' : null;
    // Every rank must fuse the same variables in the same order: check once per layout.
    const extra = {
      op: this.op,
      compression: this.compression,
      backwardPassesPerStep: this.backwardPassesPerStep,
      pipelineBytes: this.pipelineBytes,
      bucketBytes: this.bucketBytes,
    };
    const entries = p.names.map((name, i) => ({ name, shape: p.shapes[i], dtype: 'float32' }));
    const key = layoutKey(entries, extra);
    if (this.verifyLayout && (key !== this.checkedKey || comm !== this.checkedComm)) {
      await checkLayout(comm, 'DistributedOptimizer', entries, extra);
      this.checkedKey = key;
      this.checkedComm = comm;
    }
    const timings: StepTimings = {
      ...this.partial,
      download: 0,
      allreduce: 0,
      upload: 0,
      apply: 0,
      count: p.total,
      moved: 0,
      fusion: p.fusion,
      backend: tf.getBackend(),
    };
    this.partial = { compute: 0, fuse: 0 };
    if (this.profile) {
      const t = now();
      const last = p.pieces[p.pieces.length - 1];
      const probe = tf.slice(last, new Array(last.rank).fill(0), new Array(last.rank).fill(1));
      await probe.data();
      probe.dispose();
      timings.compute += now() - t;
    }

    const parts =
      p.fusion === 'device'
        ? await this.deviceParts(p, half, timings)
        : await this.hostParts(p, half, timings);

    const t = now();
    try {
      this.optimizer.applyGradients(p.names.map((name, i) => ({ name, tensor: parts[i] })));
    } finally {
      tf.dispose(parts);
    }
    timings.apply = now() - t;
    this.trace('apply', t, timings.apply);
    this.trace('step', this.stepStart ?? t, now() - (this.stepStart ?? t));
    this.stepStart = undefined;
    this.steps++;
    this.lastTimings = timings;
    const { compute, fuse, download, allreduce, upload, apply } = timings;
    comm.recordStep(compute + fuse + download + allreduce + upload + apply);
  }

  /** Device fusion: bucketed download, all-reduce and upload of the one fused tensor (buckets.ts). */
  private async deviceParts(p: Pending, half: Half | null, timings: StepTimings): Promise<tf.Tensor[]> {
    const comm = this.comm;
    const { f32, u16 } = this.buffers(comm, p.total);
    const bucketElems = Math.max(2, 2 * Math.floor(Math.min(this.bucketBytes, 2 ** 52) / 8));
    const { flat, timings: b } = await exchangeBuckets(p.pieces[0], {
      comm,
      op: this.op,
      half,
      kernels: this.k,
      f32,
      u16,
      bucketElems,
    });
    Object.assign(timings, b);
    const t = now();
    const scale = this.averageAggregatedGradients && p.passes > 1 ? 1 / p.passes : 1;
    const parts = tf.tidy(() => {
      const g = scale === 1 ? flat : tf.mul(flat, tf.scalar(scale, 'float32'));
      return p.names.length === 1
        ? [tf.reshape(g, p.shapes[0])]
        : tf.split(g, p.sizes).map((s, i) => tf.reshape(s, p.shapes[i]));
    });
    flat.dispose();
    timings.upload += now() - t;
    return parts;
  }

  /** Host fusion: each gradient read into the fusion buffer, all-reduced slice by slice. */
  private async hostParts(p: Pending, half: Half | null, timings: StepTimings): Promise<tf.Tensor[]> {
    const comm = this.comm;
    // Gradients of at least pipelineBytes are all-reduced alone, moved to the engine thread instead
    // of copied when their buffer belongs to them alone; with compression the engine thread narrows
    // and widens them. The rest are copied (or narrowed) into the fusion buffer slice by slice, each
    // slice all-reduced as soon as it is filled. Which gradient goes which way depends only on the
    // layout, the same on every rank.
    let t = now();
    const { f32, u16 } = this.buffers(comm, p.total);
    const chunk = Math.max(1, Math.floor(this.pipelineBytes / 4));
    const results: Float32Array[] = [];
    const inflight: Promise<unknown>[] = [];
    const reduceSlice = async (start: number, end: number): Promise<void> => {
      if (half) {
        await comm.allreduce(u16!.subarray(start, end), { op: this.op, dtype: half });
        this.convert(half, 'widen', bytes(u16!.subarray(start, end)), bytes(f32.subarray(start, end)));
      } else {
        await comm.allreduce(f32.subarray(start, end), { op: this.op });
      }
    };
    let start = 0; // the first element of the fused layout not yet handed to an all-reduce
    let at = 0; // the elements read so far
    const flush = (): void => {
      if (at > start) inflight.push(reduceSlice(start, at));
      start = at;
    };
    try {
      for (const [i, piece] of p.pieces.entries()) {
        const data = (await piece.data()) as Float32Array;
        if (data.length >= chunk) {
          flush();
          const moved = movable(piece, data);
          const own = moved ? data : f32.subarray(at, at + data.length);
          if (moved) timings.moved += data.length;
          else this.k.copy(bytes(own), bytes(data)); // a memmove: TypedArray#set into shared memory is 2.4x slower
          at = start = at + data.length; // before the transfer detaches data
          inflight.push(
            comm
              .allreduce(own, { op: this.op, transfer: moved, wire: half ?? undefined })
              .then((r) => (results[i] = r)),
          );
          continue;
        }
        for (let o = 0; o < data.length; ) {
          const n = Math.min(data.length - o, start + chunk - at);
          if (half)
            this.convert(half, 'narrow', bytes(data.subarray(o, o + n)), bytes(u16!.subarray(at, at + n)));
          else this.k.copy(bytes(f32.subarray(at, at + n)), bytes(data.subarray(o, o + n)));
          o += n;
          at += n;
          if (at - start === chunk) flush();
        }
      }
      flush();
      tf.dispose(p.pieces);
      timings.download = now() - t;
      this.trace('download', t, timings.download);
      t = now();
      await Promise.all(inflight);
    } catch (err) {
      await Promise.allSettled(inflight);
      throw err;
    }
    timings.allreduce = now() - t;
    this.trace('all-reduce', t, timings.allreduce);

    t = now();
    // Each piece's reduced values: its moved buffer, or its range of the fusion buffer.
    const scale = this.averageAggregatedGradients && p.passes > 1 ? 1 / p.passes : 1;
    let offset = 0;
    for (const [i, piece] of p.pieces.entries()) {
      results[i] ??= f32.subarray(offset, offset + piece.size);
      if (scale !== 1) this.k.scale('float32', bytes(results[i]), scale);
      offset += piece.size;
    }
    // On the cpu backend tf.tensor keeps a reference to its array and split makes views of it: no
    // copy. Views of the fusion buffer live only until applyGradients returns (the next step
    // overwrites it). Other backends copy into device memory anyway; they get ordinary arrays,
    // since native bindings (Dawn's writeBuffer, TensorFlow's C API) need not accept shared memory.
    const plain = (a: Float32Array) =>
      timings.backend === 'cpu' || !(a.buffer instanceof SharedArrayBuffer) ? a : a.slice();
    const parts = tf.tidy(() => results.map((r, i) => tf.tensor(plain(r), p.shapes[i], 'float32')));
    timings.upload = now() - t;
    this.trace('upload', t, timings.upload);
    return parts;
  }
}

/** Reads a tf.Optimizer's learning rate (a DistributedOptimizer's is its wrapped optimizer's). */
export function getLearningRate(opt: tf.Optimizer): number {
  const o = (opt instanceof DistributedOptimizer ? opt.optimizer : opt) as unknown as {
    learningRate?: number;
  };
  if (typeof o.learningRate !== 'number')
    throw new InvalidArgumentError(`${opt.getClassName()} has no numeric learningRate`);
  return o.learningRate;
}

/** Sets a tf.Optimizer's learning rate (setLearningRate where the class has it, else the field). */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = (opt instanceof DistributedOptimizer ? opt.optimizer : opt) as unknown as {
    learningRate?: number;
    setLearningRate?: (lr: number) => void;
  };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else if (typeof o.learningRate === 'number') o.learningRate = lr;
  else throw new InvalidArgumentError(`${opt.getClassName()} has no learning rate to set`);
}
