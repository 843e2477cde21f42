import { CheckpointError } from '@ringwire/common';
import type * as tf from '@tensorflow/tfjs-core';
import { type Communicator, elastic, InvalidArgumentError, RingwireError } from 'ringwire';
import type { VariableLike } from './broadcast.js';
import {
  type CheckpointStage,
  prepareCheckpointDir,
  readLatestCheckpoint,
  writeCheckpoint,
} from './checkpoint.js';
import { DistributedOptimizer, getLearningRate, setLearningRate } from './optimizer.js';
import { applySnapshot, type Snapshot, type SnapshotLayout, takeSnapshot } from './snapshot.js';

/** Options of TfjsState. */
export interface TfjsStateOptions {
  /**
   * Fault-tolerant checkpoints: every `everyCommits` commits (default 1), rank 0 writes the
   * committed state to `dir` atomically; the first sync of a job started again loads the latest.
   * `onWrite` is a test hook called at each stage of a write.
   */
  checkpoint?: { dir: string; everyCommits?: number; onWrite?: (stage: CheckpointStage) => unknown };
  /**
   * 'linear' (default): Horovod's rule, the learning rate is proportional to the number of workers.
   * The optimizer's rate when the state is made is the single-worker rate; the state keeps
   * rate / size, so every generation trains at (rate / size) x its size, schedules included.
   * 'none': the rate is left as it is (and still synced from rank 0).
   */
  lrScaling?: 'linear' | 'none';
}

/** A tf.LayersModel as far as TfjsState uses it. */
export interface StateModel {
  weights: VariableLike[];
}

type Extras = Record<string, unknown>;
/** What save() keeps: the extras (ObjectState's copy), the tensors, the learning rate per worker. */
type Saved = { values: unknown; snap?: Snapshot; lr: number | null };
/** A checkpoint's header. */
type Header = { seq: number; values: Extras; layout: SnapshotLayout; lr: number | null };

const ObjectStateBase = elastic.ObjectState as unknown as new (values: Extras) => elastic.ObjectState;

/**
 * The elastic state of a TensorFlow.js training job (Horovod's TensorFlowKerasState): the model's
 * weights, the optimizer's state (Adam's moments and accumulated betas, iteration count...) and
 * `extras` (e.g. `{ epoch: 0, batch: 0 }`, which become properties: `state.epoch`). commit()
 * copies them into host memory (two buffers, reused), restore() puts the last commit back,
 * sync() broadcasts rank 0's. The learning rate follows the size (see TfjsStateOptions.lrScaling),
 * and with `checkpoint` the committed state also goes to disk, atomically.
 */
class TfjsStateImpl extends ObjectStateBase {
  readonly model: StateModel;
  readonly optimizer: tf.Optimizer;
  readonly #inner: tf.Optimizer;
  readonly #lrScaling: 'linear' | 'none';
  readonly #checkpoint?: Required<Pick<NonNullable<TfjsStateOptions['checkpoint']>, 'dir' | 'everyCommits'>> &
    TfjsStateOptions['checkpoint'];
  /** The snapshot save() will keep, the one it kept, and a free buffer for the next. */
  #fresh?: Snapshot;
  #committed?: Snapshot;
  #spare?: Uint8Array;
  #comm?: Communicator;
  /** The number of workers the optimizer's learning rate is set for. */
  #size = 1;
  #resumed = false;
  /** The number of the last checkpoint written or loaded. */
  #seq = 0;
  /** What save() returned last: the committed state that a checkpoint writes. */
  #last?: Saved;

