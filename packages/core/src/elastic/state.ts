import { InvalidArgumentError, MembershipChangedError } from '@ringwire/common';
import type { Communicator } from '../communicator.js';

/** What `elastic.run` needs of a state: ObjectState implements it, and states that extend it. */
export interface State {
  /** Keeps a copy of the state; throws MembershipChangedError (after keeping it) when workers wait to join. */
  commit(): Promise<void>;
  /** Back to the last commit (or sync). */
  restore(): void;
  /** Every rank gets root's state; also binds the state to `comm` for commit's membership check. */
  sync(comm: Communicator, root?: number): Promise<void>;
  /** Calls the onReset callbacks with the new communicator. */
  runReset(comm: Communicator): Promise<void>;
}

/** A value an ObjectState can hold: JSON values and typed arrays. */
type Value = unknown;
type Typed = ArrayBufferView & { length: number; slice(): Typed; set(a: ArrayLike<number | bigint>): void };

const RESERVED = new Set([
  'commit',
  'restore',
  'sync',
  'onReset',
  'runReset',
  'save',
  'load',
  'syncExtra',
  'constructor',
  'commits',
]);

const isTyped = (v: unknown): v is Typed => ArrayBuffer.isView(v) && !(v instanceof DataView);

/**
 * Holds JSON values and typed arrays as its own properties (`state.epoch`, `state.weights`), as
 * Horovod's ObjectState. Other states extend it and override the hooks: `save()` / `load(saved)`
 * (called by commit and restore) and `syncExtra(comm, root)` (called by sync).
 */
class ObjectStateImpl<T extends Record<string, Value>> implements State {
  #keys: string[];
  #saved?: unknown;
  #comm?: Communicator;
  #resets: ((comm: Communicator) => unknown)[] = [];
  /** How many times commit() kept a copy. */
  commits = 0;

  constructor(values: T) {
    if (values === null || typeof values !== 'object' || Array.isArray(values))
      throw new InvalidArgumentError('ObjectState: expected an object of values');
    for (const [k, v] of Object.entries(values)) {
      if (RESERVED.has(k))
        throw new InvalidArgumentError(`ObjectState: ${JSON.stringify(k)} is a reserved name`);
      if (!isTyped(v)) assertJson(v, k);
    }
    this.#keys = Object.keys(values);
    Object.assign(this, values);
  }

  /** The hook commit() calls: a copy of the values (typed arrays into the previous copy's buffers). */
  save(): unknown {
    const prev = this.#saved as Record<string, Value> | undefined;
    const out: Record<string, Value> = {};
    for (const k of this.#keys) {
      const v = (this as unknown as Record<string, Value>)[k];
      const old = prev?.[k];
      if (isTyped(v)) out[k] = sameShape(old, v) ? (old.set(v as never), old) : v.slice();
      else out[k] = structuredClone(v);
    }
    return out;
  }

  /** The hook restore() calls with what save() returned: typed arrays are restored in place. */
  load(saved: unknown): void {
    const self = this as unknown as Record<string, Value>;
    for (const [k, v] of Object.entries(saved as Record<string, Value>)) {
      const cur = self[k];
      if (isTyped(v)) self[k] = sameShape(cur, v) ? (cur.set(v as never), cur) : v.slice();
      else self[k] = structuredClone(v);
    }
  }

  /** The hook sync() calls after the values: subclasses broadcast what else they hold. */
  async syncExtra(_comm: Communicator, _root: number): Promise<void> {}

  /**
   * Keeps a copy of the state. Under elastic.run, the ranks then agree (one small all-reduce)
   * whether the rendezvous announced waiting workers; if so this throws MembershipChangedError,
   * after keeping the copy, and run() re-forms with them.
   */
  async commit(): Promise<void> {
    this.#saved = this.save();
    this.commits++;
    const comm = this.#comm;
    if (!comm || comm.isClosed) return;
    const flag = new Int32Array([comm.waitingWorkers > 0 ? 1 : 0]);
    await comm.allreduce(flag, { op: 'max' });
    if (flag[0])
      throw new MembershipChangedError(
        `workers wait to join: generation ${comm.generation} ends at this commit`,
      );
  }

