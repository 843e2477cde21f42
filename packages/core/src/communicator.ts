import { accessSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import {
  AbortedError,
  ALGOS,
  ClosedError,
  createLogger,
  DEFAULTS,
  DTYPES,
  type DType,
  ErrorCode,
  InvalidArgumentError,
  REDUCE_OPS,
  type ReduceOp,
  type RingwireArray,
  RingwireError,
  TimeoutError,
} from '@ringwire/common';
import { type EmbeddedRendezvous, serveAlone, serveIfAbsent } from './embedded-rendezvous.js';
import { copyBytes, warnIfJsKernels } from './kernels/index.js';
import type { Algo, EngineConfig, EngineReply, ErrorJSON, OpRequest } from './messages.js';
import { type InitOptions, resolveConfig } from './options.js';
import { StagingPool } from './staging.js';
import {
  rankPath,
  recordCall,
  Timeline,
  type TimelineExport,
  unwritable,
  writeRankTimeline,
} from './timeline.js';
import type { Descriptor, Kind } from './wire.js';

export interface ReduceOptions {
  /** 'sum' (default) | 'mean' | 'min' | 'max' | 'prod'; mean is for float types only. */
  op?: ReduceOp;
  /** Required for Uint16Array: 'float16' or 'bfloat16'. */
  dtype?: DType;
  /** Override the algorithm for this call. */
  algo?: Algo;
}

export interface AllreduceOptions extends ReduceOptions {
  /**
   * For an array on an ordinary ArrayBuffer: move its whole buffer to the engine thread and back
   * (as postMessage's transfer list does) instead of copying it through staging buffers. `x`
   * is detached, and the result is a new array of the same type over that buffer (if the
   * collective fails, the buffer is lost with it). Arrays from comm.allocate are never copied,
   * with or without it.
   */
  transfer?: boolean;
  /**
   * For a Float32Array: reduce it as float16 or bfloat16, half the bytes on the wire. The engine
   * thread converts into a buffer of half the array's bytes (kept for the next op up to
   * DEFAULTS.stagingKeepBytes), so this thread does no work; the result is rounded to that type.
   */
  wire?: 'float16' | 'bfloat16';
}

export interface TypeOptions {
  dtype?: DType;
}

type Done = Extract<EngineReply, { t: 'done' }>;

const EMPTY = new SharedArrayBuffer(8);

/**
 * A communicator: this process's membership in a job of `size` workers. Collectives run on the
 * engine thread; this thread only validates, stages, and waits. Every rank must issue the same
 * collectives in the same order (as in torch.distributed); a difference fails every rank with
 * RINGWIRE_ERR_MISMATCH. Results are written in place unless the method says otherwise.
 *
 * Typed arrays backed by a SharedArrayBuffer (see `allocate`) are used without any copy;
 * others are copied through staging buffers in slices, so the event loop stays free (buffers up
 * to DEFAULTS.stagingKeepBytes are kept for reuse, larger ones released after their op).
 */
export class Communicator {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  /** The rendezvous generation this communicator belongs to. */
  readonly generation: number;
  /** 'native' or 'js': which reduction kernels the engine uses. */
  readonly kernels: string;
  /** Ranks this rank sends payloads to through shared memory (same host; see `sharedMemory`), the rest go over TCP. */
  readonly sharedMemoryPeers: readonly number[];
  /** The algorithm the last finished collective ran with ('ring', 'tree', 'hierarchical', 'chain'; undefined on one rank). */
  lastAlgo?: string;

  /**
   * This thread's timeline recorder when RINGWIRE_TIMELINE is on (else undefined): @ringwire/tfjs
   * records its step phases here. Written at close, with the engine thread's, to path.<rank>.json.
   */
  readonly timeline?: Timeline;
  private engineTimeline?: TimelineExport;
  private readonly clock: { offsetUs: number; rttUs: number; host: string };

  private seq = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (d: Done) => void; reject: (e: Error) => void }>();
  private failure?: RingwireError;
  /** Whether some call has already been rejected with the failure's own code. */
  private told = false;
  private closed?: Promise<void>;
  /** Elastic jobs: workers the rendezvous said wait for the next generation (0: none). */
  private waiting = 0;
  private readonly staging = new StagingPool();
  private readonly onBeforeExit = () => void this.close();

  /** @internal use `init()` */
  constructor(
    ready: Extract<EngineReply, { t: 'ready' }>,
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
    private readonly cfg: EngineConfig,
    private readonly embedded?: EmbeddedRendezvous,
    waiting = 0,
  ) {
    this.waiting = waiting;
    this.rank = ready.rank;
    this.size = ready.size;
    this.localRank = ready.localRank;
    this.localSize = ready.localSize;
    this.generation = ready.generation;
    this.kernels = ready.kernels;
    this.sharedMemoryPeers = Object.freeze(ready.sharedMemoryPeers);
    this.clock = { offsetUs: ready.clockOffsetUs, rttUs: ready.clockRttUs, host: ready.host };
    if (cfg.timeline) this.timeline = new Timeline();
    port.on('message', (m: EngineReply) => this.onReply(m));
    worker.on('error', (err) => this.abort(new AbortedError(`engine thread crashed: ${err.stack ?? err}`)));
    worker.on('exit', () => this.abort(new ClosedError('engine thread exited')));
    // Idle communicators do not keep the process alive; at the end of the program they close.
    this.idle();
    process.on('beforeExit', this.onBeforeExit);
  }

  private idle(): void {
    if (this.pending.size === 0) this.worker.unref(), this.port.unref();
    else this.worker.ref(), this.port.ref();
  }

  private onReply(m: EngineReply): void {
    if (m.t === 'done' || m.t === 'op-failed') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.t === 'done') (this.lastAlgo = m.algo), p.resolve(m);
      else {
        const err = RingwireError.fromJSON(m.error);
        if (err.code !== ErrorCode.ABORTED) this.told = true;
        p.reject(err);
      }
      this.idle();
    } else if (m.t === 'failed') {
      this.failure ??= RingwireError.fromJSON(m.error);
    } else if (m.t === 'closed') {
      this.engineTimeline = m.timeline;
    } else if (m.t === 'membership') {
      this.waiting = m.waiting;
    }
  }

  private abort(err: RingwireError): void {
    this.failure ??= err;
    for (const p of this.pending.values()) {
      this.told = true;
      p.reject(err);
    }
    this.pending.clear();
    this.idle();
  }

  // ---- the collectives -------------------------------------------------------------------

  /** Reduces `x` across all ranks, in place (resolves with `x`; with `transfer`, see AllreduceOptions). */
  async allreduce<T extends RingwireArray>(x: T, options: AllreduceOptions = {}): Promise<T> {
    const { dtype, op } = this.reduceArgs(x, options, 'allreduce');
    const { transfer, wire } = options;
    if (transfer !== undefined && typeof transfer !== 'boolean')
      throw new InvalidArgumentError(`allreduce: transfer must be a boolean, got ${describeValue(transfer)}`);
    if (wire !== undefined && (dtype !== 'float32' || (wire !== 'float16' && wire !== 'bfloat16'))) {
      throw new InvalidArgumentError(
        `allreduce: wire must be 'float16' or 'bfloat16', for a Float32Array (got ${JSON.stringify(wire)} for ${dtype})`,
      );
    }
    const moved = transfer === true && !(x.buffer instanceof SharedArrayBuffer);
    const { byteOffset, length } = x; // read before the transfer detaches x
    const done = await this.run('allreduce', [x], wire ?? dtype, op, 0, options.algo, 0, true, {
      transfer: moved,
      narrow: wire !== undefined,
    });
    return moved
      ? new (x.constructor as new (b: ArrayBufferLike, o: number, n: number) => T)(
          done.buf!,
          byteOffset,
          length,
        )
      : x;
  }

  /**
   * Like allreduce, but blocks this thread until done (Atomics.wait): for CPU code that cannot
   * await. Not on a browser-like main thread; never while another op of this communicator is pending.
   */
  allreduceSync<T extends RingwireArray>(x: T, options: ReduceOptions = {}): T {
    const { dtype, op } = this.reduceArgs(x, options, 'allreduceSync');
    this.usable();
    if (this.pending.size)
      throw new InvalidArgumentError(
        'allreduceSync: await the pending collectives of this communicator first',
      );
    const desc: Descriptor = { kind: 'allreduce', dtype, op, root: 0, count: x.length, layout: 0 };
    const t0 = this.timeline ? performance.now() : 0;
    const { buf, offset, staged, moved } = this.place([x], false);
    if (staged) copyInSync(x, buf);
    const t1 = this.timeline ? performance.now() : 0;
    const id = this.nextId++;
    this.port.postMessage(
      {
        t: 'op',
        id,
        seq: ++this.seq,
        desc,
        buf,
        byteOffset: offset,
        byteLength: x.byteLength,
        algo: options.algo ?? this.cfg.algo,
      } satisfies OpRequest,
      moved ? [buf as ArrayBuffer] : [],
    );
    let result: Done | Error | undefined;
    this.pending.set(id, { resolve: (d) => (result = d), reject: (e) => (result = e) });
    const deadline = Date.now() + this.cfg.timeoutMs + 10_000;
    while (!result) {
      const seen = Atomics.load(this.signal, 0);
      let msg: ReturnType<typeof receiveMessageOnPort>;
      while ((msg = receiveMessageOnPort(this.port))) this.onReply(msg.message as EngineReply);
      if (result) break;
      if (Date.now() > deadline)
        throw new TimeoutError(
          `allreduceSync: no answer from the engine within ${this.cfg.timeoutMs + 10_000} ms`,
        );
      Atomics.wait(this.signal, 0, seen, 1000);
    }
    if (result instanceof Error) throw result;
    const t2 = this.timeline ? performance.now() : 0;
    if (staged) {
      const back = moved ? result.buf! : buf;
      copyBytes(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), new Uint8Array(back, 0, x.byteLength));
      this.staging.give(back);
    }
    if (this.timeline)
      recordCall(this.timeline, 'allreduce', this.seq, x.byteLength, dtype, op, result.algo, [
        t0,
        t1,
        t2,
        performance.now(),
      ]);
    return x;
  }

  /** All-reduces many arrays as one fused operation (one per dtype), in place. */
  async groupedAllreduce<T extends RingwireArray>(
    xs: T[],
    options: Omit<ReduceOptions, 'dtype'> & { dtypes?: DType[] } = {},
  ): Promise<T[]> {
    if (!Array.isArray(xs))
      throw new InvalidArgumentError('groupedAllreduce expects an array of typed arrays');
    const groups = new Map<DType, T[]>();
    xs.forEach((x, i) => {
      const { dtype } = this.reduceArgs(
        x,
        { op: options.op, dtype: options.dtypes?.[i] },
        `groupedAllreduce[${i}]`,
      );
      groups.set(dtype, [...(groups.get(dtype) ?? []), x]);
    });
    const op = options.op ?? 'sum';
    await Promise.all(
      [...groups].map(([dtype, group]) =>
        this.run('allreduce', group, dtype, op, 0, options.algo, layoutHash(group), true),
      ),
    );
    return xs;
  }

  /** Copies root's `x` into every rank's `x` (same length everywhere). */
  async broadcast<T extends RingwireArray>(
    x: T,
    root: number,
    options: TypeOptions & { algo?: Algo } = {},
  ): Promise<T> {
    const dtype = this.dtypeOf(x, options.dtype, 'broadcast');
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new InvalidArgumentError(
        `broadcast: root must be an integer in 0..${this.size - 1}, got ${root}`,
      );
    await this.run('broadcast', [x], dtype, 'sum', root, options.algo, 0, this.rank !== root);
    return x;
  }

  /**
   * Every rank's `x`, by rank (lengths may differ between ranks); `x` is unchanged. The arrays
   * share one new buffer, or are views into `out` (from comm.allocate, at least the sum of the
   * lengths; a rank whose `out` is too small fails the collective on every rank).
   */
  async allgather<T extends RingwireArray>(x: T, options: TypeOptions & { out?: T } = {}): Promise<T[]> {
    const dtype = this.dtypeOf(x, options.dtype, 'allgather');
    const { out } = options;
    if (ArrayBuffer.isView(out)) this.attached(out as RingwireArray, 'allgather', 'out');
    if (
      out !== undefined &&
      (out.constructor !== x.constructor || !(out.buffer instanceof SharedArrayBuffer))
    ) {
      throw new InvalidArgumentError(
        `allgather: out must be a ${x.constructor.name} from comm.allocate(), got ${describeValue(out)}`,
      );
    }
    const into = out && {
      buf: out.buffer as SharedArrayBuffer,
      byteOffset: out.byteOffset,
      byteLength: out.byteLength,
    };
    const done = await this.run('allgather', [x], dtype, 'sum', 0, undefined, 0, false, { out: into });
    const Ctor = x.constructor as new (b: ArrayBufferLike, o: number, n: number) => T;
    const elem = DTYPES[dtype].bytes;
    return done.segs!.map(
      ([off, len]) => new Ctor(out ? out.buffer : done.out!, (out?.byteOffset ?? 0) + off, len / elem),
    );
  }

  /** Reduces `x` across ranks and returns this rank's segment of the result (x is unchanged). */
  async reduceScatter<T extends RingwireArray>(x: T, options: ReduceOptions = {}): Promise<T> {
    const { dtype, op } = this.reduceArgs(x, options, 'reduceScatter');
    let result!: T;
    await this.run('reducescatter', [x], dtype, op, 0, options.algo, 0, false, {
      read: async (sab, done) => {
        const [off, len] = done.range!;
        const Ctor = x.constructor as new (n: number) => T;
        result = new Ctor(len / DTYPES[dtype].bytes);
        await copyOut(sab, [result], off);
      },
    });
    return result;
  }

  /** Resolves once every rank has called barrier(). */
  async barrier(): Promise<void> {
    this.usable();
    await this.run('barrier', [], 'uint8', 'sum', 0, 'tree', 0, false);
  }

  /** A typed array on a SharedArrayBuffer: collectives on it move no bytes between threads. */
  allocate(dtype: DType, count: number): RingwireArray {
    const d = DTYPES[dtype];
    if (!d) throw new InvalidArgumentError(`unknown dtype ${JSON.stringify(dtype)}`);
    if (!Number.isSafeInteger(count) || count < 0)
      throw new InvalidArgumentError(`count must be a non-negative integer, got ${count}`);
    const Ctor = d.array as unknown as new (b: ArrayBufferLike) => RingwireArray;
    return new Ctor(new SharedArrayBuffer(count * d.bytes));
  }

  /**
   * Records one training step's time (ms) for the rendezvous's /metrics and live job page; the
   * DistributedOptimizer of @ringwire/tfjs calls it every step. Costs one message to the engine.
   */
  recordStep(ms: number): void {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0)
      throw new InvalidArgumentError(`recordStep: ms must be a non-negative number, got ${ms}`);
    if (!this.failure && !this.closed) this.port.postMessage({ t: 'step', ms });
  }

  /** Finishes pending collectives, leaves the job gracefully and stops the engine thread. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      process.off('beforeExit', this.onBeforeExit);
      this.worker.ref();
      this.port.ref();
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.port.postMessage({ t: 'close' });
      const timer = setTimeout(() => void this.worker.terminate(), this.cfg.timeoutMs + 10_000);
      await exited;
      clearTimeout(timer);
      // The engine's last word (its timeline) may still be queued behind its exit.
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port))
        this.onReply(m.message as EngineReply);
      this.writeTimeline();
      this.port.close();
      await this.embedded?.close();
      this.failure ??= new ClosedError('the communicator is closed');
    })();
    return this.closed;
  }

  /** @internal Elastic jobs: how many workers wait to join the next generation (elastic.ObjectState.commit). */
  get waitingWorkers(): number {
    return this.waiting;
  }

  /** @internal Whether close() was called (an elastic state bound to it skips its membership check). */
  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  /** @internal The error this communicator failed with, if it failed (elastic.run tells membership failures apart). */
  get failureCause(): RingwireError | undefined {
    return this.failure;
  }

  // ---- plumbing --------------------------------------------------------------------------

  /** Writes this rank's timeline file, or warns once and goes on when it cannot. */
  private writeTimeline(): void {
    if (!this.timeline || !this.cfg.timeline) return;
    const path = rankPath(this.cfg.timeline, this.rank);
    const threads = [this.timeline.export(), ...(this.engineTimeline ? [this.engineTimeline] : [])];
    const meta = {
      rank: this.rank,
      size: this.size,
      host: this.clock.host,
      clockOffsetUs: this.clock.offsetUs,
      clockRttUs: this.clock.rttUs,
    };
    const why = writeRankTimeline(path, meta, threads);
    if (why) timelineWarning(this.rank, path, why);
  }

  private usable(): void {
    if (this.closed) throw new ClosedError('the communicator is closed');
    if (!this.failure) return;
    // The first call after a failure that no call has seen yet gets the failure itself, so the
    // user's first catch names the cause (MISMATCH, PEER_LOST, ...); later calls get ABORTED.
    if (!this.told) {
      this.told = true;
      throw this.failure;
    }
    throw this.failure instanceof AbortedError
      ? this.failure
      : new AbortedError(`the communicator failed earlier: ${this.failure.message}`, {
          rank: this.failure.rank,
        });
  }

  /** Refuses an array whose buffer was moved away: it would pass as an empty array (count 0). */
  private attached(x: RingwireArray, what: string, arg: string): void {
    if (isDetached(x.buffer))
      throw new InvalidArgumentError(
        `${what}: rank ${this.rank}'s ${arg} is detached (its buffer was moved away, e.g. by a previous { transfer: true }: use the array that call returned)`,
        { rank: this.rank },
      );
  }

  private dtypeOf(x: unknown, dtype: DType | undefined, what: string): DType {
    const inferred =
      x instanceof Float32Array
        ? 'float32'
        : x instanceof Float64Array
          ? 'float64'
          : x instanceof Int32Array
            ? 'int32'
            : x instanceof Uint8Array
              ? 'uint8'
              : x instanceof Uint16Array
                ? undefined
                : null;
    if (inferred === null)
      throw new InvalidArgumentError(
        `${what}: expected a Float32Array, Float64Array, Int32Array, Uint8Array or Uint16Array (float16/bfloat16), got ${describeValue(x)}`,
      );
    this.attached(x as RingwireArray, what, 'x');
    if (dtype !== undefined && !(dtype in DTYPES))
      throw new InvalidArgumentError(`${what}: unknown dtype ${JSON.stringify(dtype)}`);
    if (inferred === undefined) {
      if (dtype !== 'float16' && dtype !== 'bfloat16')
        throw new InvalidArgumentError(
          `${what}: a Uint16Array needs { dtype: 'float16' } or { dtype: 'bfloat16' }`,
        );
      return dtype;
    }
    if (dtype !== undefined && dtype !== inferred)
      throw new InvalidArgumentError(
        `${what}: dtype ${dtype} does not match a ${(x as object).constructor.name}`,
      );
    return inferred;
  }

  private reduceArgs(x: unknown, options: ReduceOptions, what: string): { dtype: DType; op: ReduceOp } {
    if (options === null || typeof options !== 'object')
      throw new InvalidArgumentError(`${what}: options must be an object`);
    const dtype = this.dtypeOf(x, options.dtype, what);
    const op = options.op ?? 'sum';
    if (!REDUCE_OPS.includes(op))
      throw new InvalidArgumentError(
        `${what}: op must be one of ${REDUCE_OPS.join(', ')}, got ${JSON.stringify(op)}`,
      );
    if (op === 'mean' && !DTYPES[dtype].float)
      throw new InvalidArgumentError(
        `${what}: op 'mean' needs a float type, not ${dtype} (use 'sum' and divide)`,
      );
    if (options.algo !== undefined && !ALGOS.includes(options.algo))
      throw new InvalidArgumentError(`${what}: algo must be one of ${ALGOS.join(', ')}`);
    return { dtype, op };
  }

  /**
   * Where the op's bytes live: the array's own SharedArrayBuffer, a staging buffer (see
   * StagingPool), or (transfer) its own ArrayBuffer. `moved`: `buf` is an ordinary ArrayBuffer,
   * which goes to the engine in the transfer list and comes back in the reply's `buf`.
   */
  private place(
    xs: RingwireArray[],
    mustStage: boolean,
    transfer = false,
  ): { buf: SharedArrayBuffer | ArrayBuffer; offset: number; staged: boolean; moved: boolean } {
    const total = xs.reduce((n, x) => n + x.byteLength, 0);
    if (xs.length === 0) return { buf: EMPTY, offset: 0, staged: false, moved: false };
    if (xs.length === 1 && !mustStage && (transfer || xs[0].buffer instanceof SharedArrayBuffer)) {
      const buf = xs[0].buffer;
      return { buf, offset: xs[0].byteOffset, staged: false, moved: !(buf instanceof SharedArrayBuffer) };
    }
    const buf = this.staging.take(total);
    return { buf, offset: 0, staged: true, moved: !(buf instanceof SharedArrayBuffer) };
  }

  /**
   * Runs one collective over `xs` fused in order: the sequence number is taken now, so ops keep
   * the order they were called in even though staging copies yield to the event loop. `dtype` is
   * what is reduced: with `narrow`, the arrays hold float32 and the engine converts.
   */
  private async run(
    kind: Kind,
    xs: RingwireArray[],
    dtype: DType,
    op: ReduceOp,
    root: number,
    algo: Algo | undefined,
    layout: number,
    writeBack: boolean,
    extra: {
      read?: (buf: ArrayBufferLike, done: Done) => Promise<void>;
      out?: OpRequest['out'];
      transfer?: boolean;
      narrow?: boolean;
    } = {},
  ): Promise<Done> {
    const { read, out, transfer = false, narrow = false } = extra;
    this.usable();
    const tl = this.timeline;
    const t0 = tl ? performance.now() : 0;
    const elem = narrow ? 4 : DTYPES[dtype].bytes;
    const count = kind === 'allgather' ? 0 : xs.reduce((n, x) => n + x.byteLength, 0) / elem;
    const desc: Descriptor = { kind, dtype, op, root, count, layout };
    const id = this.nextId++;
    const seq = ++this.seq;
    const { buf, offset, staged, moved } = this.place(xs, kind === 'reducescatter', transfer);
    const bytes = xs.reduce((n, x) => n + x.byteLength, 0);
    const done = new Promise<Done>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.idle();
    let back: ArrayBufferLike | undefined = moved ? undefined : buf;
    try {
      if (staged) await copyIn(xs, buf);
      const t1 = tl ? performance.now() : 0;
      const request: OpRequest = {
        t: 'op',
        id,
        seq,
        desc,
        buf,
        byteOffset: offset,
        byteLength: bytes,
        algo: algo ?? this.cfg.algo,
        out,
        narrow,
      };
      this.port.postMessage(request, moved ? [buf as ArrayBuffer] : []);
      const result = await done;
      const t2 = tl ? performance.now() : 0;
      back = moved ? result.buf! : buf;
      if (staged && writeBack) await copyOut(back, xs);
      await read?.(back, result);
      if (tl) recordCall(tl, kind, seq, bytes, dtype, op, result.algo, [t0, t1, t2, performance.now()]);
      return result;
    } finally {
      if (staged && back) this.staging.give(back as SharedArrayBuffer | ArrayBuffer);
    }
  }
}