  constructor(
    model: StateModel,
    optimizer: tf.Optimizer,
    extras: Extras = {},
    options: TfjsStateOptions = {},
  ) {
    if (!model || !Array.isArray(model.weights))
      throw new InvalidArgumentError('TfjsState: expected a tf.LayersModel (with weights)');
    if (!optimizer || typeof optimizer.getClassName !== 'function')
      throw new InvalidArgumentError('TfjsState: expected a tf.Optimizer');
    for (const k of Object.keys(extras ?? {}))
      if (RESERVED.has(k))
        throw new InvalidArgumentError(`TfjsState: ${JSON.stringify(k)} is a reserved name`);
    super(extras ?? {});
    this.model = model;
    this.optimizer = optimizer;
    this.#inner = optimizer instanceof DistributedOptimizer ? optimizer.optimizer : optimizer;
    this.#lrScaling = options.lrScaling ?? 'linear';
    if (this.#lrScaling !== 'linear' && this.#lrScaling !== 'none')
      throw new InvalidArgumentError(`TfjsState: lrScaling must be 'linear' or 'none'`);
    if (this.#lrScaling === 'linear') getLearningRate(this.#inner); // throws when it has none
    const cp = options.checkpoint;
    if (cp) {
      const everyCommits = cp.everyCommits ?? 1;
      if (!Number.isInteger(everyCommits) || everyCommits < 1)
        throw new InvalidArgumentError('TfjsState: checkpoint.everyCommits must be an integer >= 1');
      prepareCheckpointDir(cp.dir);
      this.#checkpoint = { ...cp, everyCommits };
    }
  }

  /** The learning rate for one worker (rate / size), or null when it is not scaled. */
  #lrPerWorker(): number | null {
    return this.#lrScaling === 'linear' ? getLearningRate(this.#inner) / this.#size : null;
  }

  #setSize(size: number, lrPerWorker: number | null): void {
    this.#size = size;
    if (lrPerWorker !== null) setLearningRate(this.#inner, lrPerWorker * size);
  }

  async #take(): Promise<Snapshot> {
    const spare = this.#spare;
    this.#spare = undefined;
    return takeSnapshot({ model: this.model, optimizer: this.#inner }, spare);
  }

  /** The hook commit() and sync() call: keeps the snapshot just taken (the previous one's buffer is reused next). */
  override save(): unknown {
    if (this.#fresh) {
      this.#spare = this.#committed?.data;
      this.#committed = this.#fresh;
      this.#fresh = undefined;
    }
    this.#last = { values: super.save(), snap: this.#committed, lr: this.#lrPerWorker() };
    return this.#last;
  }

  /** The hook restore() calls: the extras, then the tensors, in place. */
  override load(saved: unknown): void {
    const s = saved as Saved;
    super.load(s.values);
    if (s.snap) applySnapshot({ model: this.model, optimizer: this.#inner }, s.snap);
    this.#setSize(this.#size, s.lr);
  }

  /**
   * Copies the model weights and optimizer state into host memory, then commits as ObjectState
   * does (which may throw MembershipChanged after keeping the copy); every `everyCommits`
   * commits, rank 0 then writes the checkpoint.
   */
  override async commit(): Promise<void> {
    this.#fresh = await this.#take();
    const before = this.commits;
    try {
      await super.commit();
    } finally {
      const cp = this.#checkpoint;
      if (
        cp &&
        this.commits > before &&
        this.commits % cp.everyCommits === 0 &&
        (this.#comm?.rank ?? 0) === 0
      )
        await this.#writeCheckpoint();
    }
  }

  /**
   * Rank `root`'s state on every rank. The first sync with a checkpoint directory first loads the
   * latest checkpoint on root (a job started again resumes from it); a failure there fails every
   * rank with CheckpointError.
   */
  override async sync(comm: Communicator, root = 0): Promise<void> {
    this.#comm = comm;
    if (this.#checkpoint && !this.#resumed) {
      let error: string | null = null;
      if (comm.rank === root)
        error = await this.loadCheckpoint().then(
          () => null,
          (err: Error) => (err instanceof RingwireError ? err.message : String(err)),
        );
      error = await elastic.broadcastJson(comm, root, error);
      this.#resumed = true;
      if (error !== null) throw new CheckpointError(comm.rank === root ? error : `rank ${root}: ${error}`);
    }
    await super.sync(comm, root);
  }

  /** The hook sync() calls after the extras: root's tensors and learning rate, by one broadcast. */
  override async syncExtra(comm: Communicator, root: number): Promise<void> {
    const isRoot = comm.rank === root;
    const mine = isRoot ? await this.#take() : undefined;
    const head = await elastic.broadcastJson(comm, root, {
      layout: mine?.layout as SnapshotLayout,
      lr: this.#lrPerWorker(),
      seq: this.#seq,
    });
    let snap = mine;
    if (!snap) {
      const spare = this.#spare;
      snap = {
        layout: head.layout,
        data: spare?.byteLength === head.layout.bytes ? spare : new Uint8Array(head.layout.bytes),
      };
      this.#spare = undefined;
    }
    if (snap.data.byteLength > 0) await comm.broadcast(snap.data, root);
    if (!isRoot) applySnapshot({ model: this.model, optimizer: this.#inner }, snap);
    this.#fresh = snap;
    this.#seq = head.seq;
    this.#setSize(comm.size, head.lr);
  }

  /** The number of the last checkpoint written or loaded (0: none yet). */
  get checkpointSeq(): number {
    return this.#seq;
  }

  /** Writes the last committed state as the next checkpoint. */
  async #writeCheckpoint(): Promise<void> {
    const cp = this.#checkpoint!;
    const { values, snap, lr } = this.#last!;
    const seq = this.#seq + 1;
    const header: Header = { seq, values: encodeValues(values as Extras), layout: snap!.layout, lr };
    await writeCheckpoint(cp.dir, seq, { header, data: snap!.data }, cp.onWrite);
    this.#seq = seq;
  }

  /**
   * Loads the latest checkpoint of the directory into this state (extras, weights, optimizer,
   * learning rate) and keeps it as the last commit; resolves false when there is none yet.
   * elastic.run's first sync calls it on rank 0.
   */
  async loadCheckpoint(): Promise<boolean> {
    const cp = this.#checkpoint;
    if (!cp) throw new InvalidArgumentError('TfjsState: no checkpoint directory was given');
    const file = await readLatestCheckpoint<Header>(cp.dir);
    if (!file) return false;
    const { header, data } = file;
    try {
      this.load({
        values: decodeValues(header.values),
        snap: { layout: header.layout, data },
        lr: header.lr,
      });
    } catch (err) {
      throw new CheckpointError(
        `checkpoint directory ${cp.dir}: checkpoint ${header.seq} does not fit this model: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.#seq = header.seq;
    this.#resumed = true;
    this.#fresh = { layout: header.layout, data: new Uint8Array(data) };
    this.save();
    return true;
  }
}

const RESERVED = new Set(['model', 'optimizer', 'loadCheckpoint', 'checkpointSeq']);

/** A TfjsState: its methods plus the extras it was made with, as properties. */
export type TfjsState<E extends Extras = Extras> = TfjsStateImpl & E;

/** The elastic state of a TensorFlow.js model and optimizer; see TfjsStateImpl. */
export const TfjsState = TfjsStateImpl as unknown as {
  new <E extends Extras>(
    model: StateModel,
    optimizer: tf.Optimizer,
    extras?: E,
    options?: TfjsStateOptions,
  ): TfjsState<E>;
  prototype: TfjsStateImpl;
};

/** Typed arrays among the extras, as JSON for a checkpoint header. */
function encodeValues(values: Extras): Extras {
  const out: Extras = {};
  for (const [k, v] of Object.entries(values)) {
    if (!ArrayBuffer.isView(v)) out[k] = v;
    else
      out[k] = {
        $typed: v.constructor.name,
        base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'),
      };
  }
  return out;
}

/** The inverse of encodeValues. */
function decodeValues(values: Extras): Extras {
  const out: Extras = {};
  for (const [k, v] of Object.entries(values)) {
    const t = v as { $typed?: string; base64?: string } | null;
    if (!t || typeof t !== 'object' || typeof t.$typed !== 'string') {
      out[k] = v;
      continue;
    }
    const Ctor = (globalThis as unknown as Record<string, new (b: ArrayBuffer) => unknown>)[t.$typed];
    if (!/Array$/.test(t.$typed) || typeof Ctor !== 'function')
      throw new CheckpointError(`checkpoint: unknown array type ${t.$typed} for ${k}`);
    const bytes = Buffer.from(t.base64 ?? '', 'base64');
    out[k] = new Ctor(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  return out;
}