  /** Back to the last commit (or sync); in memory, synchronous. Nothing kept yet: unchanged. */
  restore(): void {
    if (this.#saved !== undefined) this.load(this.#saved);
  }

  /**
   * Broadcasts root's state: the JSON values and every typed array's type and length first (an
   * array of another shape is replaced), then the arrays' bytes, then syncExtra. Keeps a copy
   * afterwards, as commit does (without the membership check).
   */
  async sync(comm: Communicator, root = 0): Promise<void> {
    this.#comm = comm;
    const self = this as unknown as Record<string, Value>;
    const meta = {
      json: {} as Record<string, Value>,
      arrays: [] as [string, string, number][],
    };
    if (comm.rank === root) {
      for (const k of this.#keys) {
        const v = self[k];
        if (isTyped(v)) meta.arrays.push([k, v.constructor.name, v.length]);
        else meta.json[k] = v;
      }
    }
    const got = await broadcastJson(comm, root, meta);
    if (comm.rank !== root) {
      for (const [k, v] of Object.entries(got.json)) self[k] = v;
      for (const [k, type, length] of got.arrays) {
        const cur = self[k];
        if (!isTyped(cur) || cur.constructor.name !== type || cur.length !== length) {
          const Ctor = (globalThis as unknown as Record<string, new (n: number) => Typed>)[type];
          if (typeof Ctor !== 'function' || !/Array$/.test(type))
            throw new InvalidArgumentError(`ObjectState.sync: unknown array type ${type} for ${k}`);
          self[k] = new Ctor(length);
        }
      }
    }
    for (const [k] of got.arrays) {
      const v = self[k] as Typed;
      await comm.broadcast(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), root);
    }
    await this.syncExtra(comm, root);
    this.#saved = this.save();
  }

  /** Registers a callback run with the new communicator after each re-formation (e.g. to rescale a learning rate). */
  onReset(callback: (comm: Communicator) => unknown): void {
    if (typeof callback !== 'function') throw new InvalidArgumentError('onReset expects a function');
    this.#resets.push(callback);
  }

  /** Runs the onReset callbacks in order (elastic.run calls it). */
  async runReset(comm: Communicator): Promise<void> {
    for (const cb of this.#resets) await cb(comm);
  }
}

/** An ObjectState: its methods plus the values it was made with, as properties. */
export type ObjectState<T extends Record<string, Value> = Record<string, Value>> = ObjectStateImpl<T> & T;

/** Holds JSON values and typed arrays as properties, with commit / restore / sync; see ObjectStateImpl. */
export const ObjectState = ObjectStateImpl as unknown as {
  new <T extends Record<string, Value>>(values: T): ObjectState<T>;
  prototype: ObjectStateImpl<Record<string, Value>>;
};

function sameShape(a: unknown, b: Typed): a is Typed {
  return isTyped(a) && a.constructor === b.constructor && a.length === b.length;
}

function assertJson(v: unknown, path: string): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return;
  } else if (Array.isArray(v)) {
    return v.forEach((x, i) => assertJson(x, `${path}[${i}]`));
  } else if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v as object)) assertJson(x, `${path}.${k}`);
    return;
  }
  throw new InvalidArgumentError(
    `ObjectState: ${path} must be a JSON value or a typed array, got ${typeof v === 'object' ? (v as object).constructor?.name : typeof v}`,
  );
}

/** Root's JSON-serialisable value on every rank: its length, then its UTF-8 bytes. */
export async function broadcastJson<V>(comm: Communicator, root: number, value: V): Promise<V> {
  const bytes = comm.rank === root ? Buffer.from(JSON.stringify(value)) : undefined;
  const len = new Int32Array([bytes?.length ?? 0]);
  await comm.broadcast(len, root);
  const buf = new Uint8Array(len[0]);
  if (bytes) buf.set(bytes);
  await comm.broadcast(buf, root);
  return JSON.parse(Buffer.from(buf).toString()) as V;
}