/** Copies arrays into a staging buffer back to back, in slices, yielding between slices. */
async function copyIn(xs: RingwireArray[], sab: ArrayBufferLike): Promise<void> {
  let at = 0;
  for (const x of xs) {
    await sliced(x.byteLength, (o, n) =>
      copyBytes(new Uint8Array(sab, at + o, n), new Uint8Array(x.buffer, x.byteOffset + o, n)),
    );
    at += x.byteLength;
  }
}

async function copyOut(sab: ArrayBufferLike, xs: RingwireArray[], from = 0): Promise<void> {
  let at = from;
  for (const x of xs) {
    await sliced(x.byteLength, (o, n) =>
      copyBytes(new Uint8Array(x.buffer, x.byteOffset + o, n), new Uint8Array(sab, at + o, n)),
    );
    at += x.byteLength;
  }
}

function copyInSync(x: RingwireArray, sab: ArrayBufferLike): void {
  copyBytes(new Uint8Array(sab, 0, x.byteLength), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
}

async function sliced(bytes: number, copy: (offset: number, n: number) => void): Promise<void> {
  const slice = DEFAULTS.stagingSliceBytes;
  for (let o = 0; o < bytes; o += slice) {
    if (o > 0) await new Promise((r) => setImmediate(r));
    copy(o, Math.min(slice, bytes - o));
  }
}

/** Fingerprint of a grouped call's array lengths: ranks must fuse the same arrays the same way. */
function layoutHash(xs: RingwireArray[]): number {
  let h = 0x811c9dc5;
  for (const x of [xs.length, ...xs.map((a) => a.length)]) {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= (x / 65536) & 0xffff;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0 || 1;
}

/**
 * Whether `buf` was detached (transferred away). ArrayBuffer#detached is missing before Node 22;
 * there only a detached buffer refuses a new view, and only a 0-byte buffer can be detached.
 */
function isDetached(buf: ArrayBufferLike): boolean {
  const known = (buf as { detached?: boolean }).detached;
  if (typeof known === 'boolean') return known;
  if (buf.byteLength !== 0 || buf instanceof SharedArrayBuffer) return false;
  try {
    new Uint8Array(buf);
    return false;
  } catch {
    return true;
  }
}

function dirUnwritable(dir: string): string | undefined {
  try {
    accessSync(dir, fsc.W_OK);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function timelineWarning(rank: number | undefined, path: string, why: string): void {
  createLogger(`[ringwire ${rank ?? '?'}]`)(
    'warn',
    `RINGWIRE_TIMELINE: cannot write ${path} (${why}); the job runs on without a timeline`,
  );
}

function describeValue(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x !== 'object') return typeof x;
  return (x as object).constructor?.name ?? 'object';
}

/**
 * Joins the job and returns a ready communicator. Options fall back to the RINGWIRE_*
 * environment that `ringrun` sets; see InitOptions.
 */
export async function init(options: InitOptions = {}): Promise<Communicator> {
  const { engine: _engine, mayServe, ...resolved } = resolveConfig(options);
  warnIfJsKernels();
  let embedded: EmbeddedRendezvous | undefined;
  // Rank 0 under an engine starts its server while its engine thread boots (that one retries
  // its connection until the server answers): on a busy host each takes seconds.
  let serving: Promise<EmbeddedRendezvous | undefined> | undefined;
  if (!resolved.rendezvous) {
    if (resolved.size !== 1)
      throw new InvalidArgumentError(
        `no rendezvous: set RINGWIRE_RENDEZVOUS or { rendezvous } (or run under ringrun, mpirun, srun or a Kubernetes Indexed Job) for size ${resolved.size}`,
      );
    embedded = await serveAlone(resolved.token);
    resolved.rendezvous = embedded.url;
  } else if (mayServe) {
    serving = serveIfAbsent(resolved.rendezvous, resolved.token);
    serving.catch(() => {}); // awaited below
  }
  const cfg = resolved as EngineConfig;
  if (cfg.timeline) {
    // Found out now, not at close: a timeline that cannot be written is a warning, never a failure.
    const probe = cfg.rank === undefined ? undefined : rankPath(cfg.timeline, cfg.rank);
    const why = probe ? unwritable(probe) : dirUnwritable(dirname(cfg.timeline));
    if (why) timelineWarning(cfg.rank, probe ?? cfg.timeline, why), (cfg.timeline = undefined);
  }
  const { port1, port2 } = new MessageChannel();
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { config: cfg, port: port2, signal },
    transferList: [port2],
  });
  const limit = cfg.joinTimeoutMs + cfg.connectTimeoutMs + 10_000;
  // An elastic job's membership notice may come between the join and the ready.
  let waiting = 0;
  try {
    const joined = new Promise<Extract<EngineReply, { t: 'ready' }>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new TimeoutError(`init: not ready within ${limit} ms`)), limit);
      port1.on('message', function first(m: EngineReply) {
        if (m.t === 'membership') return void (waiting = m.waiting);
        port1.off('message', first);
        clearTimeout(timer);
        if (m.t === 'ready') resolve(m);
        else if (m.t === 'init-failed') reject(RingwireError.fromJSON(m.error as ErrorJSON));
        else reject(new AbortedError(`init: unexpected ${m.t} from the engine`));
      });
      worker.once(
        'error',
        (err) => (
          clearTimeout(timer), reject(new AbortedError(`init: engine thread crashed: ${err.stack ?? err}`))
        ),
      );
    });
    joined.catch(() => {}); // awaited below
    embedded ??= await serving;
    const ready = await joined;
    return new Communicator(ready, worker, port1, signal, cfg, embedded, waiting);
  } catch (err) {
    await worker.terminate();
    port1.close();
    await (embedded ?? (await serving?.catch(() => undefined)))?.close();
    throw err;
  }
}
